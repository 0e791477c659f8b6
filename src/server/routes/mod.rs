//! Bedrock's paths, one module per group of operations.

mod body;
mod data_sources;
mod documents;
mod embeddings;
mod events;
mod generate;
mod ingestion_jobs;
mod inspect;
mod knowledge_bases;
mod members;
mod rerank;
mod retrieve;
mod search_config;
mod shapes;
mod storage;
mod tags;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{get, post, put};

use super::error::ApiError;

use super::state::AppState;

/// The signed API (everything but `/metrics`).
pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/knowledgebases/{kb}/retrieve", post(retrieve::retrieve))
        .route("/events", post(events::receive))
        .route("/rerank", post(rerank::rerank))
        .route("/v1/embeddings", post(embeddings::create))
        .route(
            "/retrieveAndGenerate",
            post(generate::retrieve_and_generate),
        )
        .route(
            "/retrieveAndGenerateStream",
            post(generate::retrieve_and_generate_stream),
        )
        .route(
            "/knowledgebases/",
            put(knowledge_bases::create).post(knowledge_bases::list),
        )
        .route(
            "/knowledgebases/{kb}",
            get(knowledge_bases::get)
                .put(knowledge_bases::update)
                .delete(knowledge_bases::delete),
        )
        .route(
            "/knowledgebases/{kb}/datasources/",
            put(data_sources::create).post(data_sources::list),
        )
        .route(
            "/knowledgebases/{kb}/datasources/{ds}",
            get(data_sources::get)
                .put(data_sources::update)
                .delete(data_sources::delete),
        )
        .route(
            "/knowledgebases/{kb}/datasources/{ds}/ingestionjobs/",
            put(ingestion_jobs::start).post(ingestion_jobs::list),
        )
        .route(
            "/knowledgebases/{kb}/datasources/{ds}/ingestionjobs/{job}",
            get(ingestion_jobs::get),
        )
        .route(
            "/knowledgebases/{kb}/datasources/{ds}/documents",
            put(documents::ingest).post(documents::list),
        )
        .route(
            "/knowledgebases/{kb}/datasources/{ds}/documents/deleteDocuments",
            post(documents::delete),
        )
        .route(
            "/knowledgebases/{kb}/datasources/{ds}/documents/getDocuments",
            post(documents::get),
        )
        .route(
            "/knowledgebases/{kb}/datasources/{ds}/ingestionjobs/{job}/stop",
            post(ingestion_jobs::stop),
        )
        .route(
            "/tags/{arn}",
            post(tags::tag).delete(tags::untag).get(tags::list),
        )
        .route("/quarry/models", get(inspect::models))
        .route("/quarry/knowledgebases/{kb}/summary", get(inspect::summary))
        .route(
            "/quarry/knowledgebases/{kb}/datasources/{ds}/documents",
            post(inspect::documents),
        )
        .route(
            "/quarry/knowledgebases/{kb}/datasources/{ds}/documents/chunks",
            post(inspect::chunks),
        )
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
}

/// Operations Quarry does not serve answer as AWS answers an unknown operation, naming the
/// method and path (not ResourceNotFound, which clients read as "no such knowledge base").
async fn unknown_operation(method: Method, uri: Uri) -> ApiError {
    ApiError::UnknownOperation(format!(
        "Quarry does not serve {method} {}: no Bedrock operation it implements has this method and path",
        uri.path()
    ))
}

/// The Bedrock operation a request is, for metrics and the audit log.
pub fn operation(method: &str, matched: &str) -> &'static str {
    match (method, matched) {
        ("POST", "/knowledgebases/{kb}/retrieve") => "Retrieve",
        ("POST", "/retrieveAndGenerate") => "RetrieveAndGenerate",
        ("POST", "/rerank") => "Rerank",
        ("POST", "/retrieveAndGenerateStream") => "RetrieveAndGenerateStream",
        ("PUT", "/knowledgebases/") => "CreateKnowledgeBase",
        ("POST", "/knowledgebases/") => "ListKnowledgeBases",
        ("GET", "/knowledgebases/{kb}") => "GetKnowledgeBase",
        ("PUT", "/knowledgebases/{kb}") => "UpdateKnowledgeBase",
        ("DELETE", "/knowledgebases/{kb}") => "DeleteKnowledgeBase",
        ("PUT", "/knowledgebases/{kb}/datasources/") => "CreateDataSource",
        ("POST", "/knowledgebases/{kb}/datasources/") => "ListDataSources",
        ("GET", "/knowledgebases/{kb}/datasources/{ds}") => "GetDataSource",
        ("PUT", "/knowledgebases/{kb}/datasources/{ds}") => "UpdateDataSource",
        ("DELETE", "/knowledgebases/{kb}/datasources/{ds}") => "DeleteDataSource",
        ("PUT", "/knowledgebases/{kb}/datasources/{ds}/ingestionjobs/") => "StartIngestionJob",
        ("POST", "/knowledgebases/{kb}/datasources/{ds}/ingestionjobs/") => "ListIngestionJobs",
        ("GET", "/knowledgebases/{kb}/datasources/{ds}/ingestionjobs/{job}") => "GetIngestionJob",
        ("POST", "/knowledgebases/{kb}/datasources/{ds}/ingestionjobs/{job}/stop") => {
            "StopIngestionJob"
        }
        ("GET", "/metrics") => "Metrics",
        ("GET", "/health/live") => "HealthLive",
        ("GET", "/health/ready") => "HealthReady",
        ("POST", "/events") => "S3Events",
        ("POST", "/v1/embeddings") => "CreateEmbeddings",
        ("PUT", "/knowledgebases/{kb}/datasources/{ds}/documents") => {
            "IngestKnowledgeBaseDocuments"
        }
        ("POST", "/knowledgebases/{kb}/datasources/{ds}/documents") => "ListKnowledgeBaseDocuments",
        ("POST", "/knowledgebases/{kb}/datasources/{ds}/documents/deleteDocuments") => {
            "DeleteKnowledgeBaseDocuments"
        }
        ("POST", "/knowledgebases/{kb}/datasources/{ds}/documents/getDocuments") => {
            "GetKnowledgeBaseDocuments"
        }
        ("POST", "/tags/{arn}") => "TagResource",
        ("DELETE", "/tags/{arn}") => "UntagResource",
        ("GET", "/tags/{arn}") => "ListTagsForResource",
        ("GET", "/quarry/models") => "QuarryListModels",
        ("GET", "/quarry/knowledgebases/{kb}/summary") => "QuarryGetKnowledgeBaseSummary",
        ("POST", "/quarry/knowledgebases/{kb}/datasources/{ds}/documents") => "QuarryListDocuments",
        ("POST", "/quarry/knowledgebases/{kb}/datasources/{ds}/documents/chunks") => {
            "QuarryGetDocumentChunks"
        }
        ("GET", "/console" | "/console/" | "/console/settings.json" | "/console/{file}") => {
            "Console"
        }
        _ => "Unknown",
    }
}
