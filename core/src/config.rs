//! The shape of `knowledge-bases.toml`. Typed, with unknown fields rejected; the binary's
//! loader reads the file, adds file and line to every error, and resolves relative paths.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;

use crate::ids::ResourceId;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    #[serde(default)]
    pub knowledge_bases: Vec<KnowledgeBaseConfig>,
    /// Defaults for S3 data sources (and the only S3 settings of those made through the API).
    #[serde(default)]
    pub s3: S3Defaults,
    /// Present: this process is one replica of a service whose state is in PostgreSQL.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// What Bedrock's `storageConfiguration` of type `RDS` names, made local.
    #[serde(default)]
    pub rds: RdsConfig,
}

/// `[rds]`: how CreateKnowledgeBase's `storageConfiguration.rdsConfiguration` reaches a
/// PostgreSQL server with pgvector. `clusters` maps a `resourceArn` to a server
/// (`postgres://user@host:port`; the request's `databaseName` is appended) and `secrets`
/// maps a `credentialsSecretArn` to the environment variable holding the password.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdsConfig {
    #[serde(default)]
    pub clusters: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// `[cluster]`: every replica given the same database is the same service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `postgres://user@host:port/database` (the password, if any, from `password_env`).
    pub database_url: String,
    #[serde(default)]
    pub password_env: Option<String>,
    /// How this replica appears in `quarry cluster status` and in the job logs (default: the
    /// host name and process id).
    #[serde(default)]
    pub replica_name: Option<String>,
    /// How long a claimed document stays this replica's without a renewal; a replica that
    /// dies loses its documents to the others this long after.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// Documents a replica claims at once (embedded together).
    #[serde(default = "default_claim_batch")]
    pub claim_batch: usize,
}

fn default_lease_secs() -> u64 {
    30
}

fn default_claim_batch() -> usize {
    8
}

/// Where S3 data sources are read from when they do not say: an S3-compatible endpoint
/// (MinIO, Ceph, moto) and a region. Credentials come from the standard AWS chain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Defaults {
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Buckets that data sources made through the API may read (besides each access key's
    /// own `buckets`); `"*"` for any. Data sources declared in this file may read any bucket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_buckets: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Largest document a parser accepts, in bytes.
    #[serde(default = "default_max_document_bytes")]
    pub max_document_bytes: u64,
    /// Keys that may sign requests (SigV4). None: the server runs without authentication,
    /// which it allows only on a loopback address.
    #[serde(default)]
    pub access_keys: Vec<AccessKeyConfig>,
    /// Regions a signature may name; empty means any.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Queries waiting for the encoder at most; more are answered 429 at once.
    #[serde(default = "default_max_queued_queries")]
    pub max_queued_queries: usize,
    /// Largest request body, in bytes.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// The environment variable holding a key that `POST /events` accepts in an `x-api-key`
    /// header instead of a SigV4 signature (EventBridge API destinations send such a key).
    #[serde(default)]
    pub events_api_key_env: Option<String>,
    /// The environment variable holding a key that `POST /v1/embeddings` accepts as
    /// `Authorization: Bearer <key>` instead of a SigV4 signature (OpenAI's clients, and
    /// other Quarry servers using this one as their embedding server, send such a key).
    #[serde(default)]
    pub embeddings_api_key_env: Option<String>,
    /// RetrieveAndGenerate sessions idle this long are forgotten.
    #[serde(default = "default_session_idle_minutes")]
    pub session_idle_minutes: u64,
    /// How the server guards itself against slow, numerous or greedy clients.
    #[serde(default)]
    pub limits: ServerLimits,
    /// Serve HTTPS directly (the certificate is read again on SIGHUP).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Serve `/metrics` on this address instead of the API's.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Origins (`scheme://host[:port]`) whose browser requests an open (loopback, no keys)
    /// server accepts; requests from any other origin are refused.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The account id in the ARNs of Quarry's resources (`arn:aws:bedrock:REGION:ACCOUNT:…`).
    #[serde(default = "default_account_id")]
    pub account_id: String,
    /// Where ingestion jobs' state changes and document failures are delivered.
    #[serde(default)]
    pub event_sinks: Vec<EventSinkConfig>,
}

