//! Bedrock's retrieval filter (`RetrievalFilter`): parsing from its JSON shape and evaluation
//! against a chunk's metadata, with Bedrock's semantics. Every vector store either evaluates
//! filters through [`Filter::matches`] or translates them with the same meaning.

use std::borrow::Cow;

use serde_json::Value;

use crate::metadata::{Metadata, MetadataValue};

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Equals(String, MetadataValue),
    NotEquals(String, MetadataValue),
    GreaterThan(String, f64),
    GreaterThanOrEquals(String, f64),
    LessThan(String, f64),
    LessThanOrEquals(String, f64),
    In(String, Vec<MetadataValue>),
    NotIn(String, Vec<MetadataValue>),
    StartsWith(String, String),
    ListContains(String, MetadataValue),
    StringContains(String, String),
    AndAll(Vec<Filter>),
    OrAll(Vec<Filter>),
}

/// Checks the nesting and the number of terms before anything is built.
fn measure(value: &Value, path: &str, depth: usize, terms: &mut usize) -> Result<(), FilterError> {
    let Some(object) = value.as_object() else {
        return Ok(()); // parse says what is wrong
    };
    for (op, body) in object {
        *terms += 1;
        let path = format!("{path}.{op}");
        match (op.as_str(), body) {
            ("andAll" | "orAll", Value::Array(items)) => {
                if depth + 1 > MAX_FILTER_DEPTH {
                    return Err(err(
                        &path,
                        format!("groups may nest at most {MAX_FILTER_DEPTH} deep"),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    measure(item, &format!("{path}[{i}]"), depth + 1, terms)?;
                }
            }
            (_, body) => {
                if let Some(Value::Array(values)) = body.get("value") {
                    *terms += values.len();
                }
            }
        }
        if *terms > MAX_FILTER_TERMS {
            return Err(err(
                &path,
                format!(
                    "the filter has more than {MAX_FILTER_TERMS} terms (operators and list values)"
                ),
            ));
        }
    }
    Ok(())
}

/// A filter that does not have Bedrock's shape; the message names the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_owned(),
        message: message.into(),
    }
}

const OPERATORS: &[&str] = &[
    "equals",
    "notEquals",
    "greaterThan",
    "greaterThanOrEquals",
    "lessThan",
    "lessThanOrEquals",
    "in",
    "notIn",
    "startsWith",
    "listContains",
    "stringContains",
    "andAll",
    "orAll",
];

/// Most `andAll`/`orAll` groups nested in one another.
pub const MAX_FILTER_DEPTH: usize = 5;
/// Most terms in one filter: every operator counts one, and so does every value of a list.
/// Each term is evaluated against every candidate chunk, so this bounds a request's cost.
pub const MAX_FILTER_TERMS: usize = 100;

impl Filter {
    /// Parses Bedrock's JSON form, e.g. `{"equals": {"key": "year", "value": 2024}}`, within
    /// [`MAX_FILTER_DEPTH`] and [`MAX_FILTER_TERMS`].
    pub fn from_json(value: &Value) -> Result<Self, FilterError> {
        let mut terms = 0;
        measure(value, "filter", 0, &mut terms)?;
        Self::parse(value, "filter")
    }

    fn parse(value: &Value, path: &str) -> Result<Self, FilterError> {
        let object = value
            .as_object()
            .ok_or_else(|| err(path, "must be an object with exactly one operator"))?;
        if object.len() != 1 {
            return Err(err(
                path,
                format!(
                    "must set exactly one operator (one of {}), found {}",
                    OPERATORS.join(", "),
                    object.len()
                ),
            ));
        }
        let (op, body) = object.iter().next().expect("one entry");
        let path = format!("{path}.{op}");
        match op.as_str() {
            "andAll" | "orAll" => {
                let items = body
                    .as_array()
                    .ok_or_else(|| err(&path, "must be a list of filters"))?;
                if items.len() < 2 {
                    return Err(err(&path, "must hold at least 2 filters"));
                }
                let filters = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Self::parse(f, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if op == "andAll" {
                    Self::AndAll(filters)
                } else {
                    Self::OrAll(filters)
                })
            }
            _ => Self::parse_attribute(op, body, &path),
        }
    }

