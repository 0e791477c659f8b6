//! Request bodies: JSON parsed into typed requests, with Bedrock's ValidationException
//! naming the field when they do not fit.

use axum::body::Bytes;
use quarry_protocol::page_token::{offset_token, parse_offset_token};
use serde::de::DeserializeOwned;

use crate::server::error::{ApiError, ApiResult};

///
/// Every request struct denies unknown fields, so a member Quarry does not honour (whether
/// Bedrock has it or not) is refused by name rather than ignored.
pub fn json<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let text: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    let de = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let path = (path != "." && !path.is_empty()).then_some(path);
        match unknown_member(&inner.to_string()) {
            Some(member) => ApiError::Validation(format!(
                "{}: Quarry does not support this member",
                member_path(path.as_deref(), member)
            )),
            None => match path {
                None => ApiError::Validation(format!("request body: {inner}")),
                Some(path) => ApiError::Validation(format!("{path}: {inner}")),
            },
        }
    })
}

/// The field serde's "unknown field `x`, expected ..." names.
fn unknown_member(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// `parent.member`, whether or not serde's path already ends with the member.
fn member_path(path: Option<&str>, member: &str) -> String {
    match path {
        None => member.to_owned(),
        Some(p) if p == member || p.ends_with(&format!(".{member}")) => p.to_owned(),
        Some(p) => format!("{p}.{member}"),
    }
}

/// A page of `items` after `next_token`, and the token of the next page.
pub fn page<T: Clone>(
    items: &[T],
    max_results: Option<usize>,
    next_token: Option<&str>,
) -> ApiResult<(Vec<T>, Option<String>)> {
    let start = match next_token {
        None => 0,
        Some(t) => parse_offset_token(t, items.len()).ok_or_else(|| {
            ApiError::Validation(format!("nextToken {t:?} is not one this server issued"))
        })?,
    };
    let size = max_results.unwrap_or(1000);
    if !(1..=1000).contains(&size) {
        return Err(ApiError::Validation(format!(
            "maxResults must be between 1 and 1000, got {size}"
        )));
    }
    let end = start.saturating_add(size).min(items.len());
    let page = items
        .get(start.min(items.len())..end)
        .unwrap_or_default()
        .to_vec();
    let next = (end < items.len()).then(|| offset_token(end));
    Ok((page, next))
}

/// A list response: `{key: [page of items], "nextToken": ...}`.
pub fn paged(
    key: &str,
    items: &[serde_json::Value],
    max_results: Option<usize>,
    next_token: Option<&str>,
) -> ApiResult<serde_json::Value> {
    let (items, next) = page(items, max_results, next_token)?;
    let mut out = serde_json::json!({ key: items });
    if let Some(n) = next {
        out["nextToken"] = serde_json::json!(n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        inner: Vec<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        #[serde(default)]
        known: Option<u32>,
    }

    /// A member nobody honours is refused with its whole path, at any depth.
    #[test]
    fn unknown_members_are_named_with_their_path() {
        let message = |body: &str| match json::<Outer>(&Bytes::from(body.to_owned())) {
            Err(ApiError::Validation(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            message(r#"{"inner": [], "clientToken": "x"}"#),
            "clientToken: Quarry does not support this member"
        );
        assert_eq!(
            message(r#"{"inner": [{"known": 1}, {"other": 2}]}"#),
            "inner[1].other: Quarry does not support this member"
        );
        assert!(
            message(r#"{"inner": [{"known": "x"}]}"#).starts_with("inner[0].known: invalid type")
        );
    }

    /// `offset-18446744073709551615` wrapped `start + size` (and panicked in debug builds).
    #[test]
    fn list_tokens_are_checked_numbers() {
        let items: Vec<u32> = (0..5).collect();
        let (first, next) = page(&items, Some(2), None).unwrap();
        assert_eq!(first, vec![0, 1]);
        let (second, _) = page(&items, Some(2), next.as_deref()).unwrap();
        assert_eq!(second, vec![2, 3]);
        for bad in [
            "offset-18446744073709551615",
            "offset-99999999999999999999999",
            "offset-6",
            "offset--1",
            "offset-+1",
            "offset-",
            "nonsense",
        ] {
            assert!(
                matches!(
                    page(&items, Some(2), Some(bad)),
                    Err(ApiError::Validation(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            page(&items, Some(usize::MAX), None),
            Err(ApiError::Validation(_))
        ));
    }
}