/// A destination for job events (`[[server.event_sinks]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum EventSinkConfig {
    /// POSTs each event as JSON, signed with HMAC-SHA256 of the body
    /// (`x-quarry-signature: sha256=<hex>`) when `secret_env` names the secret.
    Webhook {
        url: String,
        #[serde(default)]
        secret_env: Option<String>,
        #[serde(default = "default_event_attempts")]
        max_attempts: u32,
    },
    /// Amazon EventBridge `PutEvents` (source `quarry`), to `endpoint_url` when set.
    Eventbridge {
        #[serde(default = "default_event_bus")]
        event_bus: String,
        #[serde(default)]
        endpoint_url: Option<String>,
        #[serde(default)]
        region: Option<String>,
        #[serde(default = "default_event_attempts")]
        max_attempts: u32,
    },
}

impl EventSinkConfig {
    pub fn max_attempts(&self) -> u32 {
        match self {
            Self::Webhook { max_attempts, .. } | Self::Eventbridge { max_attempts, .. } => {
                (*max_attempts).max(1)
            }
        }
    }
}

fn default_event_attempts() -> u32 {
    8
}

fn default_event_bus() -> String {
    "default".into()
}

fn default_account_id() -> String {
    "000000000000".into()
}

fn default_session_idle_minutes() -> u64 {
    60
}

/// Bounds on what clients may hold of the server. Every one is checked before the work it
/// bounds starts; past it the answer is immediate (429, 408 or a closed connection).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Connections served at once; one more is answered 429 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// Time a client has to send a request's body once its headers are in.
    pub body_timeout_secs: u64,
    /// Answers being generated at once (RetrieveAndGenerate and its stream); more are 429.
    pub max_concurrent_generations: usize,
    /// Longest one answer may take to generate; then it is cut off (424 or a stream error).
    pub generation_timeout_secs: u64,
    /// Direct-ingestion requests (Ingest/DeleteKnowledgeBaseDocuments) worked on at once;
    /// more are 429.
    pub max_concurrent_document_requests: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_concurrent_generations: 4,
            generation_timeout_secs: 120,
            max_concurrent_document_requests: 4,
        }
    }
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An access key: its id, the environment variable that holds its secret (secrets never
/// live in the file), the knowledge bases (ids or names, `"*"` for all) it may use, which
/// must be said (a key without the line is refused), and the buckets its API-made data
/// sources may read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    pub id: String,
    pub secret_env: String,
    #[serde(default)]
    pub knowledge_bases: Option<Vec<String>>,
    #[serde(default)]
    pub buckets: Vec<String>,
}
fn default_max_queued_queries() -> usize {
    64
}
fn default_max_request_bytes() -> usize {
    1024 * 1024
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            max_document_bytes: default_max_document_bytes(),
            access_keys: Vec::new(),
            regions: Vec::new(),
            max_queued_queries: default_max_queued_queries(),
            max_request_bytes: default_max_request_bytes(),
            events_api_key_env: None,
            embeddings_api_key_env: None,
            session_idle_minutes: default_session_idle_minutes(),
            limits: ServerLimits::default(),
            tls: None,
            metrics_listen: None,
            allowed_origins: Vec::new(),
            account_id: default_account_id(),
            event_sinks: Vec::new(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_data_dir() -> PathBuf {
    ".quarry".into()
}
fn default_max_document_bytes() -> u64 {
    50 * 1024 * 1024
}

/// A model, by kind: an embedding model (`bert`) or a generation backend for
/// RetrieveAndGenerate (`gguf-llama`, `openai`), which a request names in its `modelArn`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelConfig {
    /// A BERT-family sentence embedder. `path` is a local folder (config.json,
    /// model.safetensors, tokenizer.json); `hub` names a model in the Hugging Face cache.
    Bert {
        path: Option<PathBuf>,
        hub: Option<String>,
    },
    /// A llama-architecture GGUF file run in-process (its tokenizer and chat template come
    /// from the file).
    GgufLlama { path: PathBuf },
    /// An OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, OpenAI).
    Openai {
        /// Up to and including the API version, e.g. `http://127.0.0.1:8000/v1`.
        base_url: String,
        model: String,
        /// The environment variable holding the API key, if the server wants one.
        #[serde(default)]
        api_key_env: Option<String>,
        #[serde(default = "default_generation_timeout_secs")]
        timeout_secs: u64,
        #[serde(default = "default_generation_retries")]
        max_retries: u32,
        /// The model's context window in tokens (prompt and answer).
        #[serde(default = "default_context_tokens")]
        context_tokens: usize,
    },
    /// An embedding model behind OpenAI's `/v1/embeddings` (OpenAI, vLLM, Ollama, llama.cpp's
    /// server, LiteLLM, another Quarry).
    OpenaiEmbeddings(RemoteEmbeddingConfig),
    /// An embedding model behind text-embeddings-inference's native `/embed`.
    Tei(RemoteEmbeddingConfig),
    /// A reranking model behind the common `/rerank` protocol (Cohere's shape, also served by
    /// text-embeddings-inference, vLLM, llama.cpp's server, Jina and Voyage), which
    /// `rerankingConfiguration` and the Rerank operation name in their `modelArn`.
    RerankApi {
        /// The server, up to where `/rerank` is appended (e.g. `http://127.0.0.1:8080` or
        /// `https://api.cohere.com/v2`).
        base_url: String,
        model: String,
        #[serde(default)]
        api_key_env: Option<String>,
        #[serde(default = "default_rerank_timeout_secs")]
        timeout_secs: u64,
        #[serde(default = "default_generation_retries")]
        max_retries: u32,
    },
    /// A sentence-transformers `CrossEncoder` folder (BERT-family sequence classification
    /// with one logit: config.json, model.safetensors, tokenizer.json) run in-process on the
    /// embedding core; `path` is the folder, `hub` a model in the Hugging Face cache.
    BertCrossEncoder {
        path: Option<PathBuf>,
        hub: Option<String>,
    },
}

impl Default for VectorStoreConfig {
    fn default() -> Self {
        Self::Hnsw {
            m: default_hnsw_m(),
            ef_construction: default_hnsw_ef_construction(),
            ef_search: default_hnsw_ef_search(),
            quantization: HnswQuantization::default(),
        }
    }
}

/// `vector_store = { type = "hnsw", quantization = "int8" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HnswQuantization {
    #[default]
    None,
    Int8,
}

