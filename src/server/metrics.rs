//! Counters for `/metrics`, in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    total: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), Histogram>>,
    tokens_embedded: AtomicU64,
    chunks_embedded: AtomicU64,
    queue_depth: AtomicU64,
    /// Ingestion work items this replica finished (cluster mode).
    items_processed: AtomicU64,
    /// Jobs whose regression set scored below the accepted baseline.
    regressions: AtomicU64,
    documents: Mutex<BTreeMap<&'static str, u64>>,
    /// (prompt, completion) tokens by generation model.
    generated: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl Metrics {
    pub fn observe_request(&self, operation: &str, status: u16, took: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let h = requests.entry((operation.to_owned(), status)).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let secs = took.as_secs_f64();
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if secs <= *bound {
                *count += 1;
            }
        }
        h.sum += secs;
        h.total += 1;
    }

    pub fn add_tokens_embedded(&self, n: usize) {
        self.tokens_embedded.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_chunks_embedded(&self, n: usize) {
        self.chunks_embedded.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_items_processed(&self, n: usize) {
        self.items_processed.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn items_processed(&self) -> u64 {
        self.items_processed.load(Ordering::Relaxed)
    }

    pub fn set_queue_depth(&self, n: usize) {
        self.queue_depth.store(n as u64, Ordering::Relaxed);
    }

    pub fn add_regression(&self) {
        self.regressions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_documents(&self, outcome: &'static str, n: u64) {
        if n > 0 {
            *self
                .documents
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(outcome)
                .or_default() += n;
        }
    }

    pub fn add_generation(&self, model: &str, prompt_tokens: usize, completion_tokens: usize) {
        let mut generated = self.generated.lock().unwrap_or_else(|p| p.into_inner());
        let entry = generated.entry(model.to_owned()).or_default();
        entry.0 += prompt_tokens as u64;
        entry.1 += completion_tokens as u64;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP quarry_requests_total API requests by operation and HTTP status.\n# TYPE quarry_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((op, status), h) in requests.iter() {
            let _ = writeln!(
                out,
                "quarry_requests_total{{operation=\"{op}\",status=\"{status}\"}} {}",
                h.total
            );
        }
        out.push_str("# HELP quarry_request_duration_seconds API request latency.\n# TYPE quarry_request_duration_seconds histogram\n");
        for ((op, status), h) in requests.iter() {
            let labels = format!("operation=\"{op}\",status=\"{status}\"");
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "quarry_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "quarry_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.total
            );
            let _ = writeln!(
                out,
                "quarry_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "quarry_request_duration_seconds_count{{{labels}}} {}",
                h.total
            );
        }
        drop(requests);
        let _ = writeln!(
            out,
            "# HELP quarry_cluster_items_processed_total Documents of ingestion jobs this replica processed (cluster mode), counted once each.\n# TYPE quarry_cluster_items_processed_total counter\nquarry_cluster_items_processed_total {}",
            self.items_processed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP quarry_regressions_total Ingestion jobs after which the knowledge base's regression set scored below the accepted baseline.\n# TYPE quarry_regressions_total counter\nquarry_regressions_total {}",
            self.regressions.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP quarry_tokens_embedded_total Word pieces embedded for queries.\n# TYPE quarry_tokens_embedded_total counter\nquarry_tokens_embedded_total {}",
            self.tokens_embedded.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP quarry_chunks_embedded_total Chunks embedded by ingestion jobs.\n# TYPE quarry_chunks_embedded_total counter\nquarry_chunks_embedded_total {}",
            self.chunks_embedded.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP quarry_encoder_queue_depth Queries waiting for the encoder.\n# TYPE quarry_encoder_queue_depth gauge\nquarry_encoder_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out.push_str("# HELP quarry_documents_total Documents handled by ingestion jobs, by outcome.\n# TYPE quarry_documents_total counter\n");
        for (outcome, n) in self
            .documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "quarry_documents_total{{outcome=\"{outcome}\"}} {n}");
        }
        out.push_str("# HELP quarry_generation_tokens_total Tokens read (prompt) and written (completion) by RetrieveAndGenerate, by model (estimated for remote models).\n# TYPE quarry_generation_tokens_total counter\n");
        for (model, (prompt, completion)) in self
            .generated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "quarry_generation_tokens_total{{model=\"{model}\",kind=\"prompt\"}} {prompt}\nquarry_generation_tokens_total{{model=\"{model}\",kind=\"completion\"}} {completion}"
            );
        }
        out
    }
}
