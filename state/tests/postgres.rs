//! The shared suite on PostgreSQL. `make test` starts a real server
//! (`scripts/with-postgres.py`) and names it in QUARRY_TEST_PG_URL; every handle is another
//! connection, as another replica's would be.

use quarry_state::{PgWorkQueue, WorkQueue};

fn open() -> Box<dyn WorkQueue> {
    let url = std::env::var("QUARRY_TEST_PG_URL").expect(
        "QUARRY_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL \
         (or wrap cargo in scripts/with-postgres.py)",
    );
    Box::new(PgWorkQueue::open(&url, "quarry_work_items").unwrap())
}

quarry_state::work_queue_suite!(open);
