#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database: {0}")]
    Database(String),
    /// Another replica, of a newer Quarry, has migrated the database past this build.
    #[error(
        "the cluster's database is at schema version {found}, newer than this Quarry knows ({known}): upgrade this replica to the version the others run"
    )]
    NewerSchema { found: i64, known: i64 },
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<postgres::Error> for StateError {
    fn from(e: postgres::Error) -> Self {
        // The client's own text is just "db error"; the server's message is in here.
        match e.as_db_error() {
            Some(db) => Self::Database(format!("{}: {}", db.code().code(), db.message())),
            None => Self::Database(e.to_string()),
        }
    }
}
