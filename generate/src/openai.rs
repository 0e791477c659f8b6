//! Any OpenAI-compatible chat-completions server (vLLM, llama.cpp's server, Ollama, OpenAI):
//! `POST {base_url}/chat/completions` with `stream: true`, read as server-sent events.
//! Connection failures, timeouts, 429 and 5xx answers are retried with backoff while nothing
//! has been streamed yet; anything else is a backend failure naming the server and its reason.

use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::time::Duration;

use serde_json::{Value, json};

use crate::stop::StopScanner;
use crate::{FinishReason, GenerateError, Generation, GenerationRequest, Generator};

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Up to and including the version, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// The whole request, first byte to last.
    pub timeout: Duration,
    /// Attempts after the first, for transient failures.
    pub max_retries: u32,
    pub context_tokens: usize,
}

pub struct OpenAiGenerator {
    config: OpenAiConfig,
    agent: ureq::Agent,
}

impl OpenAiGenerator {
    pub fn new(config: OpenAiConfig) -> Self {
        let agent = crate::http::agent(config.timeout);
        Self { config, agent }
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }

    fn body(&self, request: &GenerationRequest) -> Value {
        let mut body = json!({
            "model": self.config.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "stream": true,
        });
        match request.temperature {
            Some(t) if t > 0.0 => {
                body["temperature"] = json!(t);
                if let Some(p) = request.top_p {
                    body["top_p"] = json!(p);
                }
                body["seed"] = json!(request.seed);
            }
            _ => body["temperature"] = json!(0.0),
        }
        if !request.stop_sequences.is_empty() {
            body["stop"] = json!(request.stop_sequences);
        }
        body
    }
}

/// What one attempt came to.
enum Attempt {
    Done(Generation),
    /// Worth another try (nothing was streamed): the reason, and how long the server asked
    /// us to wait.
    Transient(String, Option<Duration>),
}

impl Generator for OpenAiGenerator {
    fn context_tokens(&self) -> usize {
        self.config.context_tokens
    }

    /// About four characters a token: the backend's tokenizer is not known here.
    fn count_tokens(&self, text: &str) -> usize {
        text.chars().count().div_ceil(4)
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, GenerateError> {
        let body = self.body(request);
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            if request.cancel.is_cancelled() {
                return Ok(Generation {
                    text: String::new(),
                    finish: FinishReason::Cancelled,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                });
            }
            match self.attempt(&body, request, on_text)? {
                Attempt::Done(g) => return Ok(g),
                Attempt::Transient(reason, wait) => {
                    tracing::warn!(url = %self.url(), attempt, %reason, "generation backend failed; retrying");
                    last = reason;
                    if attempt < self.config.max_retries {
                        crate::http::pause(attempt, wait);
                    }
                }
            }
        }
        Err(GenerateError::Backend(format!(
            "the generation backend {} failed after {} attempts: {last}",
            self.url(),
            self.config.max_retries + 1
        )))
    }
}

impl OpenAiGenerator {
    fn attempt(
        &self,
        body: &Value,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Attempt, GenerateError> {
        let url = self.url();
        let mut call = self.agent.post(&url).header("accept", "text/event-stream");
        if let Some(key) = &self.config.api_key {
            call = call.header("authorization", &format!("Bearer {key}"));
        }
        let response = match call.send_json(body) {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Transient(e.to_string(), None)),
        };
        let status = response.status().as_u16();
        if status != 200 {
            let wait = crate::http::retry_after(&response);
            let text = response.into_body().read_to_string().unwrap_or_default();
            let reason = format!("HTTP {status}: {}", error_message(&text));
            return if status == 429 || (500..600).contains(&status) {
                Ok(Attempt::Transient(reason, wait))
            } else {
                Err(GenerateError::Backend(format!(
                    "the generation backend {url} answered {reason}"
                )))
            };
        }
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let reader = BufReader::new(response.into_body().into_reader());
        let mut stops = StopScanner::new(&request.stop_sequences);
        let mut out = Collected::default();
        let result = if is_stream {
            read_events(reader, &mut |delta, finish| {
                if request.cancel.is_cancelled() {
                    // Dropping the response closes the connection: the server stops too.
                    out.finish = Some(FinishReason::Cancelled);
                    out.stopped = true;
                    return ControlFlow::Break(());
                }
                out.take(delta, finish, &mut stops, on_text)
            })
        } else {
            read_whole(reader, &mut |delta, finish| {
                out.take(delta, finish, &mut stops, on_text)
            })
        };
        if let Err(reason) = result {
            return if out.text.is_empty() && !out.stopped {
                Ok(Attempt::Transient(reason, None))
            } else {
                Err(GenerateError::Backend(format!(
                    "the generation backend {url} broke off its answer: {reason}"
                )))
            };
        }
        if !out.stopped {
            let rest = stops.finish();
            if !rest.is_empty() {
                out.text.push_str(&rest);
                let _ = on_text(&rest);
            }
        }
        Ok(Attempt::Done(Generation {
            completion_tokens: self.count_tokens(&out.text),
            prompt_tokens: request
                .messages
                .iter()
                .map(|m| self.count_tokens(&m.content))
                .sum(),
            text: out.text,
            finish: out.finish.unwrap_or(FinishReason::EndOfTurn),
        }))
    }
}

