use std::path::PathBuf;

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model folder {0} not found")]
    NotFound(PathBuf),
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("weight {name}: {reason}")]
    BadWeight { name: String, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
