//! Embedding models on another machine: any server speaking OpenAI's `/v1/embeddings`
//! (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM, another Quarry) or text-embeddings-inference's
//! native `/embed`. Texts go out in batches, several requests in flight at once; connection
//! errors, 429 and 5xx are retried with backoff (or the server's `Retry-After`); every answer
//! is checked for its count and its vectors' length.

mod tokenizer;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use quarry_core::config::RemoteEmbeddingConfig;
use quarry_core::{EmbedError, Embedder, TokenCounter};
use serde_json::{Value, json};
pub use tokenizer::RemoteTokenizer;

/// The wire protocol a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST {base_url}/embeddings` with `{"model", "input": [...]}`.
    OpenAi,
    /// `POST {base_url}/embed` with `{"inputs": [...], "truncate": true}`.
    Tei,
}

pub struct RemoteEmbedder {
    protocol: Protocol,
    config: RemoteEmbeddingConfig,
    api_key: Option<String>,
    tokenizer: RemoteTokenizer,
    agent: ureq::Agent,
    /// The servers (`base_urls`, or `base_url` alone).
    servers: Vec<String>,
    /// Which server the next batch starts on.
    turn: AtomicUsize,
}

/// One batch's vectors, or why there are none.
type BatchResult = Result<Vec<Vec<f32>>, EmbedError>;

/// What one attempt came to.
enum Attempt {
    Done(Vec<Vec<f32>>),
    /// Worth another try: the reason, and how long the server asked us to wait.
    Transient(String, Option<Duration>),
}

impl RemoteEmbedder {
    /// Reads the API key from its variable and loads the tokenizer; nothing is sent yet.
    pub fn new(protocol: Protocol, config: RemoteEmbeddingConfig) -> Result<Self, EmbedError> {
        let api_key = match &config.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                EmbedError::Remote(format!(
                    "api_key_env: environment variable {var} is not set"
                ))
            })?),
            None => None,
        };
        let tokenizer =
            RemoteTokenizer::load(config.tokenizer.as_deref()).map_err(EmbedError::Tokenizer)?;
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(config.timeout_secs.max(1))))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut servers = config.base_urls.clone();
        if servers.is_empty() {
            servers.push(config.base_url.clone());
        }
        Ok(Self {
            protocol,
            config,
            api_key,
            tokenizer,
            agent,
            servers,
            turn: AtomicUsize::new(0),
        })
    }

    /// The endpoint of server `i` (wrapping round).
    fn url(&self, i: usize) -> String {
        let base = self.servers[i % self.servers.len()].trim_end_matches('/');
        match self.protocol {
            Protocol::OpenAi => format!("{base}/embeddings"),
            Protocol::Tei => format!("{base}/embed"),
        }
    }

    /// All the endpoints, for messages.
    fn urls(&self) -> String {
        (0..self.servers.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn body(&self, texts: &[&str]) -> Value {
        match self.protocol {
            Protocol::OpenAi => json!({
                "model": self.config.model.clone().unwrap_or_default(),
                "input": texts,
                "encoding_format": "float",
            }),
            Protocol::Tei => json!({ "inputs": texts, "truncate": true }),
        }
    }

    /// One batch, retried as configured: each attempt on the next server, so with several a
    /// failing one is passed over (a backoff only once every server has been tried).
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = self.body(texts);
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            let url = self.url(first + attempt as usize);
            match self.attempt(&url, &body, texts.len())? {
                Attempt::Done(vectors) => return Ok(vectors),
                Attempt::Transient(reason, wait) => {
                    tracing::warn!(%url, attempt, %reason, "embedding server failed; retrying");
                    last = format!("{url}: {reason}");
                    let round_done = (attempt as usize + 1).is_multiple_of(self.servers.len());
                    if attempt < self.config.max_retries && (round_done || wait.is_some()) {
                        let backoff = Duration::from_millis(200 << attempt.min(6));
                        std::thread::sleep(wait.unwrap_or(backoff).min(Duration::from_secs(30)));
                    }
                }
            }
        }
        Err(EmbedError::Remote(format!(
            "{} failed after {} attempts: {last}",
            self.urls(),
            self.config.max_retries + 1
        )))
    }

    fn attempt(&self, url: &str, body: &Value, expected: usize) -> Result<Attempt, EmbedError> {
        let mut call = self.agent.post(url);
        if let Some(key) = &self.api_key {
            call = call.header("authorization", &format!("Bearer {key}"));
        }
        let mut response = match call.send_json(body) {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Transient(e.to_string(), None)),
        };
        let status = response.status().as_u16();
        let text = match response.body_mut().read_to_string() {
            Ok(t) => t,
            Err(e) => return Ok(Attempt::Transient(format!("reading the answer: {e}"), None)),
        };
        if status != 200 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let reason = format!("HTTP {status}: {}", error_message(&text));
            return if status == 429 || (500..600).contains(&status) {
                Ok(Attempt::Transient(reason, wait))
            } else {
                Err(EmbedError::Remote(format!("{url} answered {reason}")))
            };
        }
        let vectors = self
            .parse(&text)
            .map_err(|e| EmbedError::Remote(format!("{url}: {e}")))?;
        if vectors.len() != expected {
            return Err(EmbedError::Remote(format!(
                "{url} returned {} vectors for {expected} texts",
                vectors.len()
            )));
        }
        if let Some(v) = vectors.iter().find(|v| v.len() != self.config.dimensions) {
            return Err(EmbedError::Remote(format!(
                "{url} returned vectors of {} dimensions; the model is configured with dimensions = {}",
                v.len(),
                self.config.dimensions
            )));
        }
        Ok(Attempt::Done(vectors))
    }

    fn parse(&self, text: &str) -> Result<Vec<Vec<f32>>, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("the answer is not JSON: {e}"))?;
        let vector = |v: &Value| -> Result<Vec<f32>, String> {
            v.as_array()
                .ok_or("an embedding is not a list of numbers")?
                .iter()
                .map(|x| {
                    x.as_f64()
                        .map(|f| f as f32)
                        .ok_or_else(|| "an embedding is not a list of numbers".to_owned())
                })
                .collect()
        };
        match self.protocol {
            Protocol::Tei => value
                .as_array()
                .ok_or("the answer is not a list of embeddings")?
                .iter()
                .map(vector)
                .collect(),
            Protocol::OpenAi => {
                let data = value["data"]
                    .as_array()
                    .ok_or("the answer has no `data` list")?;
                let mut indexed: Vec<(usize, Vec<f32>)> = data
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let index = d["index"].as_u64().map_or(i, |n| n as usize);
                        Ok((index, vector(&d["embedding"])?))
                    })
                    .collect::<Result<_, String>>()?;
                indexed.sort_by_key(|(i, _)| *i);
                if indexed.iter().enumerate().any(|(i, (j, _))| i != *j) {
                    return Err("the answer's indexes are not 0..n".into());
                }
                Ok(indexed.into_iter().map(|(_, v)| v).collect())
            }
        }
    }
}