#[derive(Default)]
struct Collected {
    text: String,
    finish: Option<FinishReason>,
    stopped: bool,
}

impl Collected {
    /// Takes one delta; `Break` when reading should end.
    fn take(
        &mut self,
        delta: &str,
        finish: Option<&str>,
        stops: &mut StopScanner,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if !delta.is_empty() {
            let (safe, stopped) = stops.push(delta);
            if !safe.is_empty() {
                self.text.push_str(&safe);
                if on_text(&safe).is_break() {
                    self.finish = Some(FinishReason::Cancelled);
                    self.stopped = true;
                    return ControlFlow::Break(());
                }
            }
            if stopped {
                self.finish = Some(FinishReason::StopSequence);
                self.stopped = true;
                return ControlFlow::Break(());
            }
        }
        if let Some(reason) = finish {
            self.finish = Some(if reason == "length" {
                FinishReason::Length
            } else {
                FinishReason::EndOfTurn
            });
        }
        ControlFlow::Continue(())
    }
}

type OnDelta<'a> = dyn FnMut(&str, Option<&str>) -> ControlFlow<()> + 'a;

/// Reads server-sent events until `data: [DONE]` (or the end of the body).
fn read_events(reader: impl BufRead, on_delta: &mut OnDelta<'_>) -> Result<(), String> {
    let mut data = String::new();
    for line in reader.lines() {
        let line = line.map_err(|e| e.to_string())?;
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            continue;
        }
        if !line.is_empty() || data.is_empty() {
            continue; // comments, `event:`/`id:` fields, keep-alives
        }
        let event = std::mem::take(&mut data);
        if event == "[DONE]" {
            return Ok(());
        }
        if dispatch(&event, on_delta)?.is_break() {
            return Ok(());
        }
    }
    if !data.is_empty() && data != "[DONE]" {
        let _ = dispatch(&data, on_delta)?;
    }
    Ok(())
}

fn dispatch(event: &str, on_delta: &mut OnDelta<'_>) -> Result<ControlFlow<()>, String> {
    let value: Value =
        serde_json::from_str(event).map_err(|e| format!("an event that is not JSON ({e})"))?;
    if value.get("error").is_some() {
        return Err(error_message(event));
    }
    let choice = &value["choices"][0];
    let delta = choice["delta"]["content"].as_str().unwrap_or("");
    Ok(on_delta(delta, choice["finish_reason"].as_str()))
}

/// A server that answered with one JSON completion instead of a stream.
fn read_whole(mut reader: impl BufRead, on_delta: &mut OnDelta<'_>) -> Result<(), String> {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("an answer that is not JSON ({e})"))?;
    let choice = &value["choices"][0];
    let content = choice["message"]["content"]
        .as_str()
        .ok_or_else(|| "an answer without choices[0].message.content".to_string())?;
    let _ = on_delta(content, choice["finish_reason"].as_str());
    Ok(())
}

/// The `error.message` of an OpenAI-style error body, or the body itself (shortened).
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["error"].as_str())
                .or_else(|| v["message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_keep_alives_comments_and_multi_line_data() {
        let stream = ": keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n\
            event: message\ndata: {\"choices\":[{\"delta\":\ndata: {\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
            data: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n";
        let mut got = Vec::new();
        read_events(stream.as_bytes(), &mut |d, f| {
            got.push((d.to_string(), f.map(str::to_string)));
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(
            got,
            vec![
                (String::new(), None),
                ("Hel".into(), None),
                ("lo".into(), Some("stop".into()))
            ]
        );
    }

    #[test]
    fn an_error_event_is_an_error_with_its_message() {
        let stream = "data: {\"error\":{\"message\":\"model overloaded\"}}\n\n";
        let err =
            read_events(stream.as_bytes(), &mut |_, _| ControlFlow::Continue(())).unwrap_err();
        assert_eq!(err, "model overloaded");
    }
}