    fn parse_attribute(op: &str, body: &Value, path: &str) -> Result<Self, FilterError> {
        let body = body
            .as_object()
            .ok_or_else(|| err(path, "must be an object with key and value"))?;
        if let Some(extra) = body.keys().find(|k| *k != "key" && *k != "value") {
            return Err(err(path, format!("unknown field {extra:?}")));
        }
        let key = match body.get("key") {
            Some(Value::String(k)) if !k.is_empty() && k.len() <= 100 => k.clone(),
            Some(_) => return Err(err(&format!("{path}.key"), "must be 1 to 100 characters")),
            None => return Err(err(&format!("{path}.key"), "is required")),
        };
        let value = body
            .get("value")
            .ok_or_else(|| err(&format!("{path}.value"), "is required"))?;
        let vpath = format!("{path}.value");
        let scalar = || {
            MetadataValue::from_json(value).ok_or_else(|| {
                err(
                    &vpath,
                    "must be a string, number, boolean or list of strings",
                )
            })
        };
        let number = || {
            value
                .as_f64()
                .ok_or_else(|| err(&vpath, format!("{op} compares numbers; give a number")))
        };
        let string = || {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| err(&vpath, format!("{op} needs a string")))
        };
        let list = || {
            value
                .as_array()
                .ok_or_else(|| err(&vpath, format!("{op} needs a list of values")))?
                .iter()
                .map(|v| {
                    MetadataValue::from_json(v)
                        .filter(|v| !matches!(v, MetadataValue::StringList(_)))
                        .ok_or_else(|| {
                            err(&vpath, "list members must be strings, numbers or booleans")
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match op {
            "equals" => Self::Equals(key, scalar()?),
            "notEquals" => Self::NotEquals(key, scalar()?),
            "greaterThan" => Self::GreaterThan(key, number()?),
            "greaterThanOrEquals" => Self::GreaterThanOrEquals(key, number()?),
            "lessThan" => Self::LessThan(key, number()?),
            "lessThanOrEquals" => Self::LessThanOrEquals(key, number()?),
            "in" => Self::In(key, list()?),
            "notIn" => Self::NotIn(key, list()?),
            "startsWith" => Self::StartsWith(key, string()?),
            "listContains" => Self::ListContains(key, scalar()?),
            "stringContains" => Self::StringContains(key, string()?),
            other => {
                return Err(err(
                    path,
                    format!(
                        "unknown operator {other:?}; expected one of {}",
                        OPERATORS.join(", ")
                    ),
                ));
            }
        })
    }

    /// Whether a chunk with this metadata passes the filter. Negative operators (`notEquals`,
    /// `notIn`) also match chunks that lack the key, as Bedrock's do.
    pub fn matches(&self, metadata: &Metadata) -> bool {
        self.matches_in(metadata)
    }

    /// [`Self::matches`] over metadata held some other way than one map (a store's compact
    /// entries).
    pub fn matches_in(&self, metadata: &dyn MetadataSource) -> bool {
        let get = |key: &str| metadata.value(key);
        let number = |key: &str| match get(key).as_deref() {
            Some(MetadataValue::Number(n)) => Some(*n),
            _ => None,
        };
        match self {
            Self::Equals(key, v) => get(key).is_some_and(|a| values_equal(&a, v)),
            Self::NotEquals(key, v) => !get(key).is_some_and(|a| values_equal(&a, v)),
            Self::GreaterThan(key, v) => number(key).is_some_and(|n| n > *v),
            Self::GreaterThanOrEquals(key, v) => number(key).is_some_and(|n| n >= *v),
            Self::LessThan(key, v) => number(key).is_some_and(|n| n < *v),
            Self::LessThanOrEquals(key, v) => number(key).is_some_and(|n| n <= *v),
            Self::In(key, vs) => get(key).is_some_and(|a| vs.iter().any(|v| values_equal(&a, v))),
            Self::NotIn(key, vs) => {
                !get(key).is_some_and(|a| vs.iter().any(|v| values_equal(&a, v)))
            }
            Self::StartsWith(key, prefix) => {
                matches!(get(key).as_deref(), Some(MetadataValue::String(s)) if s.starts_with(prefix.as_str()))
            }
            Self::ListContains(key, v) => match get(key).as_deref() {
                Some(MetadataValue::StringList(items)) => items
                    .iter()
                    .any(|item| values_equal(&MetadataValue::String(item.clone()), v)),
                _ => false,
            },
            Self::StringContains(key, needle) => match get(key).as_deref() {
                Some(MetadataValue::String(s)) => s.contains(needle.as_str()),
                Some(MetadataValue::StringList(items)) => {
                    items.iter().any(|s| s.contains(needle.as_str()))
                }
                _ => false,
            },
            Self::AndAll(filters) => filters.iter().all(|f| f.matches_in(metadata)),
            Self::OrAll(filters) => filters.iter().any(|f| f.matches_in(metadata)),
        }
    }
}

/// A chunk's metadata as a filter reads it: one value by key.
pub trait MetadataSource {
    fn value(&self, key: &str) -> Option<Cow<'_, MetadataValue>>;
}

impl MetadataSource for Metadata {
    fn value(&self, key: &str) -> Option<Cow<'_, MetadataValue>> {
        self.get(key).map(Cow::Borrowed)
    }
}

fn values_equal(attribute: &MetadataValue, value: &MetadataValue) -> bool {
    use MetadataValue::*;
    match (attribute, value) {
        (Number(a), Number(b)) => a == b,
        (String(a), String(b)) => a == b,
        (Bool(a), Bool(b)) => a == b,
        (StringList(a), StringList(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(value: serde_json::Value) -> Metadata {
        value
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), MetadataValue::from_json(v).unwrap()))
            .collect()
    }

    fn check(filter: serde_json::Value, metadata: serde_json::Value) -> bool {
        Filter::from_json(&filter).unwrap().matches(&meta(metadata))
    }

    /// About 20,000 clauses fitted in a request, each evaluated against every chunk.
    #[test]
    fn filters_are_bounded_in_terms_and_depth() {
        let clause = |i: usize| json!({"equals": {"key": "k", "value": i}});
        let wide = json!({"orAll": (0..20_000).map(clause).collect::<Vec<_>>()});
        let e = Filter::from_json(&wide).unwrap_err();
        assert!(e.message.contains("more than 100 terms"), "{e}");
        let ok = json!({"orAll": (0..50).map(clause).collect::<Vec<_>>()});
        assert!(Filter::from_json(&ok).is_ok());

        let long_in = json!({"in": {"key": "k", "value": (0..500).collect::<Vec<_>>()}});
        assert!(Filter::from_json(&long_in).is_err());

        let mut deep = clause(0);
        for _ in 0..6 {
            deep = json!({"andAll": [deep, clause(1)]});
        }
        let e = Filter::from_json(&deep).unwrap_err();
        assert!(e.message.contains("nest at most 5"), "{e}");
        let mut five = clause(0);
        for _ in 0..5 {
            five = json!({"andAll": [five, clause(1)]});
        }
        assert!(Filter::from_json(&five).is_ok());

        let single = json!({"andAll": [clause(0)]});
        assert!(Filter::from_json(&single).is_err());
    }

    #[test]
    fn negative_operators_match_missing_keys() {
        assert!(check(
            json!({"notEquals": {"key": "team", "value": "hr"}}),
            json!({})
        ));
        assert!(!check(
            json!({"notEquals": {"key": "team", "value": "hr"}}),
            json!({"team": "hr"})
        ));
        assert!(check(
            json!({"notIn": {"key": "team", "value": ["hr", "it"]}}),
            json!({"year": 1})
        ));
        assert!(!check(
            json!({"equals": {"key": "team", "value": "hr"}}),
            json!({})
        ));
    }

    #[test]
    fn numbers_compare_numerically_and_types_do_not_mix() {
        let m = json!({"year": 2024, "code": "2024"});
        assert!(check(
            json!({"equals": {"key": "year", "value": 2024.0}}),
            m.clone()
        ));
        assert!(!check(
            json!({"equals": {"key": "code", "value": 2024}}),
            m.clone()
        ));
        assert!(check(
            json!({"greaterThan": {"key": "year", "value": 2023}}),
            m.clone()
        ));
        assert!(!check(
            json!({"greaterThan": {"key": "year", "value": 2024}}),
            m.clone()
        ));
        assert!(check(
            json!({"greaterThanOrEquals": {"key": "year", "value": 2024}}),
            m.clone()
        ));
        assert!(check(
            json!({"lessThan": {"key": "year", "value": 2025}}),
            m.clone()
        ));
        assert!(check(
            json!({"lessThanOrEquals": {"key": "year", "value": 2024}}),
            m.clone()
        ));
        assert!(!check(
            json!({"lessThan": {"key": "code", "value": 3000}}),
            m
        ));
    }

    #[test]
    fn string_and_list_operators() {
        let m = json!({"title": "Vacation policy", "tags": ["hr", "leave policy"]});
        assert!(check(
            json!({"startsWith": {"key": "title", "value": "Vac"}}),
            m.clone()
        ));
        assert!(!check(
            json!({"startsWith": {"key": "title", "value": "policy"}}),
            m.clone()
        ));
        assert!(check(
            json!({"stringContains": {"key": "title", "value": "tion p"}}),
            m.clone()
        ));
        assert!(check(
            json!({"stringContains": {"key": "tags", "value": "leave"}}),
            m.clone()
        ));
        assert!(check(
            json!({"listContains": {"key": "tags", "value": "hr"}}),
            m.clone()
        ));
        assert!(!check(
            json!({"listContains": {"key": "tags", "value": "h"}}),
            m.clone()
        ));
        assert!(check(
            json!({"in": {"key": "title", "value": ["x", "Vacation policy"]}}),
            m.clone()
        ));
        assert!(!check(json!({"in": {"key": "title", "value": ["x"]}}), m));
    }

    #[test]
    fn and_or_combine() {
        let m = json!({"year": 2024, "team": "hr"});
        let both = json!({"andAll": [
            {"equals": {"key": "team", "value": "hr"}},
            {"greaterThan": {"key": "year", "value": 2020}}
        ]});
        assert!(check(both, m.clone()));
        let either = json!({"orAll": [
            {"equals": {"key": "team", "value": "it"}},
            {"lessThan": {"key": "year", "value": 2020}}
        ]});
        assert!(!check(either, m));
    }

    #[test]
    fn malformed_filters_name_the_field() {
        let e = Filter::from_json(&json!({"andAll": [{"equals": {"key": "a", "value": 1}}]}))
            .unwrap_err();
        assert_eq!(e.path, "filter.andAll");
        let e = Filter::from_json(&json!({"greaterThan": {"key": "a", "value": "x"}})).unwrap_err();
        assert_eq!(e.path, "filter.greaterThan.value");
        let e = Filter::from_json(&json!({"equal": {"key": "a", "value": 1}})).unwrap_err();
        assert!(e.message.contains("unknown operator"), "{e}");
        let e = Filter::from_json(&json!({"equals": {"value": 1}})).unwrap_err();
        assert_eq!(e.path, "filter.equals.key");
    }
}
