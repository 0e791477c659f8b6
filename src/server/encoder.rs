//! The query encoder behind a bounded queue, on a thread of its own. Waiting requests (a
//! query each, or the texts of a `/v1/embeddings` call) are embedded together in one batch;
//! when the queue is full a request is refused at once (the caller answers 429) rather than
//! waiting without bound. A remote model sits behind the same queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use quarry_core::Embedder;
use tokio::sync::oneshot;

use super::error::ApiError;
use super::metrics::Metrics;

/// Texts of several waiting requests embedded together at most (one request's texts are
/// never split).
const MAX_BATCH: usize = 32;

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, ApiError>>,
}

#[derive(Clone)]
pub struct EncoderQueue {
    /// The model behind the queue, for what needs no queue (dimension, token counts).
    pub embedder: Arc<dyn Embedder>,
    sender: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl EncoderQueue {
    pub fn start(
        name: &str,
        embedder: Arc<dyn Embedder>,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (sender, receiver) = sync_channel(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let worker_depth = depth.clone();
        let worker_metrics = metrics.clone();
        let worker_embedder = embedder.clone();
        std::thread::Builder::new()
            .name(format!("encoder-{name}"))
            .spawn(move || run(worker_embedder, receiver, worker_depth, worker_metrics))
            .expect("spawn the encoder thread");
        Self {
            embedder,
            sender,
            depth,
            metrics,
        }
    }

    /// Embeds one query; `Throttling` at once when the queue is full.
    pub async fn embed(&self, text: String) -> Result<Vec<f32>, ApiError> {
        let mut vectors = self.embed_many(vec![text]).await?;
        vectors
            .pop()
            .ok_or_else(|| ApiError::internal("the encoder returned no vector"))
    }

    /// Embeds several texts as one request of the queue, in order.
    pub async fn embed_many(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ApiError> {
        let (reply, answer) = oneshot::channel();
        // Counted before sending, so the worker never takes away what was not yet added.
        let d = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.set_queue_depth(d);
        let sent = self.sender.try_send(Job { texts, reply });
        if sent.is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ApiError::Throttling(
                    "too many requests are waiting for the encoder; retry later".into(),
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::internal("the encoder thread has stopped"));
            }
        }
        answer
            .await
            .map_err(|_| ApiError::internal("the encoder dropped the request"))?
    }
}

fn run(
    embedder: Arc<dyn Embedder>,
    receiver: Receiver<Job>,
    depth: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    while let Ok(first) = receiver.recv() {
        let mut size = first.texts.len();
        let mut jobs = vec![first];
        while size < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => {
                    size += job.texts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let d = depth
            .fetch_sub(jobs.len(), Ordering::Relaxed)
            .saturating_sub(jobs.len());
        metrics.set_queue_depth(d);
        let texts: Vec<&str> = jobs
            .iter()
            .flat_map(|j| j.texts.iter().map(String::as_str))
            .collect();
        let tokens: usize = texts
            .iter()
            .map(|t| embedder.count_tokens(t).min(embedder.max_content_tokens()))
            .sum();
        match embedder.embed(&texts) {
            Ok(vectors) => {
                metrics.add_tokens_embedded(tokens);
                let mut vectors = vectors.into_iter();
                for job in jobs {
                    let mine: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                // A remote model that failed is a dependency of the request that failed.
                let error = match e {
                    quarry_core::EmbedError::Remote(m) => ApiError::DependencyFailed(m),
                    other => ApiError::internal(other),
                };
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}
