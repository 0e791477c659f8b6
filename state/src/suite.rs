//! The shared suite every state implementation passes. `open` gives a new handle on the same
//! state each time it is called (another connection: another replica, as far as the state
//! can tell), so the tests see what replicas would.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{QueueCounts, WorkQueue};

/// Opens another handle on the same work queue.
pub type OpenQueue = dyn Fn() -> Box<dyn WorkQueue>;

/// Generates one `#[test]` per check for an implementation.
#[macro_export]
macro_rules! work_queue_suite {
    ($open:expr) => {
        $crate::work_queue_suite!(@tests $open;
            enqueue_is_idempotent_and_counted, claims_are_exclusive_across_replicas,
            an_expired_lease_passes_the_item_on_and_counts_it_once,
            renewing_keeps_the_item, failures_keep_their_reasons);
    };
    (@tests $open:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                $crate::suite::$name(&$open);
            }
        )*
    };
}

/// A job id no other test (or earlier run against the same database) uses.
fn job() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "job-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("docs/{i:04}.txt")).collect()
}

const LONG: Duration = Duration::from_secs(60);

pub fn enqueue_is_idempotent_and_counted(open: &OpenQueue) {
    let q = open();
    let job = job();
    assert_eq!(q.enqueue(&job, &keys(10)).unwrap(), 10);
    assert_eq!(q.enqueue(&job, &keys(12)).unwrap(), 2);
    assert_eq!(
        q.counts(&job).unwrap(),
        QueueCounts {
            queued: 12,
            ..Default::default()
        }
    );
    assert_eq!(q.counts("another-job").unwrap(), QueueCounts::default());
}

pub fn claims_are_exclusive_across_replicas(open: &OpenQueue) {
    let job = job();
    open().enqueue(&job, &keys(200)).unwrap();
    let claimed: Vec<Vec<String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let job = job.clone();
                let q = open();
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let batch = q.claim(&job, &format!("replica-{w}"), 7, LONG).unwrap();
                        if batch.is_empty() {
                            return mine;
                        }
                        for c in batch {
                            assert!(q.finish(&c, "done", None).unwrap());
                            mine.push(c.key);
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&String> = claimed.iter().flatten().collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every item handed out exactly once");
    assert_eq!(distinct.len(), 200);
    let counts = open().counts(&job).unwrap();
    assert_eq!((counts.done, counts.queued, counts.claimed), (200, 0, 0));
}

pub fn an_expired_lease_passes_the_item_on_and_counts_it_once(open: &OpenQueue) {
    let (a, b) = (open(), open());
    let job = job();
    a.enqueue(&job, &keys(3)).unwrap();
    let dead = a
        .claim(&job, "replica-a", 3, Duration::from_millis(300))
        .unwrap();
    assert_eq!(dead.len(), 3);
    assert!(b.claim(&job, "replica-b", 3, LONG).unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(600));
    let taken = b.claim(&job, "replica-b", 3, LONG).unwrap();
    assert_eq!(
        taken.iter().map(|c| &c.key).collect::<Vec<_>>(),
        dead.iter().map(|c| &c.key).collect::<Vec<_>>()
    );
    assert!(taken.iter().all(|c| c.attempt == 2));
    // The replica that lost its lease comes back: its work is not counted.
    assert!(!a.finish(&dead[0], "done", None).unwrap());
    assert!(!a.renew(&dead[1], LONG).unwrap());
    for c in &taken {
        assert!(b.finish(c, "done", None).unwrap());
    }
    assert!(
        !b.finish(&taken[0], "done", None).unwrap(),
        "finished twice"
    );
    let counts = a.counts(&job).unwrap();
    assert_eq!((counts.done, counts.claimed, counts.queued), (3, 0, 0));
}

pub fn renewing_keeps_the_item(open: &OpenQueue) {
    let (a, b) = (open(), open());
    let job = job();
    a.enqueue(&job, &keys(1)).unwrap();
    let mine = a
        .claim(&job, "replica-a", 1, Duration::from_millis(400))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(a.renew(&mine[0], LONG).unwrap());
    std::thread::sleep(Duration::from_millis(400));
    assert!(b.claim(&job, "replica-b", 1, LONG).unwrap().is_empty());
    assert!(a.finish(&mine[0], "done", None).unwrap());
}

pub fn failures_keep_their_reasons(open: &OpenQueue) {
    let q = open();
    let job = job();
    q.enqueue(&job, &keys(3)).unwrap();
    let claims = q.claim(&job, "replica-a", 3, LONG).unwrap();
    assert!(
        q.finish(&claims[0], "failed", Some("malformed PDF"))
            .unwrap()
    );
    assert!(q.finish(&claims[1], "new", None).unwrap());
    assert_eq!(
        q.failures(&job).unwrap(),
        vec![(claims[0].key.clone(), "malformed PDF".to_owned())]
    );
    let counts = q.counts(&job).unwrap();
    assert_eq!((counts.done, counts.failed, counts.claimed), (1, 1, 1));
    assert_eq!(
        q.outcomes(&job).unwrap(),
        vec![("failed".to_owned(), 1), ("new".to_owned(), 1)]
    );
}
