//! Who is calling: SigV4 signatures checked against the configured access keys, each key
//! limited to some knowledge bases. Without keys the server is open, which it allows only on
//! loopback.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use quarry_core::config::ServerConfig;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult};
use super::grants::Grant;
use super::state::AppState;
use quarry_protocol::sigv4::{
    Credential, SigV4Error, SignedRequest, parse_authorization, precheck, verify,
};

struct Key {
    secret: String,
    buckets: Vec<String>,
}

pub struct Auth {
    keys: HashMap<String, Key>,
    regions: Vec<String>,
    events_key: Option<String>,
    embeddings_key: Option<String>,
    allowed_origins: Vec<String>,
    /// Buckets any API-made data source may read (`[s3] allowed_buckets`).
    allowed_buckets: Vec<String>,
}

/// The caller of one request, as the handlers and the audit log see it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub access_key_id: Option<String>,
    grant: Grant,
}

impl Principal {
    pub fn name(&self) -> &str {
        self.access_key_id.as_deref().unwrap_or("anonymous")
    }

    /// Whether this caller may use the knowledge base with this id.
    pub fn allows(&self, kb_id: &str) -> bool {
        self.grant.allows(kb_id)
    }

    /// Whether this caller may use every knowledge base.
    pub fn is_unrestricted(&self) -> bool {
        matches!(self.grant, Grant::All)
    }

    /// The refusal for a knowledge base this caller may not use, named as the caller named
    /// it: the same whether it exists or not.
    pub fn denied(&self, asked_for: &str) -> ApiError {
        ApiError::AccessDenied(format!(
            "access key {} is not allowed to use knowledge base {asked_for}",
            self.name()
        ))
    }
}

impl Auth {
    /// Reads each key's secret from its environment variable; refuses an open server on a
    /// non-loopback address.
    pub fn from_config(
        server: &ServerConfig,
        allowed_buckets: &[String],
        loopback: bool,
    ) -> anyhow::Result<Self> {
        let mut keys = HashMap::new();
        for k in &server.access_keys {
            let Ok(secret) = std::env::var(&k.secret_env) else {
                bail!(
                    "access key {}: environment variable {} (its secret) is not set",
                    k.id,
                    k.secret_env
                );
            };
            keys.insert(
                k.id.clone(),
                Key {
                    secret,
                    buckets: k.buckets.clone(),
                },
            );
        }
        if keys.is_empty() && !loopback {
            bail!(
                "no [[server.access_keys]] are configured: without authentication Quarry listens only on a loopback address, not {}",
                server.listen
            );
        }
        let key_from = |setting: &str, var: &Option<String>| -> anyhow::Result<Option<String>> {
            match var {
                Some(var) => Ok(Some(std::env::var(var).map_err(|_| {
                    anyhow::anyhow!("{setting}: environment variable {var} is not set")
                })?)),
                None => Ok(None),
            }
        };
        let events_key = key_from("events_api_key_env", &server.events_api_key_env)?;
        let embeddings_key = key_from("embeddings_api_key_env", &server.embeddings_api_key_env)?;
        Ok(Self {
            keys,
            regions: server.regions.clone(),
            events_key,
            embeddings_key,
            allowed_origins: server.allowed_origins.clone(),
            allowed_buckets: allowed_buckets.to_vec(),
        })
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether data sources this caller makes through the API may read `bucket`.
    pub fn may_read_bucket(&self, principal: &Principal, bucket: &str) -> bool {
        let listed = |list: &[String]| list.iter().any(|b| b == "*" || b == bucket);
        listed(&self.allowed_buckets)
            || principal
                .access_key_id
                .as_deref()
                .and_then(|id| self.keys.get(id))
                .is_some_and(|k| listed(&k.buckets))
    }

    /// A request carrying one of the API keys instead of a signature: `POST /events` with
    /// `x-api-key`, `POST /v1/embeddings` with `Authorization: Bearer`. `Some(result)` when it
    /// is such a request; otherwise `None`.
    fn api_key(&self, parts: &Parts) -> Option<ApiResult<Principal>> {
        let (expected, given, name, setting, grant) = match parts.uri.path() {
            "/events" => (
                self.events_key.as_ref()?,
                parts.headers.get("x-api-key")?.as_bytes(),
                "events-api-key",
                "the x-api-key header does not match events_api_key_env",
                Grant::All,
            ),
            "/v1/embeddings" => (
                self.embeddings_key.as_ref()?,
                parts
                    .headers
                    .get("authorization")?
                    .as_bytes()
                    .strip_prefix(b"Bearer ")?,
                "embeddings-api-key",
                "the bearer token does not match embeddings_api_key_env",
                Grant::none(),
            ),
            _ => return None,
        };
        let same = given.len() == expected.len()
            && given
                .iter()
                .zip(expected.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0;
        Some(if same {
            Ok(Principal {
                access_key_id: Some(name.into()),
                grant,
            })
        } else {
            Err(ApiError::AccessDenied(setting.into()))
        })
    }

    /// Everything about a signed request that can be checked before its body is read: the
    /// header's form, the key, the region, the date and the signed headers.
    fn before_body<'k>(
        &'k self,
        signed: &SignedRequest<'_>,
        authorization: Option<&str>,
    ) -> ApiResult<(Credential, &'k Key)> {
        let denied = |e: SigV4Error| ApiError::AccessDenied(e.to_string());
        let credential =
            parse_authorization(authorization.ok_or(SigV4Error::Missing).map_err(denied)?)
                .map_err(denied)?;
        let key = self.keys.get(&credential.access_key_id).ok_or_else(|| {
            ApiError::AccessDenied(format!("unknown access key {}", credential.access_key_id))
        })?;
        if !self.regions.is_empty() && !self.regions.contains(&credential.region) {
            return Err(ApiError::AccessDenied(format!(
                "region {} is not served here",
                credential.region
            )));
        }
        precheck(signed, &credential, Utc::now()).map_err(denied)?;
        Ok((credential, key))
    }

    /// In open mode (no keys, loopback only) a browser could still be made to call the API:
    /// a page elsewhere posting to 127.0.0.1, or a name of the attacker's rebound to
    /// 127.0.0.1. Only loopback `Host` names are served, and only same-origin or listed
    /// `Origin`s.
    pub fn check_open_request(&self, parts: &Parts) -> ApiResult<()> {
        let host = parts
            .headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_loopback_host(host) {
            return Err(ApiError::AccessDenied(format!(
                "Host {host:?} is not a loopback name or address: without access keys Quarry serves only requests to 127.0.0.1, [::1] or localhost"
            )));
        }
        if let Some(origin) = parts.headers.get("origin") {
            let origin = origin.to_str().unwrap_or("");
            let same = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host));
            if !same && !self.allowed_origins.iter().any(|o| o == origin) {
                return Err(ApiError::AccessDenied(format!(
                    "Origin {origin:?} is not allowed: list it in [server] allowed_origins to let its pages call this server"
                )));
            }
        }
        Ok(())
    }
}

