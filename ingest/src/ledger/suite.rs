//! The suite every ledger passes. `open` gives a new handle on the same ledger each call (on
//! PostgreSQL another connection, as another replica's would be).

use chrono::Utc;

use super::{Ledger, LedgerEntry};
use crate::job::{IngestionJob, JobStatus};

pub type OpenLedger = dyn Fn() -> Box<dyn Ledger>;

/// Generates one `#[test]` per check for an implementation.
#[macro_export]
macro_rules! ledger_suite {
    ($open:expr) => {
        $crate::ledger_suite!(@tests $open;
            entries_round_trip_and_pending_marks_survive, jobs_are_read_back_newest_first);
    };
    (@tests $open:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                $crate::ledger::suite::$name(&$open);
            }
        )*
    };
}

fn data_source() -> String {
    format!("DS{:08X}", fastrand::u32(..))
}

fn entry(key: &str) -> LedgerEntry {
    LedgerEntry {
        key: key.into(),
        size: 42,
        version: "v1".into(),
        content_hash: "abc".into(),
        sidecar_version: String::new(),
        sidecar_hash: String::new(),
        embedded_metadata_hash: String::new(),
        chunk_ids: vec!["c1".into(), "c2".into()],
        pending: false,
    }
}

pub fn entries_round_trip_and_pending_marks_survive(open: &OpenLedger) {
    let (a, b) = (open(), open());
    let ds = data_source();
    a.put(&ds, &entry("b.txt")).unwrap();
    a.put(&ds, &entry("a.txt")).unwrap();
    assert_eq!(
        b.entries(&ds).unwrap(),
        vec![entry("a.txt"), entry("b.txt")]
    );
    b.mark_pending(&ds, "a.txt").unwrap();
    b.mark_pending(&ds, "new.txt").unwrap();
    let seen = a.entry(&ds, "a.txt").unwrap().unwrap();
    assert!(seen.pending);
    assert_eq!(
        seen.chunk_ids,
        entry("a.txt").chunk_ids,
        "the old chunks stay known"
    );
    let placeholder = a.entry(&ds, "new.txt").unwrap().unwrap();
    assert!(placeholder.pending && placeholder.chunk_ids.is_empty());
    a.remove(&ds, "b.txt").unwrap();
    assert_eq!(b.entry(&ds, "b.txt").unwrap(), None);
    assert!(b.entries(&data_source()).unwrap().is_empty());
}

pub fn jobs_are_read_back_newest_first(open: &OpenLedger) {
    let (a, b) = (open(), open());
    let ds = data_source();
    let mut first = IngestionJob::starting("KB00000001", &ds, None);
    first.started_at = Utc::now() - chrono::Duration::seconds(10);
    a.save_job(&first).unwrap();
    first.status = JobStatus::Complete;
    a.save_job(&first).unwrap();
    // (one job runs per data source at a time: the second starts once the first is done)
    let second = IngestionJob::starting("KB00000001", &ds, Some("again".into()));
    a.save_job(&second).unwrap();
    first.statistics.number_of_new_documents_indexed = 3;
    a.save_job(&first).unwrap();
    let ids: Vec<String> = b
        .jobs(Some(&ds))
        .unwrap()
        .into_iter()
        .map(|j| j.ingestion_job_id)
        .collect();
    assert_eq!(
        ids,
        vec![
            second.ingestion_job_id.clone(),
            first.ingestion_job_id.clone()
        ]
    );
    let read = b.job(&first.ingestion_job_id).unwrap().unwrap();
    assert_eq!(read.status, JobStatus::Complete);
    assert_eq!(read.statistics.number_of_new_documents_indexed, 3);
    assert_eq!(b.job("NOSUCHJOB1").unwrap(), None);
}
