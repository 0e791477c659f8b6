//! A knowledge base at run time: its configuration, embedding model, vector store and ledger.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use quarry_core::config::{
    Config, DataSourceConfig, DataSourceKind, KnowledgeBaseConfig, ModelConfig, VectorStoreConfig,
};
use quarry_core::{Chunker, Embedder, VectorStore};
use quarry_embed::{BertEmbedder, ModelFiles};
use quarry_ingest::{Ledger, LocalFolder, Source};
use quarry_vectorstores::{HnswParams, HnswStore};

pub struct KnowledgeBase {
    pub config: KnowledgeBaseConfig,
    pub embedder: Arc<dyn Embedder>,
    pub store: Box<dyn VectorStore>,
    pub ledger: Ledger,
}

impl KnowledgeBase {
    /// Opens a knowledge base named by id or name: loads its model, opens its store and
    /// ledger under the data directory.
    pub fn open(config: &Config, id_or_name: &str) -> anyhow::Result<Self> {
        let kb = config.knowledge_base(id_or_name).ok_or_else(|| {
            let known: Vec<String> = config
                .knowledge_bases
                .iter()
                .map(|kb| format!("{} ({})", kb.name.get_ref(), kb.id.get_ref()))
                .collect();
            anyhow!(
                "no knowledge base {id_or_name:?}; known: {}",
                known.join(", ")
            )
        })?;
        let embedder = load_model(config, kb.embedding_model.get_ref())?;
        let dir = data_dir(config, kb);
        let store: Box<dyn VectorStore> = match kb.vector_store {
            VectorStoreConfig::Hnsw => Box::new(
                HnswStore::open(
                    &dir.join("hnsw"),
                    embedder.dimension(),
                    HnswParams::default(),
                )
                .with_context(|| format!("opening the vector store in {}", dir.display()))?,
            ),
        };
        let ledger = Ledger::open(&dir.join("ledger.sqlite"))?;
        Ok(Self {
            config: kb.clone(),
            embedder,
            store,
            ledger,
        })
    }

    pub fn id(&self) -> &str {
        self.config.id.get_ref().as_str()
    }

    pub fn data_source(&self, id_or_name: &str) -> anyhow::Result<&DataSourceConfig> {
        self.config
            .data_sources
            .iter()
            .find(|ds| ds.id.get_ref().as_str() == id_or_name || ds.name == id_or_name)
            .ok_or_else(|| {
                anyhow!(
                    "knowledge base {} has no data source {id_or_name:?}",
                    self.config.name.get_ref()
                )
            })
    }

    pub fn chunker(&self, ds: &DataSourceConfig) -> anyhow::Result<Box<dyn Chunker>> {
        let counter: Arc<dyn quarry_core::TokenCounter> =
            Arc::new(EmbedderTokens(self.embedder.clone()));
        quarry_chunkers::chunker_for(&ds.chunking, counter).with_context(|| {
            format!(
                "knowledge base {}, data source {}: chunking",
                self.config.name.get_ref(),
                ds.name
            )
        })
    }
}

pub fn source_for(ds: &DataSourceConfig) -> Box<dyn Source> {
    match ds.kind {
        DataSourceKind::Local => Box::new(LocalFolder::new(
            ds.path
                .as_ref()
                .expect("validated: local sources have a path")
                .get_ref()
                .clone(),
        )),
    }
}

fn data_dir(config: &Config, kb: &KnowledgeBaseConfig) -> PathBuf {
    config.server.data_dir.join(kb.id.get_ref().as_str())
}

pub fn load_model(config: &Config, name: &str) -> anyhow::Result<Arc<dyn Embedder>> {
    let model = config
        .models
        .get(name)
        .ok_or_else(|| anyhow!("no model {name:?} in [models]"))?;
    let ModelConfig::Bert { path, hub } = model;
    let files = ModelFiles::locate(path.as_deref(), hub.as_deref()).with_context(|| {
        format!(
            "model {name:?}: not found (run `make models` to fetch all-MiniLM-L6-v2 into models/)"
        )
    })?;
    let embedder = BertEmbedder::load(files).with_context(|| format!("loading model {name:?}"))?;
    Ok(Arc::new(embedder))
}

/// Lends an embedder's tokenizer to a chunker.
struct EmbedderTokens(Arc<dyn Embedder>);

impl quarry_core::TokenCounter for EmbedderTokens {
    fn count_tokens(&self, text: &str) -> usize {
        self.0.count_tokens(text)
    }
    fn max_content_tokens(&self) -> usize {
        self.0.max_content_tokens()
    }
}
