//! An ingestion job's documents as a queue of work items that workers claim under leases.
//!
//! An item is `queued`, `claimed` (by a worker, until its lease runs out), or finished
//! (`done` or `failed` with a reason). A claim carries the item's attempt number; finishing
//! or renewing it succeeds only while that attempt still holds the item, so a worker whose
//! lease expired (and whose item another worker took) cannot count it a second time.

mod postgres;
mod sqlite;

use std::time::Duration;

pub use self::postgres::PgWorkQueue;
pub use self::sqlite::SqliteWorkQueue;
use crate::StateError;

/// One item handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job_id: String,
    pub key: String,
    /// Which attempt at the item this is (1 for the first claim).
    pub attempt: i64,
}

/// Where a job's items are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub queued: u64,
    pub claimed: u64,
    pub done: u64,
    pub failed: u64,
}

impl QueueCounts {
    /// Counts `n` items in `state` (as the tables name states).
    fn add(&mut self, state: &str, n: u64) {
        match state {
            "queued" => self.queued += n,
            "claimed" => self.claimed += n,
            "done" => self.done += n,
            _ => self.failed += n,
        }
    }
}

pub trait WorkQueue: Send + Sync {
    /// Adds items to a job; keys already there are left as they are. Returns how many were
    /// new.
    fn enqueue(&self, job_id: &str, keys: &[String]) -> Result<usize, StateError>;

    /// Up to `max` items of the job that are queued, or claimed under a lease that has run
    /// out, now claimed by `worker` for `lease`. Two workers never get the same item while
    /// a lease holds.
    fn claim(
        &self,
        job_id: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StateError>;

    /// Extends a claim's lease; `false` when the claim no longer holds the item.
    fn renew(&self, claim: &Claim, lease: Duration) -> Result<bool, StateError>;

    /// Finishes a claimed item, `done` or failed with `failure`, recording what came of it
    /// (`outcome`: a word the caller chooses, counted by [`WorkQueue::outcomes`]); `false`
    /// (and nothing recorded) when the claim no longer holds the item.
    fn finish(
        &self,
        claim: &Claim,
        outcome: &str,
        failure: Option<&str>,
    ) -> Result<bool, StateError>;

    /// How many finished items of a job had each outcome.
    fn outcomes(&self, job_id: &str) -> Result<Vec<(String, u64)>, StateError>;

    fn counts(&self, job_id: &str) -> Result<QueueCounts, StateError>;

    /// The failed items of a job and why, by key.
    fn failures(&self, job_id: &str) -> Result<Vec<(String, String)>, StateError>;
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
