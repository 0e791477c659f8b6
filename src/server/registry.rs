//! The knowledge bases the server serves: those declared in `knowledge-bases.toml`, and those
//! created through the API, which are kept in `<data_dir>/api-knowledge-bases.toml` in the
//! same shape as the configuration file — or, in cluster mode, in the cluster's database,
//! where every replica finds them ([`Registry::refresh_from_cluster`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use chrono::{DateTime, Utc};
use quarry_core::config::{Config, KnowledgeBaseConfig};
use serde::{Deserialize, Serialize};

use super::encoder::EncoderQueue;
use super::error::{ApiError, ApiResult};
use super::metrics::Metrics;
use crate::cluster::Cluster;
use crate::cluster::knowledge_bases::{self as rows, WriteError};
use crate::cluster::lexical_log::Follower;
use crate::knowledge_base::{KnowledgeBase, Models};

pub struct KbEntry {
    pub kb: Arc<KnowledgeBase>,
    pub from_api: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub encoder: EncoderQueue,
}

impl KbEntry {
    /// One of its data sources, by id or name.
    pub fn data_source(
        &self,
        id_or_name: &str,
    ) -> ApiResult<&quarry_core::config::DataSourceConfig> {
        self.kb.data_source(id_or_name).ok_or_else(|| {
            ApiError::NotFound(format!(
                "data source {id_or_name} does not exist in knowledge base {}",
                self.kb.id()
            ))
        })
    }
}

pub struct Registry {
    pub config: Config,
    models: Models,
    encoders: std::sync::Mutex<BTreeMap<String, EncoderQueue>>,
    entries: RwLock<BTreeMap<String, Arc<KbEntry>>>,
    metrics: Arc<Metrics>,
    started_at: DateTime<Utc>,
    /// Held by create, update and delete, so a name's check and its use are one step.
    writing: std::sync::Mutex<()>,
    cluster: Option<Arc<Cluster>>,
    /// In cluster mode: each knowledge base's lexical follower, by id.
    followers: std::sync::Mutex<BTreeMap<String, Arc<Follower>>>,
    /// Model switches being built, by knowledge base id.
    switches: std::sync::Mutex<BTreeMap<String, Arc<crate::generations::Progress>>>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    #[serde(default)]
    knowledge_bases: Vec<KnowledgeBaseConfig>,
}

/// The knowledge bases made through the API on one node (`<data_dir>/api-knowledge-bases.toml`).
pub fn api_knowledge_bases(config: &Config) -> anyhow::Result<Vec<KnowledgeBaseConfig>> {
    let path = config.server.data_dir.join("api-knowledge-bases.toml");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = fs_err::read_to_string(&path)?;
    let file: ApiFile = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    Ok(file.knowledge_bases)
}

/// A knowledge base declared in the configuration or made through the API, by id or name.
pub fn find_knowledge_base(
    config: &Config,
    id_or_name: &str,
) -> anyhow::Result<KnowledgeBaseConfig> {
    if let Some(kb) = config.knowledge_base(id_or_name) {
        return Ok(kb.clone());
    }
    api_knowledge_bases(config)?
        .into_iter()
        .find(|kb| kb.id.get_ref().as_str() == id_or_name || kb.name.get_ref() == id_or_name)
        .ok_or_else(|| anyhow::anyhow!("no knowledge base {id_or_name:?}"))
}

impl Registry {
    pub fn open(
        config: Config,
        metrics: Arc<Metrics>,
        cluster: Option<Arc<Cluster>>,
    ) -> anyhow::Result<Self> {
        let registry = Self {
            config,
            models: Models::default(),
            encoders: Default::default(),
            entries: Default::default(),
            metrics,
            started_at: Utc::now(),
            writing: Default::default(),
            cluster,
            followers: Default::default(),
            switches: Default::default(),
        };
        for kb in registry.config.knowledge_bases.clone() {
            registry.insert(kb, false, registry.started_at)?;
        }
        if let Some(cluster) = &registry.cluster {
            for row in rows::all(&cluster.db)? {
                registry.insert(row.config, true, row.created_at)?;
            }
            return Ok(registry);
        }
        for kb in api_knowledge_bases(&registry.config)? {
            registry.insert(kb, true, registry.started_at)?;
        }
        Ok(registry)
    }

