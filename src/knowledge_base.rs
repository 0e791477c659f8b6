//! A knowledge base at run time: its configuration, embedding model, vector store and ledger.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, anyhow, bail};
use quarry_core::config::{
    Config, DataSourceConfig, DataSourceKind, KnowledgeBaseConfig, ModelConfig, S3Defaults,
    VectorStoreConfig,
};
use quarry_core::{Chunker, Embedder, VectorStore};
use quarry_embed::{BertEmbedder, ModelFiles, Protocol, RemoteEmbedder};
use quarry_ingest::{
    Ledger, LocalFolder, PgLedger, S3Bucket, S3Location, Source, SourceError, SqliteLedger,
};
use quarry_lexical::{HybridStore, LexicalIndex};
use quarry_vectorstores::{
    HnswParams, HnswStore, PgVectorConfig, PgVectorStore, QdrantConfig, QdrantStore,
};

pub struct KnowledgeBase {
    pub config: KnowledgeBaseConfig,
    pub embedder: Arc<dyn Embedder>,
    /// The vectors with the lexical index kept in step: write through this.
    pub store: Arc<dyn VectorStore>,
    pub lexical: Arc<LexicalIndex>,
    ledger: Arc<Mutex<Box<dyn Ledger>>>,
    pub dir: PathBuf,
    /// In cluster mode: the connection its ledger and change log use.
    cluster_db: Option<Arc<quarry_state::PgConnection>>,
    /// The generation of the vector index this handle serves, and the model of its vectors
    /// (`embedder`'s): the configured model's, unless a switch to it is still building.
    pub generation: crate::generations::Generation,
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
        let model = Self::serving_model(&config.server.data_dir, kb)?;
        let embedder = load_model(config, &model)?;
        Self::open_with(&config.server.data_dir, kb.clone(), embedder)
    }

    /// The model whose vectors serve a knowledge base (its configured one, unless a switch
    /// to that is still building); a change of the configured model is planned here.
    pub fn serving_model(data_dir: &Path, config: &KnowledgeBaseConfig) -> anyhow::Result<String> {
        let dir = data_dir.join(config.id.get_ref().as_str());
        let model = config.embedding_model.get_ref();
        crate::generations::serving_model(&dir, model, model)
    }

    /// Opens a knowledge base with the serving model's embedder already loaded.
    pub fn open_with(
        data_dir: &Path,
        config: KnowledgeBaseConfig,
        embedder: Arc<dyn Embedder>,
    ) -> anyhow::Result<Self> {
        let dir = data_dir.join(config.id.get_ref().as_str());
        let state = crate::generations::IndexState::load(&dir, config.embedding_model.get_ref())?;
        let lexical = Arc::new(
            LexicalIndex::open(&dir.join("lexical"))
                .with_context(|| format!("opening the lexical index in {}", dir.display()))?,
        );
        Self::open_generation(&dir, config, embedder, state.active, lexical)
    }

    /// Opens one generation of a knowledge base's vector index (with the lexical index all
    /// generations share, which holds the same chunks).
    pub fn open_generation(
        dir: &Path,
        config: KnowledgeBaseConfig,
        embedder: Arc<dyn Embedder>,
        generation: crate::generations::Generation,
        lexical: Arc<LexicalIndex>,
    ) -> anyhow::Result<Self> {
        let (store_config, store_dir) =
            crate::generations::location(&config.vector_store, dir, generation.number);
        let vectors = open_store(&store_config, &store_dir, embedder.dimension())
            .with_context(|| format!("opening the vector store of {}", config.name.get_ref()))?;
        Self::with_vectors(dir, config, embedder, generation, lexical, vectors)
    }

    /// A knowledge base over one generation's vector store, already open.
    pub fn with_vectors(
        dir: &Path,
        config: KnowledgeBaseConfig,
        embedder: Arc<dyn Embedder>,
        generation: crate::generations::Generation,
        lexical: Arc<LexicalIndex>,
        vectors: Arc<dyn VectorStore>,
    ) -> anyhow::Result<Self> {
        lexical
            .rebuild_if_stale(vectors.as_ref())
            .with_context(|| format!("rebuilding the lexical index in {}", dir.display()))?;
        let vectors: Arc<dyn VectorStore> = Arc::new(
            crate::generations::store::GenerationStore::new(vectors, dir, generation.number),
        );
        let store = Arc::new(HybridStore::new(vectors, lexical.clone()));
        let ledger: Box<dyn Ledger> = Box::new(SqliteLedger::open(&ledger_path(dir))?);
        Ok(Self {
            config,
            embedder,
            store,
            lexical,
            ledger: Arc::new(Mutex::new(ledger)),
            dir: dir.to_owned(),
            cluster_db: None,
            generation,
        })
    }

    /// Opens a knowledge base as a replica of a cluster sees it: the ledger in the cluster's
    /// database, the vectors in their (shared) store with every change logged, and this
    /// replica's own lexical index, which the returned follower keeps in step with the log.
    pub fn open_in_cluster(
        data_dir: &Path,
        config: KnowledgeBaseConfig,
        embedder: Arc<dyn Embedder>,
        cluster: &crate::cluster::Cluster,
    ) -> anyhow::Result<(Self, Arc<crate::cluster::lexical_log::Follower>)> {
        let id = config.id.get_ref().to_string();
        let dir = data_dir.join(&id);
        let generation = crate::generations::Generation {
            number: 0,
            model: config.embedding_model.get_ref().clone(),
        };
        let vectors = open_store(&config.vector_store, &dir, embedder.dimension())
            .with_context(|| format!("opening the vector store of {}", config.name.get_ref()))?;
        let lexical = Arc::new(
            LexicalIndex::open(&dir.join("lexical"))
                .with_context(|| format!("opening the lexical index in {}", dir.display()))?,
        );
        let db = cluster.connection()?;
        let follower = Arc::new(crate::cluster::lexical_log::Follower::open(
            &id,
            lexical.clone(),
            vectors.as_ref(),
            db.clone(),
            &dir,
        )?);
        let store = Arc::new(crate::cluster::lexical_log::LoggedStore::new(
            vectors,
            db.clone(),
            &id,
        ));
        let ledger: Box<dyn Ledger> = Box::new(PgLedger::new(db.clone(), &id));
        Ok((
            Self {
                config,
                embedder,
                store,
                lexical,
                ledger: Arc::new(Mutex::new(ledger)),
                dir,
                cluster_db: Some(db),
                generation,
            },
            follower,
        ))
    }

    /// The same knowledge base (same store, ledger and model) under a new configuration:
    /// anything still using the old handle keeps writing to the same index.
    pub fn reconfigured(&self, config: KnowledgeBaseConfig) -> Self {
        Self {
            config,
            embedder: self.embedder.clone(),
            store: self.store.clone(),
            lexical: self.lexical.clone(),
            ledger: self.ledger.clone(),
            dir: self.dir.clone(),
            cluster_db: self.cluster_db.clone(),
            generation: self.generation.clone(),
        }
    }

    /// Refuses work through a handle whose index a model switch has replaced (its writes
    /// would be refused): the work is started again on the knowledge base as it is now.
    pub fn check_current(&self) -> anyhow::Result<()> {
        if self.cluster_db.is_some() {
            return Ok(());
        }
        let state =
            crate::generations::IndexState::load(&self.dir, self.config.embedding_model.get_ref())?;
        anyhow::ensure!(
            state.active.number == self.generation.number,
            "the index of knowledge base {} was just switched to the embedding model {}; start again",
            self.name(),
            state.active.model
        );
        Ok(())
    }

    pub fn id(&self) -> &str {
        self.config.id.get_ref().as_str()
    }

    pub fn name(&self) -> &str {
        self.config.name.get_ref()
    }

    /// What a search reads.
    pub fn indexes(&self) -> quarry_retrieve::Indexes<'_> {
        quarry_retrieve::Indexes {
            store: self.store.as_ref(),
            lexical: Some(&self.lexical),
        }
    }

    pub fn ledger(&self) -> MutexGuard<'_, Box<dyn Ledger>> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection of its own to the ledger, for a job running on another thread.
    pub fn open_ledger(&self) -> anyhow::Result<Box<dyn Ledger>> {
        if let Some(db) = &self.cluster_db {
            return Ok(Box::new(PgLedger::new(db.clone(), self.id())));
        }
        Ok(Box::new(SqliteLedger::open(&ledger_path(&self.dir))?))
    }

    pub fn data_source(&self, id_or_name: &str) -> Option<&DataSourceConfig> {
        self.config
            .data_sources
            .iter()
            .find(|ds| ds.id.get_ref().as_str() == id_or_name || ds.name == id_or_name)
    }

    pub fn chunker(&self, ds: &DataSourceConfig) -> anyhow::Result<Box<dyn Chunker>> {
        quarry_chunkers::chunker_for(&ds.chunking, self.embedder.clone()).with_context(|| {
            format!(
                "knowledge base {}, data source {}: chunking",
                self.name(),
                ds.name
            )
        })
    }
}

