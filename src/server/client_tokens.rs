//! Bedrock's `clientToken`: a Create* or StartIngestionJob sent again with the same token and
//! the same body answers with the resource the first one made; the same token with another
//! body is a ConflictException. Tokens are kept in the data directory (one node) or in the
//! cluster's database (every replica sees every token).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use quarry_state::PgConnection;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult};

/// What a token was first used for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The request body's digest (without the token itself).
    pub digest: String,
    /// The id of the resource the request made.
    pub resource: String,
}

pub trait ClientTokens: Send + Sync {
    fn get(&self, scope: &str, token: &str) -> anyhow::Result<Option<Remembered>>;
    /// Remembers a token's resource (replacing what it named before).
    fn put(&self, scope: &str, token: &str, remembered: &Remembered) -> anyhow::Result<()>;
}

/// `<data_dir>/client-tokens.json`, rewritten whole (atomically) on each new token.
pub struct FileTokens {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileTokens {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    fn read(&self) -> anyhow::Result<BTreeMap<String, Remembered>> {
        if !self.path.is_file() {
            return Ok(BTreeMap::new());
        }
        let text = fs_err::read_to_string(&self.path)?;
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", self.path.display()))
    }
}

fn key(scope: &str, token: &str) -> String {
    format!("{scope} {token}")
}

impl ClientTokens for FileTokens {
    fn get(&self, scope: &str, token: &str) -> anyhow::Result<Option<Remembered>> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.read()?.remove(&key(scope, token)))
    }

    fn put(&self, scope: &str, token: &str, remembered: &Remembered) -> anyhow::Result<()> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.read()?;
        all.insert(key(scope, token), remembered.clone());
        let dir = self
            .path
            .parent()
            .context("client-token file has no folder")?;
        fs_err::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut file, &all)?;
        file.as_file().sync_all()?;
        file.persist(&self.path)?;
        Ok(())
    }
}

/// The cluster's `quarry_client_tokens` table.
pub struct PgTokens(pub Arc<PgConnection>);

impl ClientTokens for PgTokens {
    fn get(&self, scope: &str, token: &str) -> anyhow::Result<Option<Remembered>> {
        let (scope, token) = (scope.to_owned(), token.to_owned());
        Ok(self.0.run(move |c| {
            Ok(c.query_opt(
                "SELECT digest, resource FROM quarry_client_tokens WHERE scope = $1 AND token = $2",
                &[&scope, &token],
            )?
            .map(|r| Remembered {
                digest: r.get(0),
                resource: r.get(1),
            }))
        })?)
    }

    fn put(&self, scope: &str, token: &str, remembered: &Remembered) -> anyhow::Result<()> {
        let (scope, token, r) = (scope.to_owned(), token.to_owned(), remembered.clone());
        Ok(self.0.run(move |c| {
            c.execute(
                "INSERT INTO quarry_client_tokens (scope, token, digest, resource)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (scope, token) DO UPDATE
                 SET digest = EXCLUDED.digest, resource = EXCLUDED.resource",
                &[&scope, &token, &r.digest, &r.resource],
            )?;
            Ok(())
        })?)
    }
}

/// A request's token, checked against the tokens seen.
pub struct Idempotency {
    scope: String,
    token: Option<String>,
    digest: String,
}

impl Idempotency {
    /// `scope` is what the token is unique within (the operation and its parent resource);
    /// `body` the request as sent.
    pub fn new(scope: String, token: Option<String>, body: &[u8]) -> ApiResult<Self> {
        if let Some(t) = &token
            && !(33..=256).contains(&t.len())
        {
            return Err(ApiError::Validation(format!(
                "clientToken must be 33 to 256 characters, got {}",
                t.len()
            )));
        }
        let mut value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Some(m) = value.as_object_mut() {
            m.remove("clientToken");
        }
        // serde_json's maps are sorted, so the same members in any order give one digest.
        let digest = hex::encode(Sha256::digest(value.to_string().as_bytes()));
        Ok(Self {
            scope,
            token,
            digest,
        })
    }

    /// The resource an earlier request with this token and body made, if any; a conflict if
    /// the token came with another body.
    pub fn earlier(&self, tokens: &dyn ClientTokens) -> ApiResult<Option<String>> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        match tokens.get(&self.scope, token).map_err(ApiError::internal)? {
            None => Ok(None),
            Some(r) if r.digest == self.digest => Ok(Some(r.resource)),
            Some(_) => Err(ApiError::Conflict(format!(
                "clientToken {token} was used before with a different request"
            ))),
        }
    }

    /// Remembers that this request made `resource`.
    pub fn made(&self, tokens: &dyn ClientTokens, resource: &str) -> ApiResult<()> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let remembered = Remembered {
            digest: self.digest.clone(),
            resource: resource.to_owned(),
        };
        tokens
            .put(&self.scope, token, &remembered)
            .map_err(ApiError::internal)
    }
}

/// The suite every [`ClientTokens`] passes.
#[cfg(test)]
pub mod suite {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef-1";

    pub fn same_body_same_resource_other_body_conflict(tokens: &dyn ClientTokens) {
        let scope = format!("CreateKnowledgeBase {}", rand_suffix());
        let first = Idempotency::new(
            scope.clone(),
            Some(TOKEN.into()),
            br#"{"name":"a","clientToken":"x"}"#,
        )
        .unwrap();
        assert_eq!(first.earlier(tokens).unwrap(), None);
        first.made(tokens, "KB1").unwrap();
        // The same members in another order, and another token value inside the body.
        let again = Idempotency::new(
            scope.clone(),
            Some(TOKEN.into()),
            br#"{"clientToken":"y","name":"a"}"#,
        )
        .unwrap();
        assert_eq!(again.earlier(tokens).unwrap().as_deref(), Some("KB1"));
        let other =
            Idempotency::new(scope.clone(), Some(TOKEN.into()), br#"{"name":"b"}"#).unwrap();
        assert!(matches!(other.earlier(tokens), Err(ApiError::Conflict(_))));
        // Another scope does not see the token.
        let elsewhere = Idempotency::new(
            format!("{scope}-other"),
            Some(TOKEN.into()),
            br#"{"name":"b"}"#,
        )
        .unwrap();
        assert_eq!(elsewhere.earlier(tokens).unwrap(), None);
        // No token: never remembered.
        let none = Idempotency::new(scope, None, br#"{"name":"a"}"#).unwrap();
        assert_eq!(none.earlier(tokens).unwrap(), None);
    }

    pub fn rand_suffix() -> String {
        quarry_core::ids::ResourceId::random().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_tokens_pass_the_suite_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client-tokens.json");
        suite::same_body_same_resource_other_body_conflict(&FileTokens::new(path.clone()));
        let reopened = FileTokens::new(path);
        let all = reopened.read().unwrap();
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn cluster_tokens_pass_the_suite() {
        let url = std::env::var("QUARRY_TEST_PG_URL").expect(
            "QUARRY_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL",
        );
        let db = PgConnection::connect(&url).unwrap();
        db.run(quarry_state::schema::migrate).unwrap();
        suite::same_body_same_resource_other_body_conflict(&PgTokens(Arc::new(db)));
    }

    #[test]
    fn short_tokens_are_refused() {
        assert!(matches!(
            Idempotency::new("s".into(), Some("short".into()), b"{}"),
            Err(ApiError::Validation(_))
        ));
    }
}
