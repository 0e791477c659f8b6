//! An S3 bucket (or any S3-compatible server): ListObjectsV2 with pagination under each
//! inclusion prefix, versions by ETag, objects fetched with GetObject. Credentials come from
//! the standard AWS chain (environment, profile, instance role).
//!
//! The AWS SDK is async; this source runs it on a small runtime of its own, so callers stay
//! synchronous (it must not be used from inside an async task).

use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::DisplayErrorContext;

use super::{Source, SourceError, SourceObject};

pub struct S3Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefixes: Vec<String>,
    runtime: tokio::runtime::Runtime,
}

/// Where to reach the bucket.
#[derive(Debug, Clone, Default)]
pub struct S3Location {
    pub bucket: String,
    pub prefixes: Vec<String>,
    /// An S3-compatible endpoint; path-style addressing is used with one.
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

impl S3Bucket {
    pub fn connect(location: S3Location) -> Result<Self, SourceError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SourceError::Unavailable(format!("cannot start the S3 client: {e}")))?;
        let shared = runtime.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(region) = &location.region {
                loader = loader.region(Region::new(region.clone()));
            }
            loader.load().await
        });
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        if let Some(endpoint) = &location.endpoint_url {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: location.bucket,
            prefixes: location.prefixes,
            runtime,
        })
    }
}

impl Source for S3Bucket {
    fn list(&self) -> Result<Vec<SourceObject>, SourceError> {
        let prefixes = if self.prefixes.is_empty() {
            vec![String::new()]
        } else {
            self.prefixes.clone()
        };
        let mut out = Vec::new();
        for prefix in prefixes {
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = self.runtime.block_on(pages.next()) {
                let page = page.map_err(|e| {
                    SourceError::Unavailable(format!(
                        "listing s3://{}: {}",
                        self.bucket,
                        DisplayErrorContext(&e)
                    ))
                })?;
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    if key.ends_with('/') {
                        continue;
                    }
                    let etag = object
                        .e_tag()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_owned();
                    let modified = object
                        .last_modified()
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    out.push(SourceObject {
                        key: key.to_owned(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                        // Some S3-compatible servers list no ETags; the modification time
                        // then stands in.
                        version: if etag.is_empty() { modified } else { etag },
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }

    fn fetch(&self, key: &str) -> Result<Vec<u8>, SourceError> {
        self.runtime.block_on(async {
            let object = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| {
                    SourceError::Object(format!("GetObject: {}", DisplayErrorContext(&e)))
                })?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| SourceError::Object(format!("reading the object: {e}")))?;
            Ok(bytes.into_bytes().to_vec())
        })
    }

    fn stat(&self, key: &str) -> Result<Option<SourceObject>, SourceError> {
        self.runtime.block_on(async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(head) => Ok(Some(SourceObject {
                    key: key.to_owned(),
                    size: head.content_length().unwrap_or(0).max(0) as u64,
                    version: head
                        .e_tag()
                        .map(|e| e.trim_matches('"').to_owned())
                        .filter(|e| !e.is_empty())
                        .or_else(|| head.last_modified().map(|t| t.to_string()))
                        .unwrap_or_default(),
                })),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                Err(e) => Err(SourceError::Unavailable(format!(
                    "HeadObject s3://{}/{key}: {}",
                    self.bucket,
                    DisplayErrorContext(&e)
                ))),
            }
        })
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}
