//! `vectorSearchConfiguration`, as Retrieve and RetrieveAndGenerate both take it.

use quarry_core::Filter;
use quarry_retrieve::{MAX_RESULTS, SearchType};
use serde::Deserialize;
use serde_json::Value;

use crate::rag::query_model::{self, Attribute, AttributeType};
use crate::rag::{Generators, MetadataSelection, Rerankers, Reranking};
use crate::server::error::ApiError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrievalConfiguration {
    pub vector_search_configuration: VectorSearchConfiguration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VectorSearchConfiguration {
    #[serde(default)]
    number_of_results: Option<i64>,
    #[serde(default)]
    override_search_type: Option<String>,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    reranking_configuration: Option<RerankingConfiguration>,
    #[serde(default)]
    implicit_filter_configuration: Option<ImplicitFilterConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImplicitFilterConfiguration {
    metadata_attributes: Vec<MetadataAttribute>,
    model_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetadataAttribute {
    key: String,
    #[serde(rename = "type")]
    kind: String,
    description: String,
}

impl ImplicitFilterConfiguration {
    fn checked(self, generators: &Generators, at: &str) -> Result<ImplicitFilter, ApiError> {
        if !(1..=25).contains(&self.metadata_attributes.len()) {
            return Err(ApiError::Validation(format!(
                "{at}.metadataAttributes must hold 1 to 25 attributes"
            )));
        }
        let mut attributes = Vec::new();
        for (i, a) in self.metadata_attributes.into_iter().enumerate() {
            let here = format!("{at}.metadataAttributes[{i}]");
            let kind = AttributeType::parse(&a.kind).ok_or_else(|| {
                ApiError::Validation(format!(
                    "{here}.type must be STRING, NUMBER, BOOLEAN or STRING_LIST, got {:?}",
                    a.kind
                ))
            })?;
            if a.key.is_empty() || a.key.len() > 256 || a.description.is_empty() {
                return Err(ApiError::Validation(format!(
                    "{here}: key (1 to 256 characters) and description (not empty) are required"
                )));
            }
            attributes.push(Attribute {
                key: a.key,
                kind,
                description: a.description,
            });
        }
        let generator = generators
            .for_arn(&self.model_arn)
            .map_err(|m| ApiError::Validation(format!("{at}.{m}")))?;
        Ok(ImplicitFilter {
            attributes,
            generator,
        })
    }
}

/// A request's implicit filter: the attributes the model may filter on, and the model.
pub struct ImplicitFilter {
    pub attributes: Vec<Attribute>,
    pub generator: std::sync::Arc<dyn quarry_generate::Generator>,
}

impl ImplicitFilter {
    /// The model's filter for `query` (none if it proposes no valid one), joined to
    /// `explicit` with `andAll`. Blocking: it calls the model.
    pub fn applied(
        &self,
        query: &str,
        explicit: Option<Filter>,
        cancel: &quarry_generate::Cancel,
    ) -> Result<Option<Filter>, ApiError> {
        let implicit =
            query_model::implicit_filter(self.generator.as_ref(), query, &self.attributes, cancel)
                .map_err(|e| match e {
                    crate::rag::RagError::Invalid(m) => ApiError::Validation(m),
                    crate::rag::RagError::Dependency(m) => ApiError::DependencyFailed(m),
                    crate::rag::RagError::Internal(m) => ApiError::internal(m),
                })?;
        Ok(query_model::combined(explicit, implicit))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RerankingConfiguration {
    #[serde(rename = "type")]
    kind: String,
    bedrock_reranking_configuration: Option<BedrockReranking>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BedrockReranking {
    model_configuration: RerankingModel,
    #[serde(default)]
    number_of_reranked_results: Option<i64>,
    #[serde(default)]
    metadata_configuration: Option<MetadataConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RerankingModel {
    pub model_arn: String,
    #[serde(default)]
    pub additional_model_request_fields: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetadataConfiguration {
    selection_mode: String,
    #[serde(default)]
    selective_mode_configuration: Option<SelectiveMode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SelectiveMode {
    #[serde(default)]
    fields_to_include: Option<Vec<Field>>,
    #[serde(default)]
    fields_to_exclude: Option<Vec<Field>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Field {
    field_name: String,
}

/// The reranking model a request names, checked: known, and asked nothing Quarry cannot do.
pub fn reranking_model(
    model: &RerankingModel,
    rerankers: &Rerankers,
    at: &str,
) -> Result<std::sync::Arc<dyn quarry_generate::Reranker>, ApiError> {
    if model
        .additional_model_request_fields
        .as_ref()
        .is_some_and(|f| !f.is_empty())
    {
        return Err(ApiError::Validation(format!(
            "{at}.additionalModelRequestFields: Quarry does not support additional request fields for reranking models"
        )));
    }
    rerankers
        .get(&model.model_arn)
        .map_err(|m| ApiError::Validation(format!("{at}.{m}")))
}

impl RerankingConfiguration {
    fn checked(self, rerankers: &Rerankers, at: &str) -> Result<Reranking, ApiError> {
        if self.kind != "BEDROCK_RERANKING_MODEL" {
            return Err(ApiError::Validation(format!(
                "{at}.type must be BEDROCK_RERANKING_MODEL, got {:?}",
                self.kind
            )));
        }
        let at = format!("{at}.bedrockRerankingConfiguration");
        let c = self
            .bedrock_reranking_configuration
            .ok_or_else(|| ApiError::Validation(format!("{at} is required")))?;
        let reranker = reranking_model(
            &c.model_configuration,
            rerankers,
            &format!("{at}.modelConfiguration"),
        )?;
        let keep = match c.number_of_reranked_results {
            None => None,
            Some(n) if (1..=100).contains(&n) => Some(n as usize),
            Some(n) => {
                return Err(ApiError::Validation(format!(
                    "{at}.numberOfRerankedResults must be between 1 and 100, got {n}"
                )));
            }
        };
        let metadata = match c.metadata_configuration {
            None => MetadataSelection::None,
            Some(m) => {
                let at = format!("{at}.metadataConfiguration");
                let names = |fields: Vec<Field>| fields.into_iter().map(|f| f.field_name).collect();
                match (m.selection_mode.as_str(), m.selective_mode_configuration) {
                    ("ALL", None) => MetadataSelection::All,
                    ("ALL", Some(_)) => {
                        return Err(ApiError::Validation(format!(
                            "{at}.selectiveModeConfiguration is only for selectionMode SELECTIVE"
                        )));
                    }
                    (
                        "SELECTIVE",
                        Some(SelectiveMode {
                            fields_to_include: Some(f),
                            fields_to_exclude: None,
                        }),
                    ) => MetadataSelection::Include(names(f)),
                    (
                        "SELECTIVE",
                        Some(SelectiveMode {
                            fields_to_include: None,
                            fields_to_exclude: Some(f),
                        }),
                    ) => MetadataSelection::Exclude(names(f)),
                    ("SELECTIVE", _) => {
                        return Err(ApiError::Validation(format!(
                            "{at}.selectiveModeConfiguration needs exactly one of fieldsToInclude and fieldsToExclude"
                        )));
                    }
                    (other, _) => {
                        return Err(ApiError::Validation(format!(
                            "{at}.selectionMode must be ALL or SELECTIVE, got {other:?}"
                        )));
                    }
                }
            }
        };
        Ok(Reranking {
            reranker,
            keep,
            metadata,
        })
    }
}

/// A search's settings, checked: how many results, which filter, which retriever.
pub struct SearchSettings {
    pub k: usize,
    pub filter: Option<Filter>,
    pub search_type: SearchType,
    pub reranking: Option<Reranking>,
    pub implicit: Option<ImplicitFilter>,
}

impl SearchSettings {
    /// `at` names where the configuration sits in the request, for error messages.
    pub fn from_request(
        config: Option<RetrievalConfiguration>,
        at: &str,
        rerankers: &Rerankers,
        generators: &Generators,
    ) -> Result<Self, ApiError> {
        let mut settings = Self {
            k: quarry_retrieve::DEFAULT_RESULTS,
            filter: None,
            search_type: SearchType::default(),
            reranking: None,
            implicit: None,
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
        if let Some(i) = c.implicit_filter_configuration {
            settings.implicit =
                Some(i.checked(generators, &format!("{at}.implicitFilterConfiguration"))?);
        }
        if let Some(r) = c.reranking_configuration {
            settings.reranking =
                Some(r.checked(rerankers, &format!("{at}.rerankingConfiguration"))?);
        }
        if let Some(f) = c.filter {
            settings.filter =
                Some(Filter::from_json(&f).map_err(|e| ApiError::Validation(format!("{at}.{e}")))?);
        }
        Ok(settings)
    }
}
