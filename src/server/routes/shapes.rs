//! Bedrock's control-plane JSON for knowledge bases and data sources.

use chrono::{DateTime, SecondsFormat, Utc};
use quarry_core::config::{ChunkingConfig, DataSourceConfig, DataSourceKind};
use serde_json::{Value, json};

use crate::server::registry::KbEntry;
use crate::server::state::AppState;

pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn embedding_model_arn(model: &str) -> String {
    format!("arn:aws:bedrock:us-east-1::foundation-model/{model}")
}

/// The model a Bedrock model ARN names: the part after `foundation-model/`, or the whole.
pub fn model_from_arn(arn: &str) -> &str {
    arn.rsplit_once("foundation-model/").map_or(arn, |(_, m)| m)
}

/// A knowledge base's ARN, which tags name it by.
pub fn knowledge_base_arn(state: &AppState, kb_id: &str) -> String {
    format!(
        "arn:aws:bedrock:us-east-1:{}:knowledge-base/{kb_id}",
        state.registry.config.server.account_id
    )
}

pub fn knowledge_base(e: &KbEntry, state: &AppState) -> Value {
    let kb = &e.kb.config;
    let account = &state.registry.config.server.account_id;
    let role = kb
        .role_arn
        .clone()
        .unwrap_or_else(|| format!("arn:aws:iam::{account}:role/quarry"));
    let mut v = json!({
        "knowledgeBaseId": kb.id.get_ref().as_str(),
        "name": kb.name.get_ref(),
        "knowledgeBaseArn": knowledge_base_arn(state, kb.id.get_ref().as_str()),
        "roleArn": role,
        "knowledgeBaseConfiguration": {
            "type": "VECTOR",
            "vectorKnowledgeBaseConfiguration": { "embeddingModelArn": embedding_model_arn(kb.embedding_model.get_ref()) }
        },
        "storageConfiguration": super::storage::reported(&kb.vector_store, &state.registry.config.rds, account),
        // UPDATING while a switch to the configured model builds (the old model serves).
        "status": if &e.kb.generation.model == kb.embedding_model.get_ref() { "ACTIVE" } else { "UPDATING" },
        "createdAt": timestamp(&e.created_at),
        "updatedAt": timestamp(&e.updated_at),
    });
    if let Some(d) = &kb.description {
        v["description"] = json!(d);
    }
    v
}

pub fn knowledge_base_summary(e: &KbEntry, state: &AppState) -> Value {
    let full = knowledge_base(e, state);
    let mut v = json!({
        "knowledgeBaseId": full["knowledgeBaseId"],
        "name": full["name"],
        "status": full["status"],
        "updatedAt": full["updatedAt"],
    });
    if let Some(d) = full.get("description") {
        v["description"] = d.clone();
    }
    v
}

pub fn chunking(config: &ChunkingConfig, model_limit: usize) -> Value {
    match *config {
        // Bedrock reports its default as fixed-size chunks of 300 tokens with 20% overlap.
        ChunkingConfig::Default => json!({
            "chunkingStrategy": "FIXED_SIZE",
            "fixedSizeChunkingConfiguration": {
                "maxTokens": quarry_chunkers::DEFAULT_MAX_TOKENS.min(model_limit),
                "overlapPercentage": quarry_chunkers::DEFAULT_OVERLAP_PERCENTAGE
            }
        }),
        ChunkingConfig::FixedSize {
            max_tokens,
            overlap_percentage,
        } => json!({
            "chunkingStrategy": "FIXED_SIZE",
            "fixedSizeChunkingConfiguration": { "maxTokens": max_tokens, "overlapPercentage": overlap_percentage }
        }),
        ChunkingConfig::None => json!({ "chunkingStrategy": "NONE" }),
        ChunkingConfig::Hierarchical {
            parent_max_tokens,
            child_max_tokens,
            overlap_tokens,
        } => json!({
            "chunkingStrategy": "HIERARCHICAL",
            "hierarchicalChunkingConfiguration": {
                "levelConfigurations": [{ "maxTokens": parent_max_tokens }, { "maxTokens": child_max_tokens }],
                "overlapTokens": overlap_tokens
            }
        }),
        ChunkingConfig::Semantic {
            max_tokens,
            buffer_size,
            breakpoint_percentile_threshold,
        } => json!({
            "chunkingStrategy": "SEMANTIC",
            "semanticChunkingConfiguration": {
                "maxTokens": max_tokens,
                "bufferSize": buffer_size,
                "breakpointPercentileThreshold": breakpoint_percentile_threshold
            }
        }),
    }
}

pub fn data_source(e: &KbEntry, ds: &DataSourceConfig) -> Value {
    // A local folder has no Bedrock equivalent; CUSTOM is Bedrock's type for documents
    // that come from outside AWS.
    let configuration = match ds.kind {
        DataSourceKind::Local | DataSourceKind::Custom => json!({ "type": "CUSTOM" }),
        DataSourceKind::S3 => {
            let mut s3 = json!({ "bucketArn": format!("arn:aws:s3:::{}", ds.bucket.as_deref().unwrap_or_default()) });
            if !ds.inclusion_prefixes.is_empty() {
                s3["inclusionPrefixes"] = json!(ds.inclusion_prefixes);
            }
            json!({ "type": "S3", "s3Configuration": s3 })
        }
    };
    let mut v = json!({
        "knowledgeBaseId": e.kb.id(),
        "dataSourceId": ds.id.get_ref().as_str(),
        "name": ds.name,
        "status": "AVAILABLE",
        "dataSourceConfiguration": configuration,
        "vectorIngestionConfiguration": {
            "chunkingConfiguration": chunking(&ds.chunking, e.kb.embedder.max_content_tokens())
        },
        "dataDeletionPolicy": ds.data_deletion_policy.bedrock_name(),
        "createdAt": timestamp(&e.created_at),
        "updatedAt": timestamp(&e.updated_at),
    });
    if let Some(d) = &ds.description {
        v["description"] = json!(d);
    }
    v
}

pub fn data_source_summary(e: &KbEntry, ds: &DataSourceConfig) -> Value {
    let full = data_source(e, ds);
    let mut v = json!({
        "knowledgeBaseId": full["knowledgeBaseId"],
        "dataSourceId": full["dataSourceId"],
        "name": full["name"],
        "status": "AVAILABLE",
        "updatedAt": full["updatedAt"],
    });
    if let Some(d) = full.get("description") {
        v["description"] = d.clone();
    }
    v
}
