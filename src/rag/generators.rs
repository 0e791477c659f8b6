//! The generation backends of `[models]`, by name, built once and shared; a request picks
//! one with its `modelArn`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quarry_core::config::{Config, ModelConfig};
use quarry_generate::{Generator, GgufLlama, OpenAiConfig, OpenAiGenerator};

pub struct Generators {
    models: BTreeMap<String, Arc<dyn Generator>>,
}

/// The model a `modelArn` names: its last path segment (`…:foundation-model/NAME`,
/// `…:inference-profile/NAME`), or the whole string when it is not an ARN.
pub fn model_name(arn: &str) -> &str {
    if arn.starts_with("arn:") {
        arn.rsplit('/').next().unwrap_or(arn)
    } else {
        arn
    }
}

/// The API key a model's `api_key_env` names, read now (an unset variable is an error that
/// names the model and the variable).
pub fn api_key(name: &str, api_key_env: Option<&str>) -> anyhow::Result<Option<String>> {
    api_key_env
        .map(|var| {
            std::env::var(var)
                .with_context(|| format!("models.{name}.api_key_env: {var} is not set"))
        })
        .transpose()
}

impl Generators {
    /// Every generation model in the configuration. A local model's weights are read when it
    /// is first used; an API key's environment variable must be set now.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut models: BTreeMap<String, Arc<dyn Generator>> = BTreeMap::new();
        for (name, model) in &config.models {
            let generator: Arc<dyn Generator> = match model {
                ModelConfig::Bert { .. }
                | ModelConfig::OpenaiEmbeddings(_)
                | ModelConfig::Tei(_)
                | ModelConfig::RerankApi { .. }
                | ModelConfig::BertCrossEncoder { .. } => continue,
                ModelConfig::GgufLlama { path } => Arc::new(GgufLlama::new(path.clone())),
                ModelConfig::Openai {
                    base_url,
                    model,
                    api_key_env,
                    timeout_secs,
                    max_retries,
                    context_tokens,
                } => Arc::new(OpenAiGenerator::new(OpenAiConfig {
                    base_url: base_url.clone(),
                    model: model.clone(),
                    api_key: api_key(name, api_key_env.as_deref())?,
                    timeout: Duration::from_secs(*timeout_secs),
                    max_retries: *max_retries,
                    context_tokens: *context_tokens,
                })),
            };
            models.insert(name.clone(), generator);
        }
        Ok(Self { models })
    }

    /// The backend for a `modelArn`, or a message naming the ones there are.
    pub fn for_arn(&self, arn: &str) -> Result<Arc<dyn Generator>, String> {
        let name = model_name(arn);
        self.models.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            format!(
                "modelArn {arn}: no generation model {name:?} in [models] (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// Loads every local model on a thread of its own, so the first request finds it ready;
    /// a model that cannot load is logged here and reported to the requests that use it.
    pub fn warm_up_in_background(&self) {
        for (name, generator) in &self.models {
            let (name, generator) = (name.clone(), generator.clone());
            std::thread::spawn(move || {
                if let Err(e) = generator.warm_up() {
                    tracing::warn!(model = %name, error = %e, "generation model not available");
                }
            });
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_the_arns_last_segment_or_the_whole_string() {
        assert_eq!(
            model_name(
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"
            ),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            model_name("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3"),
            "us.meta.llama3"
        );
        assert_eq!(model_name("smollm2"), "smollm2");
    }
}
