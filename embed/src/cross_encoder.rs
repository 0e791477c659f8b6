//! A sentence-transformers `CrossEncoder` (BERT-family sequence classification with one
//! logit): query and passage read together as one pair, one relevance score out. Runs on the
//! same encoder core as [`crate::BertEmbedder`].

use std::path::Path;

use quarry_core::EmbedError;
use serde::Deserialize;

use crate::batching;
use crate::bert::{Bert, ClassifierHead};
use crate::error::LoadError;
use crate::model_files::{ModelFiles, read_json};
use crate::tokenize::WordPieces;

/// Pairs per forward pass at most, and real tokens per pass at most.
const MAX_BATCH_PAIRS: usize = 32;
const MAX_BATCH_TOKENS: usize = 8192;

/// What turns the logit into the score, as the model's folder says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `1 / (1 + e^-logit)`: sentence-transformers' default for one label.
    Sigmoid,
    /// The logit as it is.
    Identity,
}

#[derive(Deserialize, Default)]
struct HeadConfig {
    #[serde(default)]
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    num_labels: Option<usize>,
    /// sentence-transformers 2.x–3.x.
    #[serde(default)]
    sbert_ce_default_activation_function: Option<String>,
    /// sentence-transformers 4 and later.
    #[serde(default)]
    sentence_transformers: Option<SentenceTransformersConfig>,
}

#[derive(Deserialize, Default)]
struct SentenceTransformersConfig {
    #[serde(default)]
    activation_fn: Option<String>,
}

pub struct CrossEncoder {
    bert: Bert,
    head: ClassifierHead,
    tokenizer: WordPieces,
    activation: Activation,
    threads: usize,
}

impl CrossEncoder {
    /// Loads a cross-encoder folder (`config.json`, `model.safetensors`, `tokenizer.json`):
    /// `path` if given, else `hub` in the Hugging Face cache.
    pub fn load(path: Option<&Path>, hub: Option<&str>) -> Result<Self, LoadError> {
        let files = ModelFiles::locate(path, hub)?;
        let config_path = files.dir.join("config.json");
        let head_config: HeadConfig = read_json(&config_path)?.unwrap_or_default();
        let labels = head_config
            .num_labels
            .or(head_config.id2label.as_ref().map(|m| m.len()))
            .unwrap_or(1);
        if labels != 1 {
            return Err(LoadError::BadFile {
                path: config_path,
                reason: format!(
                    "a classifier with {labels} labels; a reranking cross-encoder has one"
                ),
            });
        }
        let activation_name = head_config
            .sentence_transformers
            .and_then(|s| s.activation_fn)
            .or(head_config.sbert_ce_default_activation_function);
        let activation = match activation_name.as_deref() {
            Some(name) if name.ends_with("Identity") => Activation::Identity,
            Some(name) if !name.ends_with("Sigmoid") => {
                return Err(LoadError::BadFile {
                    path: config_path,
                    reason: format!("activation {name}: Quarry knows Sigmoid and Identity"),
                });
            }
            _ => Activation::Sigmoid,
        };
        let (bert, head) = Bert::load_with_head(&files.dir)?;
        let max_seq_length = files
            .max_seq_length
            .min(bert.config.max_position_embeddings);
        let tokenizer = WordPieces::load(&files.dir.join("tokenizer.json"), max_seq_length)?;
        Ok(Self {
            bert,
            head,
            tokenizer,
            activation,
            threads: rayon::current_num_threads(),
        })
    }

    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The relevance of each passage to the query, in the passages' order.
    pub fn scores(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let pairs: Vec<(&str, &str)> = passages.iter().map(|&p| (query, p)).collect();
        let encoded = self
            .tokenizer
            .encode_pairs(&pairs)
            .map_err(EmbedError::Tokenizer)?;
        let (ids, types): (Vec<Vec<u32>>, Vec<Vec<u32>>) = encoded.into_iter().unzip();
        batching::check_vocabulary(&ids, self.bert.vocab_size())?;
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let h = self.bert.config.hidden_size;
        let mut out = vec![0.0f32; ids.len()];
        for order in batching::by_length(&lengths, MAX_BATCH_PAIRS, MAX_BATCH_TOKENS) {
            let batch: Vec<Vec<u32>> = order.iter().map(|&i| ids[i].clone()).collect();
            let segments: Vec<Vec<u32>> = order.iter().map(|&i| types[i].clone()).collect();
            let hidden = self
                .bert
                .forward_typed(&batch, Some(&segments), self.threads);
            let mut row = 0;
            for (&i, seq) in order.iter().zip(&batch) {
                let logit = self.head.logit(&hidden[row * h..(row + 1) * h]);
                out[i] = match self.activation {
                    Activation::Sigmoid => 1.0 / (1.0 + (-logit).exp()),
                    Activation::Identity => logit,
                };
                row += seq.len();
            }
        }
        Ok(out)
    }
}