/// The `message` of an OpenAI- or TEI-style error body, or the body itself, shortened.
fn error_message(body: &str) -> String {
    let value: Option<Value> = serde_json::from_str(body).ok();
    let message = value.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
    });
    let text = message.unwrap_or(body);
    text.chars().take(300).collect()
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

impl TokenCounter for RemoteEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.count(text)
    }

    fn max_content_tokens(&self) -> usize {
        self.config.max_tokens
    }
}

impl Embedder for RemoteEmbedder {
    fn dimension(&self) -> usize {
        self.config.dimensions
    }

    /// Batches of `batch_size`, up to `max_concurrent` of them in flight; the vectors come
    /// back in the texts' order, unit length. Texts longer than `max_tokens` are cut first.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let cut: Vec<std::borrow::Cow<'_, str>> = texts
            .iter()
            .map(|t| self.tokenizer.truncate(t, self.config.max_tokens))
            .collect();
        let cut: Vec<&str> = cut.iter().map(|c| c.as_ref()).collect();
        let batches: Vec<&[&str]> = cut.chunks(self.config.batch_size.max(1)).collect();
        let results: Vec<Mutex<Option<BatchResult>>> =
            batches.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let workers = self.config.max_concurrent.clamp(1, batches.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(batch) = batches.get(i) else {
                            break;
                        };
                        let result = self.embed_batch(batch);
                        let failed = result.is_err();
                        *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                        if failed {
                            // The others would fail the same way: stop taking batches.
                            next.store(batches.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                });
            }
        });
        let mut out = Vec::with_capacity(texts.len());
        for slot in results {
            match slot.into_inner().unwrap_or_else(|p| p.into_inner()) {
                Some(Ok(vectors)) => out.extend(vectors.into_iter().map(normalise)),
                Some(Err(e)) => return Err(e),
                None => {} // not taken, because another batch failed (its error comes first)
            }
        }
        if out.len() != texts.len() {
            return Err(EmbedError::Remote(format!(
                "{} returned {} vectors for {} texts",
                self.urls(),
                out.len(),
                texts.len()
            )));
        }
        Ok(out)
    }
}