impl VectorStoreConfig {
    pub fn is_embedded(&self) -> bool {
        matches!(self, Self::Hnsw { .. })
    }
}

fn default_hnsw_m() -> usize {
    16
}
fn default_hnsw_ef_construction() -> usize {
    200
}
fn default_hnsw_ef_search() -> usize {
    100
}

fn default_rerank_timeout_secs() -> u64 {
    30
}

impl ModelConfig {
    pub fn is_embedding(&self) -> bool {
        matches!(
            self,
            Self::Bert { .. } | Self::OpenaiEmbeddings(_) | Self::Tei(_)
        )
    }
}

/// A remote embedding server: where it is, what it returns, how chunks are counted for it,
/// and how hard to push it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEmbeddingConfig {
    /// For `openai-embeddings`, up to and including the API version
    /// (`http://gpu-1:8000/v1`); for `tei`, the server's root (`http://gpu-1:8080`).
    #[serde(default)]
    pub base_url: String,
    /// Several servers of the same model instead of one: batches are spread over them, and a
    /// failed attempt is retried on the next.
    #[serde(default)]
    pub base_urls: Vec<String>,
    /// The model the server is asked for (OpenAI's `model`; TEI serves one and ignores it).
    #[serde(default)]
    pub model: Option<String>,
    /// The environment variable holding the API key (sent as `Authorization: Bearer`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The length of the vectors; every answer is checked against it, and so is the store.
    pub dimensions: usize,
    /// How chunks are counted: `cl100k_base` or `o200k_base` (OpenAI's), the path of a
    /// Hugging Face `tokenizer.json`, or none (an estimate of 4 characters a token).
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Most tokens the model reads; chunk limits are checked against it, longer texts cut.
    #[serde(default = "default_remote_max_tokens")]
    pub max_tokens: usize,
    /// Texts sent in one request.
    #[serde(default = "default_remote_batch_size")]
    pub batch_size: usize,
    /// Requests in flight at once.
    #[serde(default = "default_remote_max_concurrent")]
    pub max_concurrent: usize,
    #[serde(default = "default_remote_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries of connection errors, 429 and 5xx (with backoff, or the server's Retry-After).
    #[serde(default = "default_remote_max_retries")]
    pub max_retries: u32,
}