/// Opens the vector store a knowledge base's configuration names (`kb_dir` holds the
/// embedded store's files).
pub fn open_store(
    config: &VectorStoreConfig,
    kb_dir: &Path,
    dimension: usize,
) -> anyhow::Result<Arc<dyn VectorStore>> {
    Ok(match config {
        VectorStoreConfig::Hnsw {
            m,
            ef_construction,
            ef_search,
            quantization,
        } => Arc::new(HnswStore::open(
            &kb_dir.join("hnsw"),
            dimension,
            HnswParams {
                max_connections: *m,
                ef_construction: *ef_construction,
                ef_search: *ef_search,
                quantization: hnsw_quantization(*quantization),
                ..HnswParams::default()
            },
        )?),
        VectorStoreConfig::Pgvector {
            url,
            table,
            password_env,
            fields,
        } => {
            let password = secret_from_env(password_env.as_deref(), "password_env")?;
            let config = PgVectorConfig {
                url: url.clone(),
                table: table.clone(),
                password,
                fields: fields.clone(),
            };
            Arc::new(PgVectorStore::open(&config, dimension)?)
        }
        VectorStoreConfig::Qdrant {
            url,
            collection,
            api_key_env,
            shard_number,
            replication_factor,
        } => {
            let api_key = secret_from_env(api_key_env.as_deref(), "api_key_env")?;
            let config = QdrantConfig {
                url: url.clone(),
                collection: collection.clone(),
                api_key,
                shard_number: *shard_number,
                replication_factor: *replication_factor,
            };
            Arc::new(QdrantStore::open(&config, dimension)?)
        }
    })
}

