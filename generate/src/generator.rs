//! The one interface every generation backend implements.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A chat to complete, with Bedrock's `textInferenceConfig` knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub messages: Vec<Message>,
    pub max_tokens: usize,
    /// 0 (or none) is greedy decoding.
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop_sequences: Vec<String>,
    /// Seed for sampling, so a sampled request can be repeated.
    pub seed: u64,
    /// When to give up: backends check it between steps and end with
    /// [`FinishReason::Cancelled`].
    pub cancel: Cancel,
}

/// Asks a running generation to stop: its caller left, its deadline passed, or the server is
/// stopping. Cheap to check; backends check it between prefill chunks, between tokens and
/// between streamed pieces.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    flags: Vec<Arc<AtomicBool>>,
    deadline: Option<Instant>,
}

impl Cancel {
    /// Stops when `flag` is set.
    pub fn on(mut self, flag: Arc<AtomicBool>) -> Self {
        self.flags.push(flag);
        self
    }

    /// Stops at `deadline`.
    pub fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub fn is_cancelled(&self) -> bool {
        self.timed_out() || self.flags.iter().any(|f| f.load(Ordering::Relaxed))
    }

    pub fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Cancellation is how a request is run, not what it asks: two requests asking the same
/// are equal whatever their cancellation.
impl PartialEq for Cancel {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl GenerationRequest {
    pub fn greedy(messages: Vec<Message>, max_tokens: usize) -> Self {
        Self {
            messages,
            max_tokens,
            temperature: None,
            top_p: None,
            stop_sequences: Vec::new(),
            seed: 0,
            cancel: Cancel::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn.
    EndOfTurn,
    /// `max_tokens` was reached.
    Length,
    /// A stop sequence was produced (and is not part of the text).
    StopSequence,
    /// The caller stopped reading.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    /// The request cannot be served by this backend (e.g. the prompt does not fit).
    #[error("{0}")]
    Invalid(String),
    /// The backend failed: a server that did not answer or answered an error, a model that
    /// could not run. Bedrock's DependencyFailedException.
    #[error("{0}")]
    Backend(String),
}

/// A text generator. Calls block (a local model computes on the calling thread; a remote
/// one waits on the network), so async callers run them on a blocking thread.
pub trait Generator: Send + Sync {
    /// Gets ready to answer (loads weights), so the first request does not wait for it.
    fn warm_up(&self) -> Result<(), GenerateError> {
        Ok(())
    }

    /// How many tokens the backend's context holds (prompt and answer together).
    fn context_tokens(&self) -> usize;

    /// An estimate of how many tokens `text` takes in this backend's prompt.
    fn count_tokens(&self, text: &str) -> usize;

    /// Completes the chat. `on_text` receives the answer as it is produced, piece by piece
    /// (the pieces concatenate to the returned text); returning `Break` stops generation.
    fn generate(
        &self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, GenerateError>;
}