/// `localhost`, `*.localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) if tail.is_empty() || tail.starts_with(':') => ip,
            _ => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reads a body of at most `limit` bytes within `timeout`, hashing it as it arrives.
async fn read_body(body: Body, limit: usize, timeout: Duration) -> ApiResult<(Bytes, String)> {
    use tokio_stream::StreamExt;
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buffer = Vec::new();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::Validation(format!("cannot read the request body: {e}")))?;
            if buffer.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            hasher.update(&chunk);
            buffer.extend_from_slice(&chunk);
        }
        Ok((Bytes::from(buffer), hex::encode(hasher.finalize())))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::RequestTimeout(format!(
            "the request body did not arrive within {} s",
            timeout.as_secs()
        ))
    })?
}

fn too_large(limit: usize) -> ApiError {
    ApiError::Validation(format!("request body is over the {limit}-byte limit"))
}

/// Middleware: checks what it can of the signature before the body, reads the body (within
/// the size and time limits, hashing it as it streams), verifies the signature over it,
/// and hands the request on with its `Principal`.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    match authenticated(&state, req).await {
        Ok(req) => {
            let principal = req.extensions().get::<Principal>().cloned();
            let mut response = next.run(req).await;
            if let Some(p) = principal {
                response.extensions_mut().insert(p);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Middleware over every path in open mode (`/metrics` and unknown paths too): only loopback
/// `Host` names and same-origin or listed `Origin`s.
pub async fn guard_open_mode(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if state.auth.is_open() {
        let (parts, body) = req.into_parts();
        if let Err(e) = state.auth.check_open_request(&parts) {
            return e.into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(req).await
}

async fn authenticated(state: &AppState, req: Request) -> ApiResult<Request> {
    let (parts, body) = req.into_parts();
    let limits = &state.registry.config.server;
    let limit = limits.max_request_bytes;
    let timeout = Duration::from_secs(limits.limits.body_timeout_secs);
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let auth = &state.auth;
    let (principal, bytes) = if let Some(by_key) = auth.api_key(&parts) {
        let principal = by_key?;
        (principal, read_body(body, limit, timeout).await?.0)
    } else if auth.is_open() {
        // (`guard_open_mode` has checked Host and Origin for every path)
        let principal = Principal {
            access_key_id: None,
            grant: Grant::All,
        };
        (principal, read_body(body, limit, timeout).await?.0)
    } else {
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &headers,
        };
        let authorization = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let (credential, key) = auth.before_body(&signed, authorization)?;
        let (bytes, hash) = read_body(body, limit, timeout).await?;
        verify(&signed, &hash, &credential, &key.secret, Utc::now())
            .map_err(|e| ApiError::AccessDenied(e.to_string()))?;
        let principal = Principal {
            grant: state.grants.of(&credential.access_key_id),
            access_key_id: Some(credential.access_key_id),
        };
        (principal, bytes)
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(principal);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:80",
            "LOCALHOST",
            "[::1]:8080",
            "a.localhost:1",
            "127.9.9.9",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.com:8080",
            "evil.com",
            "",
            "10.0.0.1:8080",
            "[::2]:80",
            "localhost.evil.com",
            "[::1]x",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