pub fn hnsw_quantization(
    q: quarry_core::config::HnswQuantization,
) -> quarry_vectorstores::Quantization {
    match q {
        quarry_core::config::HnswQuantization::None => quarry_vectorstores::Quantization::None,
        quarry_core::config::HnswQuantization::Int8 => quarry_vectorstores::Quantization::Int8,
    }
}

/// A secret named by a `*_env` setting, read from the environment.
fn secret_from_env(var: Option<&str>, setting: &str) -> anyhow::Result<Option<String>> {
    var.map(|var| {
        std::env::var(var).with_context(|| format!("vector_store {setting} {var} is not set"))
    })
    .transpose()
}

fn ledger_path(kb_dir: &Path) -> PathBuf {
    kb_dir.join("ledger.sqlite")
}

pub fn ledger_path_for(config: &Config, kb: &KnowledgeBaseConfig) -> PathBuf {
    ledger_path(&config.server.data_dir.join(kb.id.get_ref().as_str()))
}

/// The source a data source reads; S3 settings it leaves out come from `[s3]`.
pub fn source_for(ds: &DataSourceConfig, s3: &S3Defaults) -> Result<Box<dyn Source>, SourceError> {
    Ok(match ds.kind {
        DataSourceKind::Local => Box::new(LocalFolder::new(
            ds.path
                .as_ref()
                .expect("validated: local sources have a path")
                .get_ref()
                .clone(),
        )),
        DataSourceKind::Custom => Box::new(quarry_ingest::sources::NoSource),
        DataSourceKind::S3 => Box::new(S3Bucket::connect(S3Location {
            bucket: ds.bucket.clone().unwrap_or_default(),
            prefixes: ds.inclusion_prefixes.clone(),
            endpoint_url: ds.endpoint_url.clone().or_else(|| s3.endpoint_url.clone()),
            region: ds.region.clone().or_else(|| s3.region.clone()),
        })?),
    })
}

/// The embedding model a command uses: the one named, or the only one configured.
pub fn embedding_model_name(config: &Config, named: Option<String>) -> anyhow::Result<String> {
    if let Some(name) = named {
        return Ok(name);
    }
    let names: Vec<&String> = config
        .models
        .iter()
        .filter(|(_, m)| m.is_embedding())
        .map(|(n, _)| n)
        .collect();
    match names.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no embedding model in [models]"),
        _ => bail!(
            "several embedding models are configured; choose one with --model ({})",
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn load_model(config: &Config, name: &str) -> anyhow::Result<Arc<dyn Embedder>> {
    let model = config
        .models
        .get(name)
        .ok_or_else(|| anyhow!("no model {name:?} in [models]"))?;
    let (path, hub) = match model {
        ModelConfig::Bert { path, hub } => (path, hub),
        ModelConfig::OpenaiEmbeddings(remote) => {
            let embedder = RemoteEmbedder::new(Protocol::OpenAi, remote.clone())
                .with_context(|| format!("model {name:?}"))?;
            return Ok(Arc::new(embedder));
        }
        ModelConfig::Tei(remote) => {
            let embedder = RemoteEmbedder::new(Protocol::Tei, remote.clone())
                .with_context(|| format!("model {name:?}"))?;
            return Ok(Arc::new(embedder));
        }
        ModelConfig::GgufLlama { .. } | ModelConfig::Openai { .. } => {
            bail!("model {name:?} is a generation model, not an embedding model")
        }
        ModelConfig::RerankApi { .. } | ModelConfig::BertCrossEncoder { .. } => {
            bail!("model {name:?} is a reranking model, not an embedding model")
        }
    };
    let files = ModelFiles::locate(path.as_deref(), hub.as_deref()).with_context(|| {
        format!(
            "model {name:?}: not found (run `make models` to fetch all-MiniLM-L6-v2 into models/)"
        )
    })?;
    let embedder = BertEmbedder::load(files).with_context(|| format!("loading model {name:?}"))?;
    Ok(Arc::new(embedder))
}

/// Models by name, each loaded once however many knowledge bases use it.
#[derive(Default)]
pub struct Models {
    loaded: Mutex<HashMap<String, Arc<dyn Embedder>>>,
}

impl Models {
    pub fn get(&self, config: &Config, name: &str) -> anyhow::Result<Arc<dyn Embedder>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = loaded.get(name) {
            return Ok(m.clone());
        }
        let model = load_model(config, name)?;
        loaded.insert(name.to_owned(), model.clone());
        Ok(model)
    }
}
