//! Finding a model's files (a local folder, or the Hugging Face hub cache) and reading the
//! small JSON files that say how to run it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::LoadError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
}

/// What a sentence-transformers model folder says about itself.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Longest input in word pieces, special tokens included.
    pub max_seq_length: usize,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

impl ModelFiles {
    /// Locates a model: `path` if given, else `hub` (e.g.
    /// `sentence-transformers/all-MiniLM-L6-v2`) in `$HF_HUB_CACHE`, `$HF_HOME/hub` or
    /// `~/.cache/huggingface/hub`.
    pub fn locate(path: Option<&Path>, hub: Option<&str>) -> Result<Self, LoadError> {
        let dir = match (path, hub) {
            (Some(p), _) if p.join("config.json").is_file() => p.to_path_buf(),
            (_, Some(id)) => hub_snapshot(id).ok_or_else(|| {
                LoadError::NotFound(
                    path.map(Path::to_path_buf)
                        .unwrap_or_else(|| PathBuf::from(format!("hub:{id}"))),
                )
            })?,
            (Some(p), None) => return Err(LoadError::NotFound(p.to_path_buf())),
            (None, None) => return Err(LoadError::NotFound(PathBuf::new())),
        };
        Self::read(dir)
    }

    fn read(dir: PathBuf) -> Result<Self, LoadError> {
        let max_seq_length =
            read_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))?
                .and_then(|c| c.max_seq_length)
                .unwrap_or(512);
        let modules = read_json::<Vec<Module>>(&dir.join("modules.json"))?.unwrap_or_default();
        let normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
        let pooling_dir = modules
            .iter()
            .find(|m| m.kind.ends_with(".Pooling"))
            .map(|m| dir.join(&m.path))
            .unwrap_or_else(|| dir.join("1_Pooling"));
        let pooling = match read_json::<PoolingConfig>(&pooling_dir.join("config.json"))? {
            Some(p) if p.pooling_mode_cls_token && !p.pooling_mode_mean_tokens => Pooling::Cls,
            _ => Pooling::Mean,
        };
        Ok(Self {
            dir,
            pooling,
            normalize,
            max_seq_length,
        })
    }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, LoadError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LoadError::BadFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LoadError::BadFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn hub_snapshot(id: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
        })?;
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let reference = std::fs::read_to_string(repo.join("refs/main")).ok();
    let snapshots = repo.join("snapshots");
    let dir = match reference {
        Some(r) => snapshots.join(r.trim()),
        None => std::fs::read_dir(&snapshots).ok()?.flatten().next()?.path(),
    };
    dir.join("config.json").is_file().then_some(dir)
}
