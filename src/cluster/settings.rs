//! Small named values of the cluster (the access keys' resolved grants, say), one row each.

use quarry_state::{PgConnection, StateError};

pub fn read(db: &PgConnection, name: &str) -> Result<Option<String>, StateError> {
    let name = name.to_owned();
    db.run(move |c| {
        Ok(c.query_opt(
            "SELECT value FROM quarry_settings WHERE name = $1",
            &[&name],
        )?
        .map(|r| r.get(0)))
    })
}

pub fn write(db: &PgConnection, name: &str, value: &str) -> Result<(), StateError> {
    let (name, value) = (name.to_owned(), value.to_owned());
    db.run(move |c| {
        c.execute(
            "INSERT INTO quarry_settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&name, &value],
        )?;
        Ok(())
    })
}