fn default_remote_max_tokens() -> usize {
    512
}
fn default_remote_batch_size() -> usize {
    32
}
fn default_remote_max_concurrent() -> usize {
    4
}
fn default_remote_timeout_secs() -> u64 {
    60
}
fn default_remote_max_retries() -> u32 {
    4
}

fn default_generation_timeout_secs() -> u64 {
    120
}
fn default_generation_retries() -> u32 {
    2
}
fn default_context_tokens() -> usize {
    8192
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeBaseConfig {
    pub id: Spanned<ResourceId>,
    pub name: Spanned<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub embedding_model: Spanned<String>,
    #[serde(default)]
    pub vector_store: VectorStoreConfig,
    #[serde(default)]
    pub data_sources: Vec<DataSourceConfig>,
    /// The IAM role a CreateKnowledgeBase named (kept and reported; Quarry has no IAM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Bedrock's resource tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// A retrieval regression set run after every sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionConfig>,
}

/// `regression = { queries = "regression.jsonl", k = 10, margin = 0.05 }`: queries with the
/// documents they must find (one JSON object a line: `{"query": …, "documents": [key, …]}`),
/// scored after every sync; a job whose recall@k or nDCG@10 falls more than `margin` below
/// the last accepted job's is marked as a regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionConfig {
    pub queries: PathBuf,
    #[serde(default = "default_regression_k")]
    pub k: usize,
    #[serde(default = "default_regression_margin")]
    pub margin: f64,
    /// Keep serving the index as it was before a sync while the sync runs, and after it
    /// while its regression set regresses, until a person accepts it (`quarry accept`).
    #[serde(default)]
    pub hold: bool,
}

fn default_regression_k() -> usize {
    10
}

fn default_regression_margin() -> f64 {
    0.05
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum VectorStoreConfig {
    /// In-process HNSW index, persisted in the data directory.
    Hnsw {
        /// Links per node on the upper layers (twice as many on the bottom one).
        #[serde(default = "default_hnsw_m")]
        m: usize,
        /// Candidates weighed when a chunk is linked in: higher builds slower, finds better.
        #[serde(default = "default_hnsw_ef_construction")]
        ef_construction: usize,
        /// Candidates walked per search (at least 4 × the results asked for).
        #[serde(default = "default_hnsw_ef_search")]
        ef_search: usize,
        /// How the graph holds its vectors in memory: `none` (f32) or `int8` (a byte per
        /// dimension, a quarter of the memory; the best candidates are ranked again at full
        /// precision).
        #[serde(default)]
        quantization: HnswQuantization,
    },
    /// A PostgreSQL table with pgvector (Bedrock's RDS/Aurora option).
    Pgvector {
        /// `postgres://user@host:port/database` (the password, if any, from `password_env`).
        url: String,
        /// `table` or `schema.table`; created with its indexes when missing.
        table: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_env: Option<String>,
        /// Bedrock's RDS field mapping, for a table laid out for Bedrock.
        #[serde(default)]
        fields: PgFieldMapping,
    },
    /// A Qdrant collection (one server or a cluster), over gRPC.
    Qdrant {
        /// The gRPC endpoint, e.g. `http://qdrant:6334`.
        url: String,
        collection: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_env: Option<String>,
        /// For a collection Quarry creates: shards, and copies of each (a cluster's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard_number: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replication_factor: Option<u32>,
    },
}

/// Bedrock's RDS field mapping: which column holds each part of a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgFieldMapping {
    pub primary_key: String,
    pub vector: String,
    pub text: String,
    pub metadata: String,
}

