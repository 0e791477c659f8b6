//! The shared suite on PostgreSQL. `make test` starts a real server
//! (`scripts/with-postgres.py`) and names it in QUARRY_TEST_PG_URL; every handle is another
//! connection, as another replica's would be.

use quarry_state::{PgWorkQueue, WorkQueue};

fn open() -> Box<dyn WorkQueue> {
    let url = std::env::var("QUARRY_TEST_PG_URL").expect(
        "QUARRY_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL \
         (or wrap cargo in scripts/with-postgres.py)",
    );
    Box::new(PgWorkQueue::open(&url).unwrap())
}

quarry_state::work_queue_suite!(open);

/// A replica of an older build meeting a database a newer one has migrated refuses it,
/// saying why; one of the same build opens it.
#[test]
fn a_newer_schema_is_refused_with_a_clear_message() {
    let url = std::env::var("QUARRY_TEST_PG_URL").expect("QUARRY_TEST_PG_URL");
    // A database of its own, so the other tests' schema stays as it is.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let name = format!("schema_{}", std::process::id());
    // (one statement a call: PostgreSQL runs several sent together as one transaction)
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let own = format!("{}/{name}", url.rsplit_once('/').unwrap().0);
    assert!(PgWorkQueue::open(&own).is_ok());
    assert!(
        PgWorkQueue::open(&own).is_ok(),
        "opening again migrates nothing"
    );
    let mut db = postgres::Client::connect(&own, postgres::NoTls).unwrap();
    let version = quarry_state::schema::SCHEMA_VERSION;
    db.execute(
        "INSERT INTO quarry_schema (version) VALUES ($1)",
        &[&(version + 1)],
    )
    .unwrap();
    let e = PgWorkQueue::open(&own)
        .err()
        .expect("a newer schema is refused");
    let message = e.to_string();
    assert!(
        message.contains(&format!("schema version {}", version + 1))
            && message.contains(&format!("({version})"))
            && message.contains("upgrade"),
        "{message}"
    );
    drop(db);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .unwrap();
}
