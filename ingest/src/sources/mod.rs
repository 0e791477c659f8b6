//! Where documents come from. A source lists its objects (documents and `.metadata.json`
//! sidecars alike) with a version that changes when the object does, and fetches one.

mod local;
#[cfg(feature = "s3")]
mod s3;

pub use local::LocalFolder;
#[cfg(feature = "s3")]
pub use s3::{S3Bucket, S3Location};

/// One object of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceObject {
    /// Path within the source, `/`-separated (a relative path, or an S3 key).
    pub key: String,
    pub size: u64,
    /// Changes whenever the object does (modification time, or an ETag).
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source as a whole cannot be read: the job fails.
    #[error("data source unavailable: {0}")]
    Unavailable(String),
    /// One object cannot be read: that document fails.
    #[error("{0}")]
    Object(String),
}

pub trait Source: Send + Sync {
    fn list(&self) -> Result<Vec<SourceObject>, SourceError>;
    fn fetch(&self, key: &str) -> Result<Vec<u8>, SourceError>;
    /// One object's current listing entry, or `None` when it does not exist (now).
    fn stat(&self, key: &str) -> Result<Option<SourceObject>, SourceError>;
    /// The document's URI, as `x-amz-bedrock-kb-source-uri` reports it.
    fn uri(&self, key: &str) -> String;
}

/// The source of a custom data source: it has no objects of its own (its documents arrive by
/// direct ingestion), so fetching one is an error.
pub struct NoSource;

impl Source for NoSource {
    fn list(&self) -> Result<Vec<SourceObject>, SourceError> {
        Ok(Vec::new())
    }
    fn fetch(&self, key: &str) -> Result<Vec<u8>, SourceError> {
        Err(SourceError::Object(format!(
            "{key}: a custom data source has no objects to read"
        )))
    }
    fn stat(&self, _key: &str) -> Result<Option<SourceObject>, SourceError> {
        Ok(None)
    }
    fn uri(&self, key: &str) -> String {
        key.to_owned()
    }
}
