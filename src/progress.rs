//! The sync progress bar (on a terminal only: documents, chunks, rate, ETA), and the time
//! spent in each stage for `--timings`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quarry_ingest::{Stage, SyncObserver};

pub struct SyncProgress {
    bar: ProgressBar,
    chunks: AtomicUsize,
    stages: Mutex<[Duration; 6]>,
    bytes: AtomicUsize,
}

impl SyncProgress {
    pub fn new(label: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30.cyan/blue} {pos}/{len} documents · {msg} · {per_sec} · ETA {eta}",
            )
            .expect("valid template"),
        );
        bar.set_prefix(label.to_owned());
        Self {
            bar,
            chunks: AtomicUsize::new(0),
            stages: Mutex::new([Duration::ZERO; 6]),
            bytes: AtomicUsize::new(0),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Documents/s, MB/s and the share of time per stage.
    pub fn timings(&self, documents: u64, took: Duration) -> String {
        let stages = *self.stages.lock().unwrap_or_else(|p| p.into_inner());
        let total: f64 = stages
            .iter()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            .max(1e-9);
        let secs = took.as_secs_f64().max(1e-9);
        let shares: Vec<String> = Stage::ALL
            .iter()
            .zip(stages)
            .map(|(s, d)| {
                format!(
                    "{} {:.1}% ({:.2}s)",
                    s.name(),
                    100.0 * d.as_secs_f64() / total,
                    d.as_secs_f64()
                )
            })
            .collect();
        format!(
            "{:.1} documents/s, {:.2} MB/s, {} chunks; time by stage: {}",
            documents as f64 / secs,
            self.bytes.load(Ordering::Relaxed) as f64 / 1e6 / secs,
            self.chunks.load(Ordering::Relaxed),
            shares.join(", ")
        )
    }
}

impl SyncObserver for SyncProgress {
    fn listed(&self, documents: usize) {
        self.bar.set_length(documents as u64);
    }

    fn document_done(&self, _key: &str, chunks: usize) {
        let total = self.chunks.fetch_add(chunks, Ordering::Relaxed) + chunks;
        self.bar.set_message(format!("{total} chunks"));
        self.bar.inc(1);
    }

    fn stage(&self, stage: Stage, took: Duration, bytes: usize) {
        let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
        self.stages.lock().unwrap_or_else(|p| p.into_inner())[i] += took;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}
