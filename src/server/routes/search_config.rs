//! `vectorSearchConfiguration`, as Retrieve and RetrieveAndGenerate both take it.

use quarry_core::Filter;
use quarry_retrieve::{MAX_RESULTS, SearchType};
use serde::Deserialize;
use serde_json::Value;

use crate::server::error::ApiError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrievalConfiguration {
    pub vector_search_configuration: VectorSearchConfiguration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorSearchConfiguration {
    #[serde(default)]
    number_of_results: Option<i64>,
    #[serde(default)]
    override_search_type: Option<String>,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    reranking_configuration: Option<Value>,
    #[serde(default)]
    implicit_filter_configuration: Option<Value>,
}

/// A search's settings, checked: how many results, which filter, which retriever.
pub struct SearchSettings {
    pub k: usize,
    pub filter: Option<Filter>,
    pub search_type: SearchType,
}

impl SearchSettings {
    /// `at` names where the configuration sits in the request, for error messages.
    pub fn from_request(
        config: Option<RetrievalConfiguration>,
        at: &str,
    ) -> Result<Self, ApiError> {
        let mut settings = Self {
            k: quarry_retrieve::DEFAULT_RESULTS,
            filter: None,
            search_type: SearchType::default(),
        };
        let Some(c) = config.map(|c| c.vector_search_configuration) else {
            return Ok(settings);
        };
        let at = format!("{at}.vectorSearchConfiguration");
        if let Some(n) = c.number_of_results {
            if !(1..=MAX_RESULTS as i64).contains(&n) {
                return Err(ApiError::Validation(format!(
                    "{at}.numberOfResults must be between 1 and {MAX_RESULTS}, got {n}"
                )));
            }
            settings.k = n as usize;
        }
        if let Some(name) = c.override_search_type.as_deref() {
            settings.search_type = SearchType::parse(name).ok_or_else(|| {
                ApiError::Validation(format!(
                    "{at}.overrideSearchType must be SEMANTIC or HYBRID, got {name:?}"
                ))
            })?;
        }
        if c.reranking_configuration.is_some() || c.implicit_filter_configuration.is_some() {
            return Err(ApiError::Validation(format!(
                "{at}: rerankingConfiguration and implicitFilterConfiguration are not supported"
            )));
        }
        if let Some(f) = c.filter {
            settings.filter =
                Some(Filter::from_json(&f).map_err(|e| ApiError::Validation(format!("{at}.{e}")))?);
        }
        Ok(settings)
    }
}