impl Default for PgFieldMapping {
    fn default() -> Self {
        Self {
            primary_key: "id".into(),
            vector: "embedding".into(),
            text: "chunks".into(),
            metadata: "metadata".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceConfig {
    pub id: Spanned<ResourceId>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: DataSourceKind,
    /// For `local` sources: the folder to index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Spanned<PathBuf>>,
    /// For `s3` sources: the bucket, the key prefixes to index (all keys when empty), and
    /// optionally an S3-compatible endpoint and a region (else `[s3]`'s, else AWS's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub chunking: ChunkingConfig,
    /// For `s3` sources: an SQS queue receiving the bucket's event notifications; the server
    /// polls it and syncs the objects they name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs_queue_url: Option<String>,
    /// Sync on a schedule as well, e.g. `"15m"` (`s`, `m`, `h` or `d`); the server runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<String>,
    /// What deleting the data source does to its chunks: `delete` them (the default) or
    /// `retain` them in the vector store.
    #[serde(default, skip_serializing_if = "DataDeletionPolicy::is_default")]
    pub data_deletion_policy: DataDeletionPolicy,
    /// Bedrock's resource tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// How scans and images are read: `ocr = { languages = ["eng", "deu"] }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<OcrConfig>,
}

/// OCR settings of a data source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcrConfig {
    /// Tesseract's language codes (`eng`, `deu`, `chi_sim`, …), each from its Debian package
    /// `tesseract-ocr-<code>`; read together.
    #[serde(deserialize_with = "ocr_languages")]
    pub languages: Vec<String>,
}

fn ocr_languages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let languages = Vec::<String>::deserialize(d)?;
    if languages.is_empty() {
        return Err(serde::de::Error::custom(
            "ocr.languages needs at least one language, e.g. [\"eng\"]",
        ));
    }
    for l in &languages {
        let ok = !l.is_empty()
            && l.len() <= 32
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "ocr.languages: {l:?} is not a Tesseract language code (like \"eng\", \"deu\", \"chi_sim\")"
            )));
        }
    }
    Ok(languages)
}

impl DataSourceConfig {
    /// How this data source's documents are parsed.
    pub fn parse_options(&self) -> crate::ParseOptions {
        match &self.ocr {
            Some(ocr) => crate::ParseOptions {
                ocr_languages: ocr.languages.clone(),
            },
            None => crate::ParseOptions::default(),
        }
    }
}

/// Bedrock's `dataDeletionPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataDeletionPolicy {
    #[default]
    Delete,
    Retain,
}

impl DataDeletionPolicy {
    fn is_default(&self) -> bool {
        *self == Self::Delete
    }

    /// Bedrock's name: `DELETE` or `RETAIN`.
    pub fn bedrock_name(self) -> &'static str {
        match self {
            Self::Delete => "DELETE",
            Self::Retain => "RETAIN",
        }
    }
}

/// Parses `"90s"`, `"15m"`, `"2h"`, `"1d"`.
pub fn parse_interval(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok().filter(|&n| n > 0)?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(seconds))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSourceKind {
    Local,
    S3,
    /// Documents arrive only through direct ingestion (Bedrock's CUSTOM data sources).
    Custom,
}

/// Bedrock's chunking strategies and their fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "strategy",
    rename_all = "SCREAMING_SNAKE_CASE",
    deny_unknown_fields
)]
pub enum ChunkingConfig {
    /// About 300 tokens (or the model's limit), sentence boundaries, 20% overlap.
    #[default]
    Default,
    FixedSize {
        max_tokens: usize,
        overlap_percentage: u8,
    },
    None,
    /// Parents of up to `parent_max_tokens` split into children of up to `child_max_tokens`
    /// (consecutive children sharing about `overlap_tokens`); children are searched, their
    /// parents returned.
    Hierarchical {
        parent_max_tokens: usize,
        child_max_tokens: usize,
        overlap_tokens: usize,
    },
    /// Breaks where the meaning changes: between neighbouring sentence groups (each sentence
    /// with `buffer_size` sentences either side) whose embedding distance is above the
    /// `breakpoint_percentile_threshold`-th percentile of the document's distances; pieces
    /// above `max_tokens` are split further.
    Semantic {
        max_tokens: usize,
        buffer_size: usize,
        breakpoint_percentile_threshold: u8,
    },
}

