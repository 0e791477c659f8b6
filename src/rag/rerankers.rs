//! The reranking models of `[models]`, by name, and reranking a search's hits with one: what
//! `rerankingConfiguration` in Retrieve and RetrieveAndGenerate asks for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quarry_core::SearchHit;
use quarry_core::config::{Config, ModelConfig};
use quarry_embed::CrossEncoder;
use quarry_generate::{Ranked, RerankApi, RerankApiConfig, RerankError, Reranker};

pub struct Rerankers {
    models: BTreeMap<String, Arc<dyn Reranker>>,
}

impl Rerankers {
    /// Every reranking model in the configuration (an API key's variable must be set now; a
    /// cross-encoder's weights are read now).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut models: BTreeMap<String, Arc<dyn Reranker>> = BTreeMap::new();
        for (name, model) in &config.models {
            if let Some(reranker) = reranker(name, model)? {
                models.insert(name.clone(), reranker);
            }
        }
        Ok(Self { models })
    }

    /// Only the reranking model `name` (for a command that needs no other).
    pub fn one(config: &Config, name: &str) -> anyhow::Result<Arc<dyn Reranker>> {
        config
            .models
            .get(name)
            .map(|model| reranker(name, model))
            .transpose()?
            .flatten()
            .ok_or_else(|| anyhow::anyhow!("no reranking model {name:?} in [models]"))
    }

    /// The model a `modelArn` names, or a message saying which there are.
    pub fn get(&self, arn: &str) -> Result<Arc<dyn Reranker>, String> {
        let name = super::model_name(arn);
        self.models.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            format!(
                "modelArn {arn}: no reranking model {name:?} is configured in [models] (known: {known:?})"
            )
        })
    }
}

/// The reranker a `[models]` entry declares; `None` for models of other kinds.
fn reranker(name: &str, model: &ModelConfig) -> anyhow::Result<Option<Arc<dyn Reranker>>> {
    Ok(Some(match model {
        ModelConfig::RerankApi {
            base_url,
            model,
            api_key_env,
            timeout_secs,
            max_retries,
        } => Arc::new(RerankApi::new(RerankApiConfig {
            base_url: base_url.clone(),
            model: model.clone(),
            api_key: super::generators::api_key(name, api_key_env.as_deref())?,
            timeout: Duration::from_secs(*timeout_secs),
            max_retries: *max_retries,
        })),
        ModelConfig::BertCrossEncoder { path, hub } => {
            let model = CrossEncoder::load(path.as_deref(), hub.as_deref())
                .with_context(|| format!("loading the cross-encoder {name:?}"))?;
            Arc::new(CrossEncoderReranker(model))
        }
        _ => return Ok(None),
    }))
}

/// A cross-encoder run in-process: every document scored against the query, best first.
pub struct CrossEncoderReranker(pub CrossEncoder);

impl Reranker for CrossEncoderReranker {
    fn rerank(
        &self,
        query: &str,
        documents: &[String],
        top_n: usize,
    ) -> Result<Vec<Ranked>, RerankError> {
        let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
        let scores = self
            .0
            .scores(query, &texts)
            .map_err(|e| RerankError(e.to_string()))?;
        let mut ranked: Vec<Ranked> = scores
            .into_iter()
            .enumerate()
            .map(|(index, score)| Ranked { index, score })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        ranked.truncate(top_n);
        Ok(ranked)
    }
}

/// Which metadata the reranker sees with each passage's text.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum MetadataSelection {
    /// The text alone.
    #[default]
    None,
    All,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

/// A search's reranking: the model, how many results to keep, what it sees.
#[derive(Clone)]
pub struct Reranking {
    pub reranker: Arc<dyn Reranker>,
    /// Results kept after reranking (all candidates when `None`).
    pub keep: Option<usize>,
    pub metadata: MetadataSelection,
}

/// What the reranker is given for one hit: its text, then the selected metadata as
/// `key: value` lines.
pub fn reranker_document(hit: &SearchHit, selection: &MetadataSelection) -> String {
    let mut doc = hit.chunk.text.clone();
    let chosen = |key: &str| match selection {
        MetadataSelection::None => false,
        MetadataSelection::All => true,
        MetadataSelection::Include(keys) => keys.iter().any(|k| k == key),
        MetadataSelection::Exclude(keys) => !keys.iter().any(|k| k == key),
    };
    for (key, value) in hit.chunk.metadata.iter().filter(|(k, _)| chosen(k)) {
        doc.push_str(&format!("\n{key}: {}", value.as_text()));
    }
    doc
}

/// The hits in the reranker's order, with its scores, the best `keep`.
pub fn rerank_hits(
    query: &str,
    hits: Vec<SearchHit>,
    reranking: &Reranking,
) -> Result<Vec<SearchHit>, String> {
    let documents: Vec<String> = hits
        .iter()
        .map(|h| reranker_document(h, &reranking.metadata))
        .collect();
    let keep = reranking.keep.unwrap_or(hits.len());
    let ranked = reranking
        .reranker
        .rerank(query, &documents, keep)
        .map_err(|e| e.to_string())?;
    let mut slots: Vec<Option<SearchHit>> = hits.into_iter().map(Some).collect();
    Ok(ranked
        .into_iter()
        .filter_map(|r| {
            slots
                .get_mut(r.index)
                .and_then(Option::take)
                .map(|mut hit| {
                    hit.score = r.score;
                    hit
                })
        })
        .collect())
}
