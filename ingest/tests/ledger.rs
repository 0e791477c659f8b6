//! The ledger suite on both implementations: SQLite (one node) and PostgreSQL (a cluster;
//! `make test` starts a real server and names it in QUARRY_TEST_PG_URL). Every handle is a
//! connection of its own.

use std::sync::Arc;

use quarry_ingest::{Ledger, PgLedger, SqliteLedger};

mod sqlite {
    use super::*;

    fn open() -> Box<dyn Ledger> {
        // One file shared by every handle of this test process.
        static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
        Box::new(SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap())
    }

    quarry_ingest::ledger_suite!(open);
}

mod postgres {
    use super::*;

    fn open() -> Box<dyn Ledger> {
        let url = std::env::var("QUARRY_TEST_PG_URL").expect(
            "QUARRY_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL",
        );
        let db = quarry_state::PgConnection::connect(&url).unwrap();
        db.run(quarry_state::schema::migrate).unwrap();
        Box::new(PgLedger::new(Arc::new(db), "KB00000001"))
    }

    quarry_ingest::ledger_suite!(open);
}