impl ChunkingConfig {
    /// What is wrong with the hierarchical or semantic settings, if anything: the field
    /// and why (Bedrock's bounds).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        match *self {
            ChunkingConfig::FixedSize {
                max_tokens,
                overlap_percentage,
            } => {
                if max_tokens < 20 {
                    Some((
                        "max_tokens",
                        format!("{max_tokens} is too small; use at least 20"),
                    ))
                } else if !(1..=99).contains(&overlap_percentage) {
                    Some((
                        "overlap_percentage",
                        format!("{overlap_percentage} is outside 1..=99"),
                    ))
                } else {
                    None
                }
            }
            ChunkingConfig::Hierarchical {
                parent_max_tokens,
                child_max_tokens,
                overlap_tokens,
            } => {
                if child_max_tokens < 20 {
                    Some((
                        "child_max_tokens",
                        format!("{child_max_tokens} is too small; use at least 20"),
                    ))
                } else if parent_max_tokens < child_max_tokens || parent_max_tokens > 8192 {
                    Some((
                        "parent_max_tokens",
                        format!(
                            "{parent_max_tokens} must be between child_max_tokens ({child_max_tokens}) and 8192"
                        ),
                    ))
                } else if overlap_tokens == 0 || overlap_tokens >= child_max_tokens {
                    Some((
                        "overlap_tokens",
                        format!(
                            "{overlap_tokens} must be between 1 and child_max_tokens ({child_max_tokens}) - 1"
                        ),
                    ))
                } else {
                    None
                }
            }
            ChunkingConfig::Semantic {
                max_tokens,
                buffer_size,
                breakpoint_percentile_threshold,
            } => {
                if max_tokens < 20 {
                    Some((
                        "max_tokens",
                        format!("{max_tokens} is too small; use at least 20"),
                    ))
                } else if buffer_size > 1 {
                    Some(("buffer_size", format!("{buffer_size} is outside 0..=1")))
                } else if !(50..=99).contains(&breakpoint_percentile_threshold) {
                    Some((
                        "breakpoint_percentile_threshold",
                        format!("{breakpoint_percentile_threshold} is outside 50..=99"),
                    ))
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// A configuration that parsed but does not make sense. `span` points into the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub span: Option<Range<usize>>,
    pub field: String,
    pub message: String,
}

impl Config {
    /// Checks what types alone cannot, and makes relative paths relative to `base`.
    pub fn validate_and_resolve(&mut self, base: &Path) -> Result<(), ConfigError> {
        if self.server.data_dir.is_relative() {
            self.server.data_dir = base.join(&self.server.data_dir);
        }
        for (name, model) in &mut self.models {
            match model {
                ModelConfig::Bert { path, hub } | ModelConfig::BertCrossEncoder { path, hub } => {
                    match (path.as_mut(), hub) {
                        (Some(p), _) if p.is_relative() => *p = base.join(&*p),
                        (None, None) => {
                            return Err(ConfigError {
                            span: None,
                            field: format!("models.{name}"),
                            message:
                                "needs `path` (a local folder) or `hub` (a Hugging Face model id)"
                                    .into(),
                        });
                        }
                        _ => {}
                    }
                }
                ModelConfig::GgufLlama { path } if path.is_relative() => *path = base.join(&*path),
                ModelConfig::GgufLlama { .. } => {}
                ModelConfig::Openai { base_url, .. } | ModelConfig::RerankApi { base_url, .. } => {
                    check_url(name, base_url)?
                }
                ModelConfig::OpenaiEmbeddings(remote) | ModelConfig::Tei(remote) => {
                    let bad = |field: &str, message: String| ConfigError {
                        span: None,
                        field: format!("models.{name}.{field}"),
                        message,
                    };
                    match (remote.base_url.is_empty(), remote.base_urls.is_empty()) {
                        (false, true) => remote.base_urls = vec![remote.base_url.clone()],
                        (true, false) => remote.base_url = remote.base_urls[0].clone(),
                        _ => {
                            return Err(bad(
                                "base_url",
                                "give the server as base_url, or several as base_urls".into(),
                            ));
                        }
                    }
                    for url in &remote.base_urls {
                        check_url(name, url)?;
                    }
                    for (field, value) in [
                        ("dimensions", remote.dimensions),
                        ("max_tokens", remote.max_tokens),
                        ("batch_size", remote.batch_size),
                        ("max_concurrent", remote.max_concurrent),
                    ] {
                        if value == 0 {
                            return Err(bad(field, "must be at least 1".into()));
                        }
                    }
                    if let Some(t) = &mut remote.tokenizer
                        && !matches!(t.as_str(), "cl100k_base" | "o200k_base")
                    {
                        let path = base.join(&*t);
                        if !path.is_file() {
                            return Err(bad(
                                "tokenizer",
                                format!(
                                    "{t:?} is neither cl100k_base, o200k_base nor a tokenizer.json file"
                                ),
                            ));
                        }
                        *t = path.to_string_lossy().into_owned();
                    }
                }
            }
        }
        for (i, key) in self.server.access_keys.iter().enumerate() {
            if key.knowledge_bases.is_none() {
                return Err(ConfigError {
                    span: None,
                    field: format!("server.access_keys[{i}].knowledge_bases"),
                    message: format!(
                        "access key {} does not say which knowledge bases it may use: add knowledge_bases = [ids or names], or [\"*\"] for all",
                        key.id
                    ),
                });
            }
        }
        for (i, sink) in self.server.event_sinks.iter().enumerate() {
            let field = format!("server.event_sinks[{i}]");
            if let EventSinkConfig::Webhook { url, .. } = sink
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(ConfigError {
                    span: None,
                    field: format!("{field}.url"),
                    message: format!("{url:?} is not an http:// or https:// URL"),
                });
            }
            if self.cluster.is_some() {
                return Err(ConfigError {
                    span: None,
                    field,
                    message: "job events are delivered by a single node's jobs; in cluster mode they are not delivered yet, so the sink is refused rather than left silent".into(),
                });
            }
        }
        for kb in &mut self.knowledge_bases {
            if let Some(r) = &mut kb.regression {
                let field = format!("knowledge_bases.{}.regression", kb.name.get_ref());
                if r.queries.is_relative() {
                    r.queries = base.join(&r.queries);
                }
                if !(1..=100).contains(&r.k) || !(0.0..=1.0).contains(&r.margin) {
                    return Err(ConfigError {
                        span: None,
                        field,
                        message: "k must be 1 to 100 and margin 0 to 1".into(),
                    });
                }
            }
        }
        if let Some(cluster) = &self.cluster {
            if cluster.lease_secs == 0 || cluster.claim_batch == 0 {
                return Err(ConfigError {
                    span: None,
                    field: "cluster".into(),
                    message: "lease_secs and claim_batch must be at least 1".into(),
                });
            }
            if let Some((i, kb)) = self
                .knowledge_bases
                .iter()
                .enumerate()
                .find(|(_, kb)| kb.vector_store.is_embedded())
            {
                return Err(ConfigError {
                    span: None,
                    field: format!("knowledge_bases[{i}].vector_store"),
                    message: format!(
                        "knowledge base {} uses the embedded HNSW store, which serves one node; in cluster mode every replica must reach the same vectors: use type = \"pgvector\" (the cluster's database will do) or type = \"qdrant\"",
                        kb.name.get_ref()
                    ),
                });
            }
        }
        let mut kb_ids = BTreeMap::new();
        let mut kb_names = BTreeMap::new();
        let mut ds_ids = BTreeMap::new();
        for (i, kb) in self.knowledge_bases.iter_mut().enumerate() {
            let here = |field: &str| format!("knowledge_bases[{i}].{field}");
            if let VectorStoreConfig::Hnsw {
                m,
                ef_construction,
                ef_search,
                ..
            } = &kb.vector_store
            {
                for (name, value, low, high) in [
                    ("m", *m, 2, 128),
                    ("ef_construction", *ef_construction, 1, 10_000),
                    ("ef_search", *ef_search, 1, 10_000),
                ] {
                    if !(low..=high).contains(&value) {
                        return Err(ConfigError {
                            span: None,
                            field: here(&format!("vector_store.{name}")),
                            message: format!("must be from {low} to {high}, got {value}"),
                        });
                    }
                }
            }
            if kb_ids.insert(kb.id.get_ref().clone(), ()).is_some() {
                return Err(spanned(&kb.id, here("id"), "duplicate knowledge base id"));
            }
            if kb_names.insert(kb.name.get_ref().clone(), ()).is_some() {
                return Err(spanned(
                    &kb.name,
                    here("name"),
                    "duplicate knowledge base name",
                ));
            }
            if !self
                .models
                .get(kb.embedding_model.get_ref())
                .is_some_and(ModelConfig::is_embedding)
            {
                let known: Vec<_> = self
                    .models
                    .iter()
                    .filter(|(_, m)| m.is_embedding())
                    .map(|(n, _)| n.clone())
                    .collect();
                return Err(spanned(
                    &kb.embedding_model,
                    here("embedding_model"),
                    &format!(
                        "no embedding model {:?} in [models] (known: {})",
                        kb.embedding_model.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
            for (j, ds) in kb.data_sources.iter_mut().enumerate() {
                let here = |field: &str| format!("knowledge_bases[{i}].data_sources[{j}].{field}");
                if ds_ids.insert(ds.id.get_ref().clone(), ()).is_some() {
                    return Err(spanned(&ds.id, here("id"), "duplicate data source id"));
                }
                match (&ds.kind, &mut ds.path) {
                    (DataSourceKind::Local, None) => {
                        return Err(ConfigError {
                            span: Some(ds.id.span()),
                            field: here("path"),
                            message: "a local data source needs `path`".into(),
                        });
                    }
                    (DataSourceKind::Local, Some(path)) => {
                        if path.get_ref().is_relative() {
                            let span = path.span();
                            *path = Spanned::new(span, base.join(path.get_ref()));
                        }
                    }
                    (DataSourceKind::S3, Some(_)) => {
                        return Err(ConfigError {
                            span: Some(ds.id.span()),
                            field: here("path"),
                            message: "an s3 data source reads `bucket`, not `path`".into(),
                        });
                    }
                    (DataSourceKind::Custom, Some(_)) => {
                        return Err(ConfigError {
                            span: Some(ds.id.span()),
                            field: here("path"),
                            message: "a custom data source has no `path`: its documents arrive through IngestKnowledgeBaseDocuments".into(),
                        });
                    }
                    (DataSourceKind::Custom, None) => {}
                    (DataSourceKind::S3, None) => {
                        if ds.bucket.as_deref().is_none_or(str::is_empty) {
                            return Err(ConfigError {
                                span: Some(ds.id.span()),
                                field: here("bucket"),
                                message: "an s3 data source needs `bucket`".into(),
                            });
                        }
                    }
                }
                if let Some(interval) = &ds.sync_interval
                    && parse_interval(interval).is_none()
                {
                    return Err(ConfigError {
                        span: Some(ds.id.span()),
                        field: here("sync_interval"),
                        message: format!(
                            "{interval:?} is not an interval like \"90s\", \"15m\", \"2h\" or \"1d\""
                        ),
                    });
                }
                if ds.kind != DataSourceKind::S3
                    && (ds.bucket.is_some()
                        || !ds.inclusion_prefixes.is_empty()
                        || ds.endpoint_url.is_some()
                        || ds.sqs_queue_url.is_some())
                {
                    return Err(ConfigError {
                        span: Some(ds.id.span()),
                        field: here("bucket"),
                        message: "bucket, inclusion_prefixes, endpoint_url and sqs_queue_url belong to s3 data sources".into(),
                    });
                }
                if let Some((field, message)) = ds.chunking.problem() {
                    return Err(ConfigError {
                        span: Some(ds.id.span()),
                        field: here(&format!("chunking.{field}")),
                        message,
                    });
                }
            }
        }
        Ok(())
    }

    /// A knowledge base by id or by name.
    pub fn knowledge_base(&self, id_or_name: &str) -> Option<&KnowledgeBaseConfig> {
        self.knowledge_bases
            .iter()
            .find(|kb| kb.id.get_ref().as_str() == id_or_name || kb.name.get_ref() == id_or_name)
    }
}

fn check_url(model: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError {
            span: None,
            field: format!("models.{model}.base_url"),
            message: format!("{url:?} is not an http:// or https:// URL"),
        })
    }
}

fn spanned<T>(at: &Spanned<T>, field: String, message: &str) -> ConfigError {
    ConfigError {
        span: Some(at.span()),
        field,
        message: message.to_owned(),
    }
}
