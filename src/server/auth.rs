//! Who is calling: SigV4 signatures checked against the configured access keys, each key
//! limited to some knowledge bases. Without keys the server is open, which it allows only on
//! loopback.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::bail;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use quarry_core::config::ServerConfig;

use super::error::{ApiError, ApiResult};
use super::sigv4::{SignedRequest, parse_authorization, verify};
use super::state::AppState;

struct Key {
    secret: String,
    knowledge_bases: Vec<String>,
}

pub struct Auth {
    keys: HashMap<String, Key>,
    regions: Vec<String>,
    events_key: Option<String>,
}

/// The caller of one request, as the handlers and the audit log see it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub access_key_id: Option<String>,
    /// Ids or names it may use; `None` for all.
    knowledge_bases: Option<Vec<String>>,
}

impl Principal {
    pub fn name(&self) -> &str {
        self.access_key_id.as_deref().unwrap_or("anonymous")
    }

    /// Refuses a knowledge base this caller is not granted.
    pub fn check(&self, kb_id: &str, kb_name: &str) -> ApiResult<()> {
        match &self.knowledge_bases {
            Some(granted) if !granted.iter().any(|g| g == kb_id || g == kb_name) => {
                Err(ApiError::AccessDenied(format!(
                    "access key {} is not allowed to use knowledge base {kb_id}",
                    self.name()
                )))
            }
            _ => Ok(()),
        }
    }
}

impl Auth {
    /// Reads each key's secret from its environment variable; refuses an open server on a
    /// non-loopback address.
    pub fn from_config(server: &ServerConfig, loopback: bool) -> anyhow::Result<Self> {
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
                    knowledge_bases: k.knowledge_bases.clone(),
                },
            );
        }
        if keys.is_empty() && !loopback {
            bail!(
                "no [[server.access_keys]] are configured: without authentication Quarry listens only on a loopback address, not {}",
                server.listen
            );
        }
        let events_key = match &server.events_api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                anyhow::anyhow!("events_api_key_env: environment variable {var} is not set")
            })?),
            None => None,
        };
        Ok(Self {
            keys,
            regions: server.regions.clone(),
            events_key,
        })
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    fn principal(
        &self,
        req: &SignedRequest<'_>,
        authorization: Option<&str>,
    ) -> ApiResult<Principal> {
        if req.path == "/events"
            && let Some(expected) = &self.events_key
            && let Some((_, given)) = req
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-api-key"))
        {
            let same = given.len() == expected.len()
                && given
                    .bytes()
                    .zip(expected.bytes())
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                    == 0;
            return if same {
                Ok(Principal {
                    access_key_id: Some("events-api-key".into()),
                    knowledge_bases: None,
                })
            } else {
                Err(ApiError::AccessDenied(
                    "the x-api-key header does not match events_api_key_env".into(),
                ))
            };
        }
        if self.is_open() {
            return Ok(Principal {
                access_key_id: None,
                knowledge_bases: None,
            });
        }
        let denied = |e: super::sigv4::SigV4Error| ApiError::AccessDenied(e.to_string());
        let credential = parse_authorization(
            authorization
                .ok_or(super::sigv4::SigV4Error::Missing)
                .map_err(denied)?,
        )
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
        verify(req, &credential, &key.secret, Utc::now()).map_err(denied)?;
        let all = key.knowledge_bases.iter().any(|k| k == "*");
        Ok(Principal {
            access_key_id: Some(credential.access_key_id),
            knowledge_bases: (!all).then(|| key.knowledge_bases.clone()),
        })
    }
}

/// Middleware: buffers the body (within the size limit), verifies the signature, and hands
/// the request on with its `Principal`.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let limit = state.registry.config.server.max_request_bytes;
    let bytes = match to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::Validation(format!("request body is over the {limit}-byte limit"))
                .into_response();
        }
    };
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
        body: &bytes,
    };
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    match state.auth.principal(&signed, authorization) {
        Ok(principal) => {
            let mut req = Request::from_parts(parts, Body::from(bytes));
            req.extensions_mut().insert(principal.clone());
            let mut response = next.run(req).await;
            response.extensions_mut().insert(principal);
            response
        }
        Err(e) => e.into_response(),
    }
}
