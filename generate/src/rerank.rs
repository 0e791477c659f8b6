//! Reranking models: given a query and candidate passages, a relevance score for each. One
//! backend so far, [`RerankApi`]: any server speaking the common `/rerank` protocol —
//! `{"model", "query", "documents": [...], "top_n"}` in, `{"results": [{"index",
//! "relevance_score"}]}` out (Cohere's shape, also served by text-embeddings-inference,
//! vLLM, llama.cpp's server, Jina and Voyage). Connection errors, 429 and 5xx are retried
//! with backoff (or after the server's `Retry-After`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

/// One candidate's place after reranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// Its position among the documents given.
    pub index: usize,
    pub score: f32,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RerankError(pub String);

/// Scores documents against a query. Blocking; call it off async threads.
pub trait Reranker: Send + Sync {
    /// The best `top_n` documents (all when `top_n` is at least their number), best first.
    fn rerank(
        &self,
        query: &str,
        documents: &[String],
        top_n: usize,
    ) -> Result<Vec<Ranked>, RerankError>;
}

pub struct RerankApiConfig {
    /// Up to where `/rerank` is appended.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub max_retries: u32,
}

pub struct RerankApi {
    config: RerankApiConfig,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct Answer {
    results: Vec<AnswerItem>,
}

#[derive(Deserialize)]
struct AnswerItem {
    index: usize,
    relevance_score: f32,
}

impl RerankApi {
    pub fn new(config: RerankApiConfig) -> Self {
        let agent = crate::http::agent(config.timeout);
        Self { config, agent }
    }

    fn url(&self) -> String {
        format!("{}/rerank", self.config.base_url.trim_end_matches('/'))
    }

    /// One request: the ranking, or why not and whether another try may help.
    fn attempt(
        &self,
        body: &serde_json::Value,
    ) -> Result<String, (String, bool, Option<Duration>)> {
        let mut call = self.agent.post(&self.url());
        if let Some(key) = &self.config.api_key {
            call = call.header("authorization", &format!("Bearer {key}"));
        }
        let response = call
            .send_json(body)
            .map_err(|e| (e.to_string(), true, None))?;
        let status = response.status().as_u16();
        let wait = crate::http::retry_after(&response);
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| (e.to_string(), true, None))?;
        match status {
            200 => Ok(text),
            429 | 500..=599 => Err((format!("HTTP {status}: {text}"), true, wait)),
            _ => Err((format!("HTTP {status}: {text}"), false, None)),
        }
    }
}

impl Reranker for RerankApi {
    fn rerank(
        &self,
        query: &str,
        documents: &[String],
        top_n: usize,
    ) -> Result<Vec<Ranked>, RerankError> {
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        let top_n = top_n.min(documents.len());
        let body = json!({
            "model": self.config.model,
            "query": query,
            "documents": documents,
            "top_n": top_n,
        });
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            match self.attempt(&body) {
                Ok(text) => return parse(&text, documents.len(), top_n, &self.url()),
                Err((reason, false, _)) => {
                    return Err(RerankError(format!(
                        "the reranking model at {} answered {reason}",
                        self.url()
                    )));
                }
                Err((reason, true, wait)) => {
                    tracing::warn!(url = %self.url(), attempt, %reason, "reranking backend failed; retrying");
                    last = reason;
                    if attempt < self.config.max_retries {
                        crate::http::pause(attempt, wait);
                    }
                }
            }
        }
        Err(RerankError(format!(
            "the reranking model at {} failed after {} attempts: {last}",
            self.url(),
            self.config.max_retries + 1
        )))
    }
}

/// The server's ranking, checked: every index names a document given, none twice; best first.
fn parse(
    text: &str,
    documents: usize,
    top_n: usize,
    url: &str,
) -> Result<Vec<Ranked>, RerankError> {
    let answer: Answer = serde_json::from_str(text).map_err(|e| {
        RerankError(format!(
            "the reranking model at {url} answered unreadably: {e}"
        ))
    })?;
    let mut seen = vec![false; documents];
    let mut ranked = Vec::with_capacity(answer.results.len());
    for item in answer.results {
        match seen.get_mut(item.index) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(RerankError(format!(
                    "the reranking model at {url} answered index {} for {documents} documents",
                    item.index
                )));
            }
        }
        if !item.relevance_score.is_finite() {
            return Err(RerankError(format!(
                "the reranking model at {url} answered a score that is not a number"
            )));
        }
        ranked.push(Ranked {
            index: item.index,
            score: item.relevance_score,
        });
    }
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    ranked.truncate(top_n);
    Ok(ranked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_and_put_best_first() {
        let ok = r#"{"results": [{"index": 1, "relevance_score": 0.2}, {"index": 0, "relevance_score": 0.9}]}"#;
        let ranked = parse(ok, 3, 5, "u").unwrap();
        assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(parse(ok, 3, 1, "u").unwrap().len(), 1);
        for bad in [
            r#"{"results": [{"index": 3, "relevance_score": 0.2}]}"#,
            r#"{"results": [{"index": 0, "relevance_score": 0.2}, {"index": 0, "relevance_score": 0.1}]}"#,
            r#"{"results": [{"index": -1, "relevance_score": 0.2}]}"#,
            r#"{"data": []}"#,
        ] {
            assert!(parse(bad, 3, 5, "u").is_err(), "{bad}");
        }
    }
}
