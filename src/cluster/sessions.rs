//! RetrieveAndGenerate sessions in the cluster's database, so a conversation started on one
//! replica continues on any other. Idle sessions are forgotten as on one node.

use std::sync::Arc;
use std::time::Duration;

use quarry_generate::{MAX_TURNS, SessionError, Sessions, Turn, valid_session_id};
use quarry_state::{PgConnection, StateError};

pub struct PgSessions {
    db: Arc<PgConnection>,
    idle: Duration,
}

impl PgSessions {
    pub fn new(db: Arc<PgConnection>, idle: Duration) -> Self {
        Self { db, idle }
    }

    fn idle_secs(&self) -> f64 {
        self.idle.as_secs_f64()
    }
}

fn store(e: StateError) -> SessionError {
    SessionError::Io(std::io::Error::other(e.to_string()))
}

impl Sessions for PgSessions {
    fn create(&self, owner: &str) -> Result<String, SessionError> {
        let id = quarry_core::ids::random_uuid();
        let (row_id, owner, idle) = (id.clone(), owner.to_owned(), self.idle_secs());
        self.db
            .run(move |c| {
                c.execute(
                    "DELETE FROM quarry_sessions
                     WHERE updated_at < now() - $1 * interval '1 second'",
                    &[&idle],
                )?;
                c.execute(
                    "INSERT INTO quarry_sessions (id, owner, turns) VALUES ($1, $2, '[]')",
                    &[&row_id, &owner],
                )?;
                Ok(())
            })
            .map_err(store)?;
        Ok(id)
    }

    fn turns(&self, id: &str, owner: Option<&str>) -> Result<Vec<Turn>, SessionError> {
        if !valid_session_id(id) {
            return Err(SessionError::Unknown(id.into()));
        }
        let (row_id, idle) = (id.to_owned(), self.idle_secs());
        let row: Option<(String, String)> = self
            .db
            .run(move |c| {
                Ok(c.query_opt(
                    "SELECT owner, turns FROM quarry_sessions
                     WHERE id = $1 AND updated_at >= now() - $2 * interval '1 second'",
                    &[&row_id, &idle],
                )?
                .map(|r| (r.get(0), r.get(1))))
            })
            .map_err(store)?;
        match row {
            Some((o, _)) if owner.is_some_and(|owner| owner != o) => {
                Err(SessionError::Unknown(id.into()))
            }
            Some((_, turns)) => serde_json::from_str(&turns)
                .map_err(|e| SessionError::Io(std::io::Error::other(e.to_string()))),
            None => Err(SessionError::Unknown(id.into())),
        }
    }

    fn append(&self, id: &str, owner: Option<&str>, turn: Turn) -> Result<(), SessionError> {
        if !valid_session_id(id) {
            return Err(SessionError::Unknown(id.into()));
        }
        let (row_id, owner, idle) = (id.to_owned(), owner.map(str::to_owned), self.idle_secs());
        let appended = self
            .db
            .run(move |c| {
                // Read and write under the row's lock, so turns added at once on two
                // replicas are both kept.
                let mut tx = c.transaction()?;
                let Some(row) = tx.query_opt(
                    "SELECT owner, turns FROM quarry_sessions
                     WHERE id = $1 AND updated_at >= now() - $2 * interval '1 second'
                     FOR UPDATE",
                    &[&row_id, &idle],
                )?
                else {
                    return Ok(false);
                };
                let (o, turns): (String, String) = (row.get(0), row.get(1));
                if owner.as_deref().is_some_and(|owner| owner != o) {
                    return Ok(false);
                }
                let mut turns: Vec<Turn> = serde_json::from_str(&turns)
                    .map_err(|e| StateError::Database(e.to_string()))?;
                turns.push(turn);
                let start = turns.len().saturating_sub(MAX_TURNS);
                let body = serde_json::to_string(&turns[start..])
                    .map_err(|e| StateError::Database(e.to_string()))?;
                tx.execute(
                    "UPDATE quarry_sessions SET turns = $2, updated_at = now() WHERE id = $1",
                    &[&row_id, &body],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .map_err(store)?;
        if appended {
            Ok(())
        } else {
            Err(SessionError::Unknown(id.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Box<dyn Sessions> {
        let url = std::env::var("QUARRY_TEST_PG_URL").expect(
            "QUARRY_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL",
        );
        let db = PgConnection::connect(&url).unwrap();
        db.run(quarry_state::schema::migrate).unwrap();
        Box::new(PgSessions::new(Arc::new(db), Duration::from_secs(3600)))
    }

    #[test]
    fn turns_are_kept_in_order_across_replicas() {
        quarry_generate::session_suite::turns_are_kept_in_order_across_handles(&open);
    }

    #[test]
    fn a_session_answers_only_its_owner_on_every_replica() {
        quarry_generate::session_suite::a_session_answers_only_its_owner(&open);
    }
}
