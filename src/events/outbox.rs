//! One sink's queue of events, kept as files (`<data_dir>/events/outbox/<sink>/<seq>.json`)
//! until the sink has them, so none is lost to a restart: a thread sends the oldest, retries
//! with backoff (0.5 s doubling to 30 s) and after `max_attempts` moves it to
//! `<data_dir>/events/dead-letter.jsonl` with the last error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::sinks::Sink;

pub struct Outbox {
    name: String,
    dir: PathBuf,
    dead_letter: PathBuf,
    next: AtomicU64,
    /// Rung when an event is queued.
    wake: (Mutex<()>, Condvar),
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_millis(500u64 << attempts.saturating_sub(1).min(6)).min(Duration::from_secs(30))
}

impl Outbox {
    pub fn start(
        events_dir: &Path,
        sink: Box<dyn Sink>,
        max_attempts: u32,
    ) -> anyhow::Result<Arc<Self>> {
        let name = sink.name();
        let dir = events_dir.join("outbox").join(&name);
        std::fs::create_dir_all(&dir)?;
        let last = Self::queued_in(&dir)?
            .last()
            .and_then(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
            .unwrap_or(0);
        let outbox = Arc::new(Self {
            name,
            dir,
            dead_letter: events_dir.join("dead-letter.jsonl"),
            next: AtomicU64::new(last + 1),
            wake: (Mutex::new(()), Condvar::new()),
        });
        let worker = outbox.clone();
        std::thread::Builder::new()
            .name(format!("events-{}", outbox.name))
            .spawn(move || worker.run(sink.as_ref(), max_attempts))?;
        Ok(outbox)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn queued_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Queues an event (written to a temporary name, then renamed into place).
    pub fn push(&self, event: &Value) -> std::io::Result<()> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{seq:020}.json"));
        write_atomically(&path, &json!({ "event": event, "attempts": 0 }))?;
        let _guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.1.notify_all();
        Ok(())
    }

    /// True once nothing is queued, false if `deadline` came first.
    pub fn wait_empty(&self, deadline: Instant) -> bool {
        loop {
            if Self::queued_in(&self.dir).map_or(true, |q| q.is_empty()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn run(&self, sink: &dyn Sink, max_attempts: u32) {
        loop {
            let oldest = Self::queued_in(&self.dir)
                .ok()
                .and_then(|q| q.into_iter().next());
            let Some(path) = oldest else {
                let guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
                let _ = self.wake.1.wait_timeout(guard, Duration::from_secs(1));
                continue;
            };
            let Ok(mut queued) = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
            else {
                // Not ours to read (torn by a crash before its rename): set it aside.
                let _ = std::fs::rename(&path, path.with_extension("unreadable"));
                continue;
            };
            match sink.deliver(&queued["event"]) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                }
                Err(error) => {
                    let attempts = queued["attempts"].as_u64().unwrap_or(0) as u32 + 1;
                    tracing::warn!(sink = %self.name, %error, attempts, "a job event was not delivered");
                    if attempts >= max_attempts {
                        self.dead_letter(&queued["event"], &error, attempts);
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    queued["attempts"] = json!(attempts);
                    queued["lastError"] = json!(error);
                    let _ = write_atomically(&path, &queued);
                    std::thread::sleep(backoff(attempts));
                }
            }
        }
    }

    fn dead_letter(&self, event: &Value, error: &str, attempts: u32) {
        tracing::error!(sink = %self.name, %error, attempts, "a job event goes to the dead-letter file");
        let line =
            json!({ "sink": self.name, "attempts": attempts, "error": error, "event": event });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dead_letter)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::error!(error = %e, "could not write the dead-letter file");
        }
    }
}

fn write_atomically(path: &Path, value: &Value) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, value.to_string())?;
    std::fs::rename(&tmp, path)
}
