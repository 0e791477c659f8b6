//! The sync progress bar (on a terminal only): documents, chunks, rate, ETA.

use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quarry_ingest::SyncObserver;

pub struct SyncProgress {
    bar: ProgressBar,
    chunks: AtomicUsize,
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
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
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
}