    fn api_file(&self) -> PathBuf {
        self.config.server.data_dir.join("api-knowledge-bases.toml")
    }

    fn insert(
        &self,
        kb: KnowledgeBaseConfig,
        from_api: bool,
        created_at: DateTime<Utc>,
    ) -> anyhow::Result<Arc<KbEntry>> {
        // (in cluster mode the configured model always serves: no switches there)
        let model_name = if self.cluster.is_some() {
            kb.embedding_model.get_ref().clone()
        } else {
            KnowledgeBase::serving_model(&self.config.server.data_dir, &kb)?
        };
        let embedder = self.models.get(&self.config, &model_name)?;
        let encoder = self.encoder_for(&model_name)?;
        let id = kb.id.get_ref().to_string();
        let knowledge_base = match &self.cluster {
            Some(cluster) => {
                let (kb, follower) = KnowledgeBase::open_in_cluster(
                    &self.config.server.data_dir,
                    kb,
                    embedder,
                    cluster,
                )?;
                follower.spawn();
                let old = self
                    .followers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), follower);
                if let Some(old) = old {
                    old.stop();
                }
                kb
            }
            None => KnowledgeBase::open_with(&self.config.server.data_dir, kb, embedder)?,
        };
        let entry = Arc::new(KbEntry {
            kb: Arc::new(knowledge_base),
            from_api,
            created_at,
            updated_at: created_at,
            encoder,
        });
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry.clone());
        Ok(entry)
    }

    /// The queue in front of an embedding model of `[models]`, started the first time.
    pub fn encoder_for(&self, model_name: &str) -> anyhow::Result<EncoderQueue> {
        let mut encoders = self.encoders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = encoders.get(model_name) {
            return Ok(queue.clone());
        }
        let embedder = self.models.get(&self.config, model_name)?;
        let queue = EncoderQueue::start(
            model_name,
            embedder,
            self.config.server.max_queued_queries,
            self.metrics.clone(),
        );
        encoders.insert(model_name.to_owned(), queue.clone());
        Ok(queue)
    }

    /// An embedding model of `[models]`, loaded once.
    pub fn embedder(&self, model_name: &str) -> anyhow::Result<Arc<dyn quarry_core::Embedder>> {
        self.models.get(&self.config, model_name)
    }

    /// Records that a switch of `id`'s model is being built; None if one is already.
    pub fn begin_switch(
        &self,
        id: &str,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> Option<Arc<crate::generations::Progress>> {
        let mut switches = self.switches.lock().unwrap_or_else(|p| p.into_inner());
        if switches.contains_key(id) {
            return None;
        }
        let progress = Arc::new(crate::generations::Progress {
            stop,
            ..Default::default()
        });
        switches.insert(id.to_owned(), progress.clone());
        Some(progress)
    }

    pub fn end_switch(&self, id: &str) {
        self.switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// How far the switch of `id`'s model is, if one is being built.
    pub fn switch_progress(&self, id: &str) -> Option<Arc<crate::generations::Progress>> {
        self.switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Serves a knowledge base's new generation (after a switch's swap): requests from now on
    /// embed their queries with its model and read its index; those under way finish on the
    /// old one, which stays until `quarry gc`.
    pub fn swapped(&self, id: &str, next: KnowledgeBase) -> anyhow::Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(old) = self.get_known(id) else {
            return Ok(());
        };
        let encoder = self.encoder_for(&next.generation.model)?;
        let entry = Arc::new(KbEntry {
            // (its configuration as it is now: it may have changed during the build)
            kb: Arc::new(next.reconfigured(old.kb.config.clone())),
            from_api: old.from_api,
            created_at: old.created_at,
            updated_at: Utc::now(),
            encoder,
        });
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), entry);
        Ok(())
    }

    /// A knowledge base by id (or name). In cluster mode one not known here yet is looked
    /// for in the cluster's database (another replica may have just created it).
    pub fn get(&self, id_or_name: &str) -> ApiResult<Arc<KbEntry>> {
        match self.get_known(id_or_name) {
            Err(_) if self.cluster.is_some() => {
                self.refresh_from_cluster();
                self.get_known(id_or_name)
            }
            found => found,
        }
    }

    /// Whether this is a replica of a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// A knowledge base this replica has open, by id or name.
    pub fn get_known(&self, id_or_name: &str) -> ApiResult<Arc<KbEntry>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(id_or_name)
            .or_else(|| entries.values().find(|e| e.kb.name() == id_or_name))
            .cloned()
            .ok_or_else(|| {
                ApiError::NotFound(format!("knowledge base {id_or_name} does not exist"))
            })
    }

    pub fn all(&self) -> Vec<Arc<KbEntry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The embedding models of `[models]`, by name.
    pub fn embedding_model_names(&self) -> Vec<String> {
        self.config
            .models
            .iter()
            .filter(|(_, m)| m.is_embedding())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether `name` is an embedding model in `[models]`.
    pub fn embedding_model_exists(&self, name: &str) -> bool {
        self.config
            .models
            .get(name)
            .is_some_and(|m| m.is_embedding())
    }

    /// Names are unique, and no name is another knowledge base's id, so a name always
    /// means one knowledge base.
    fn check_name_free(&self, name: &str, except_id: Option<&str>) -> ApiResult<()> {
        let taken = self
            .all()
            .into_iter()
            .any(|e| Some(e.kb.id()) != except_id && (e.kb.name() == name || e.kb.id() == name));
        if taken {
            Err(ApiError::Conflict(format!(
                "a knowledge base named {name} already exists"
            )))
        } else {
            Ok(())
        }
    }

    /// Adds a knowledge base made through the API and records it.
    pub fn create(&self, mut kb: KnowledgeBaseConfig) -> ApiResult<Arc<KbEntry>> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        self.check_name_free(kb.name.get_ref(), None)?;
        if let Some(cluster) = &self.cluster {
            if kb.vector_store.is_embedded() {
                kb.vector_store = cluster.default_store(kb.id.get_ref().as_str());
            }
            let created_at = rows::insert(&cluster.db, &kb).map_err(write_error)?;
            return self
                .insert(kb, true, created_at)
                .map_err(ApiError::internal);
        }
        let entry = self
            .insert(kb, true, Utc::now())
            .map_err(ApiError::internal)?;
        self.save().map_err(ApiError::internal)?;
        Ok(entry)
    }

    /// Replaces an API-made knowledge base's configuration (name, description, data
    /// sources), keeping its store and ledger.
    pub fn update(&self, id: &str, kb: KnowledgeBaseConfig) -> ApiResult<Arc<KbEntry>> {
        self.get(id)?; // (in cluster mode, picks up one another replica just created)
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.get_known(id)?;
        if !old.from_api {
            return Err(ApiError::Validation(format!(
                "knowledge base {id} is declared in knowledge-bases.toml; change it there"
            )));
        }
        self.check_name_free(kb.name.get_ref(), Some(id))?;
        if kb.embedding_model.get_ref() != old.kb.config.embedding_model.get_ref() {
            if self.cluster.is_some() {
                return Err(ApiError::Validation(
                    "the embedding model of a knowledge base cannot be changed in cluster mode"
                        .into(),
                ));
            }
            // A switch is planned; the caller starts its build. The serving index stays.
            crate::generations::serving_model(
                &old.kb.dir,
                &old.kb.generation.model,
                kb.embedding_model.get_ref(),
            )
            .map_err(ApiError::internal)?;
        }
        let updated_at = match &self.cluster {
            Some(cluster) => rows::update(&cluster.db, &kb).map_err(write_error)?,
            None => Utc::now(),
        };
        let new = Arc::new(KbEntry {
            kb: Arc::new(old.kb.reconfigured(kb)),
            from_api: true,
            created_at: old.created_at,
            updated_at,
            encoder: old.encoder.clone(),
        });
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), new.clone());
        if self.cluster.is_none() {
            self.save().map_err(ApiError::internal)?;
        }
        Ok(new)
    }

    /// Removes an API-made knowledge base and its data.
    pub fn delete(&self, id: &str) -> ApiResult<Arc<KbEntry>> {
        self.get(id)?;
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let entry = self.get_known(id)?;
        if !entry.from_api {
            return Err(ApiError::Validation(format!(
                "knowledge base {id} is declared in knowledge-bases.toml; remove it there"
            )));
        }
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(entry.kb.id());
        if let Some(cluster) = &self.cluster {
            let own = cluster.default_store(entry.kb.id());
            let table = match &own {
                quarry_core::config::VectorStoreConfig::Pgvector { table, .. }
                    if entry.kb.config.vector_store == own =>
                {
                    Some(table.clone())
                }
                _ => None,
            };
            rows::delete(&cluster.db, entry.kb.id(), table).map_err(ApiError::internal)?;
            self.forget_follower(entry.kb.id());
        } else {
            self.save().map_err(ApiError::internal)?;
        }
        if let Err(e) = std::fs::remove_dir_all(&entry.kb.dir) {
            tracing::warn!(dir = %entry.kb.dir.display(), error = %e, "could not remove the knowledge base's data");
        }
        Ok(entry)
    }

    /// Picks up what other replicas did to knowledge bases made through the API: new ones are
    /// opened (and returned, as `(id, name)`, for the access keys waiting for their names),
    /// changed ones reconfigured, deleted ones dropped.
    pub fn refresh_from_cluster(&self) -> Vec<(String, String)> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        let found = match rows::all(&cluster.db) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the cluster's knowledge bases");
                return Vec::new();
            }
        };
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut new = Vec::new();
        let ids: std::collections::BTreeSet<String> = found
            .iter()
            .map(|r| r.config.id.get_ref().to_string())
            .collect();
        for row in found {
            let id = row.config.id.get_ref().to_string();
            match self.get_known(&id) {
                Ok(entry) if entry.updated_at == row.updated_at || !entry.from_api => {}
                Ok(entry) => {
                    let changed = Arc::new(KbEntry {
                        kb: Arc::new(entry.kb.reconfigured(row.config)),
                        from_api: true,
                        created_at: entry.created_at,
                        updated_at: row.updated_at,
                        encoder: entry.encoder.clone(),
                    });
                    self.entries
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, changed);
                }
                Err(_) => {
                    let name = row.config.name.get_ref().clone();
                    match self.insert(row.config, true, row.created_at) {
                        Ok(_) => new.push((id, name)),
                        Err(e) => {
                            tracing::warn!(knowledge_base = %id, error = %e, "could not open a knowledge base another replica created")
                        }
                    }
                }
            }
        }
        let gone: Vec<String> = self
            .all()
            .into_iter()
            .filter(|e| e.from_api && !ids.contains(e.kb.id()))
            .map(|e| e.kb.id().to_owned())
            .collect();
        for id in gone {
            self.entries
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            self.forget_follower(&id);
        }
        new
    }

    fn forget_follower(&self, id: &str) {
        if let Some(f) = self
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            f.stop();
        }
    }

    /// Whether every lexical index has caught up with what was logged before it opened
    /// (always, on one node).
    pub fn caught_up(&self) -> bool {
        self.followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .all(|f| f.caught_up())
    }

    /// Logged lexical changes this replica has yet to apply, over all knowledge bases.
    pub fn lexical_lag(&self) -> i64 {
        let followers: Vec<Arc<Follower>> = self
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        followers.iter().map(|f| f.lag()).sum()
    }

    fn save(&self) -> anyhow::Result<()> {
        let file = ApiFile {
            knowledge_bases: self
                .all()
                .iter()
                .filter(|e| e.from_api)
                .map(|e| e.kb.config.clone())
                .collect(),
        };
        let path = self.api_file();
        fs_err::create_dir_all(&self.config.server.data_dir)?;
        let tmp = path.with_extension("toml.tmp");
        fs_err::write(&tmp, toml::to_string(&file)?)?;
        fs_err::rename(&tmp, &path)?;
        Ok(())
    }
}

fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::NameTaken(_) => ApiError::Conflict(e.to_string()),
        WriteError::State(e) => ApiError::internal(e),
    }
}
