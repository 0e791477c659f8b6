//! TagResource, UntagResource and ListTagsForResource (`/tags/{resourceArn}`), on
//! knowledge-base ARNs (`arn:aws:bedrock:REGION:ACCOUNT:knowledge-base/ID`) and data-source
//! ARNs (the same, then `/data-source/ID`). Tags are kept with the knowledge base.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::json;
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

const MAX_TAGS: usize = 50;

/// Bedrock's rules for a tag map: at most 50; keys 1 to 128 characters, values up to 256, of
/// letters, digits, spaces and `._:/=+@-`; keys starting `aws:` are AWS's.
pub fn check(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags, got {}", tags.len()));
    }
    let allowed = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "._:/=+@-".contains(c))
    };
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || !allowed(k) {
            return Err(format!(
                "tag key {k:?} must be 1 to 128 letters, digits, spaces or ._:/=+@-"
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(format!("tag key {k:?}: keys starting aws: are reserved"));
        }
        if v.chars().count() > 256 || !allowed(v) {
            return Err(format!(
                "tag value of {k:?} must be up to 256 letters, digits, spaces or ._:/=+@-"
            ));
        }
    }
    Ok(())
}

/// What an ARN names: a knowledge base, or one of its data sources.
struct Resource {
    kb: String,
    ds: Option<String>,
}

fn resource(arn: &str) -> ApiResult<Resource> {
    let invalid = || {
        ApiError::Validation(format!(
            "resourceArn {arn:?} must be arn:aws:bedrock:REGION:ACCOUNT:knowledge-base/ID[/data-source/ID]"
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, service, _, _, rest] = parts[..] else {
        return Err(invalid());
    };
    if parts[0] != "arn" || service != "bedrock" {
        return Err(invalid());
    }
    match rest.split('/').collect::<Vec<_>>()[..] {
        ["knowledge-base", kb] if !kb.is_empty() => Ok(Resource {
            kb: kb.to_owned(),
            ds: None,
        }),
        ["knowledge-base", kb, "data-source", ds] if !kb.is_empty() && !ds.is_empty() => {
            Ok(Resource {
                kb: kb.to_owned(),
                ds: Some(ds.to_owned()),
            })
        }
        _ => Err(invalid()),
    }
}

/// A change to a resource's tags.
type Change = Box<dyn FnOnce(&mut BTreeMap<String, String>) + Send>;

/// Reads a resource's tags, or changes them (API-made knowledge bases only: the tags of one
/// declared in knowledge-bases.toml are set there).
async fn with_tags(
    state: Arc<AppState>,
    principal: &Principal,
    arn: &str,
    change: Option<Change>,
) -> ApiResult<BTreeMap<String, String>> {
    let r = resource(arn)?;
    let entry = state.knowledge_base(principal, &r.kb)?;
    if entry.kb.id() != r.kb {
        // Tags name resources by id, never by name.
        return Err(ApiError::NotFound(format!("no knowledge base {}", r.kb)));
    }
    let current = match &r.ds {
        None => entry.kb.config.tags.clone(),
        Some(ds) => entry.data_source(ds)?.tags.clone(),
    };
    let Some(change) = change else {
        return Ok(current);
    };
    if !entry.from_api {
        return Err(ApiError::Validation(format!(
            "knowledge base {} is declared in knowledge-bases.toml; set its tags there",
            entry.kb.id()
        )));
    }
    let mut tags = current;
    change(&mut tags);
    check(&tags).map_err(|m| ApiError::Validation(format!("tags: {m}")))?;
    let mut config = entry.kb.config.clone();
    match &r.ds {
        None => config.tags = tags.clone(),
        Some(ds) => {
            for d in &mut config.data_sources {
                if d.id.get_ref().as_str() == ds {
                    d.tags = tags.clone();
                }
            }
        }
    }
    let id = entry.kb.id().to_owned();
    tokio::task::spawn_blocking(move || state.registry.update(&id, config))
        .await
        .map_err(ApiError::internal)??;
    Ok(tags)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagRequest {
    tags: BTreeMap<String, String>,
}

pub async fn tag(
    State(state): State<Arc<AppState>>,
    Path(arn): Path<String>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: TagRequest = json(&body)?;
    let add = req.tags;
    with_tags(
        state,
        &principal,
        &arn,
        Some(Box::new(move |tags| tags.extend(add))),
    )
    .await?;
    Ok(Json(json!({})))
}

pub async fn untag(
    State(state): State<Arc<AppState>>,
    Path(arn): Path<String>,
    Extension(principal): Extension<Principal>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut keys = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name != "tagKeys" {
            return Err(ApiError::Validation(format!(
                "{name}: Quarry does not support this member"
            )));
        }
        keys.push(value.into_owned());
    }
    if keys.is_empty() {
        return Err(ApiError::Validation("tagKeys is required".into()));
    }
    with_tags(
        state,
        &principal,
        &arn,
        Some(Box::new(move |tags| {
            for k in &keys {
                tags.remove(k);
            }
        })),
    )
    .await?;
    Ok(Json(json!({})))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(arn): Path<String>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Value>> {
    let tags = with_tags(state, &principal, &arn, None).await?;
    Ok(Json(json!({ "tags": tags })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_knowledge_bases_and_data_sources() {
        let kb =
            resource("arn:aws:bedrock:us-east-1:123456789012:knowledge-base/KB12345678").unwrap();
        assert_eq!((kb.kb.as_str(), kb.ds), ("KB12345678", None));
        let ds =
            resource("arn:aws:bedrock:eu-west-1:1:knowledge-base/KB1/data-source/DS1").unwrap();
        assert_eq!((ds.kb.as_str(), ds.ds.as_deref()), ("KB1", Some("DS1")));
        for bad in [
            "KB1",
            "arn:aws:s3:::bucket",
            "arn:aws:bedrock:us-east-1:1:agent/A1",
            "arn:aws:bedrock:us-east-1:1:knowledge-base/",
            "arn:aws:bedrock:us-east-1:1:knowledge-base/KB1/data-source/",
        ] {
            assert!(resource(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_rules_are_bedrocks() {
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(check(&one("team", "search-platform")).is_ok());
        assert!(check(&one("", "x")).is_err());
        assert!(check(&one("aws:owner", "x")).is_err());
        assert!(check(&one("a", &"v".repeat(257))).is_err());
        assert!(check(&one("bad{key}", "x")).is_err());
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check(&many).is_err());
    }
}
