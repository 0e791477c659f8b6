//! Bedrock's filter as a Qdrant payload filter. The translation is a *pre-filter*: it never
//! drops a point Bedrock's semantics would keep, and the store checks every point it returns
//! with [`Filter::matches`], so results have exactly Bedrock's meaning.
//!
//! - `equals`/`in` on strings and booleans become keyword/bool matches, on numbers a closed
//!   range (so 3 and 3.0 are equal, and a string "3" is not); Qdrant also matches arrays that
//!   contain the value, which the check afterwards removes.
//! - `notEquals`/`notIn` become `must_not` for numbers and booleans (Bedrock lists hold only
//!   strings, so this is exact, and a missing key passes, as in Bedrock). For strings they
//!   are left to the check afterwards: Qdrant's `must_not` would also drop lists that contain
//!   the string, which Bedrock keeps.
//! - `greaterThan`…`lessThanOrEquals` become ranges; `listContains` a keyword match;
//!   `andAll`/`orAll` nest as must/should.
//! - `startsWith` and `stringContains` are left to the check afterwards: Qdrant 1.19 answers
//!   "Malformed Match condition" to the client's prefix and substring matches (they are newer
//!   than its protocol), and its full-text `text` match means tokens, not characters. When
//!   what Qdrant can narrow by is not selective enough, the store ranks every point that
//!   passes exactly, so nothing is missed.

use qdrant_client::qdrant::{self, Condition, Range};
use quarry_core::{Filter, MetadataValue};

/// A condition true for points whose `key` holds `value` (or, for Qdrant, an array holding it).
fn equal_to(key: &str, value: &MetadataValue) -> Condition {
    match value {
        MetadataValue::String(s) => Condition::matches(key, s.clone()),
        MetadataValue::Bool(b) => Condition::matches(key, *b),
        MetadataValue::Number(n) => Condition::range(
            key,
            Range {
                gte: Some(*n),
                lte: Some(*n),
                ..Default::default()
            },
        ),
        MetadataValue::StringList(items) => {
            qdrant::Filter::must(items.iter().map(|i| Condition::matches(key, i.clone()))).into()
        }
    }
}

/// Whether `not equal_to(value)` in Qdrant keeps every point Bedrock's `notEquals` keeps.
fn negation_is_exact(value: &MetadataValue) -> bool {
    matches!(value, MetadataValue::Number(_) | MetadataValue::Bool(_))
}

fn range(key: &str, r: Range) -> Condition {
    Condition::range(key, r)
}

/// The Qdrant pre-filter for a Bedrock filter (`None`: nothing to narrow by).
pub fn translate(filter: &Filter) -> Option<qdrant::Filter> {
    let one = |c: Condition| Some(qdrant::Filter::must([c]));
    match filter {
        Filter::Equals(k, v) => one(equal_to(k, v)),
        Filter::NotEquals(k, v) if negation_is_exact(v) => {
            Some(qdrant::Filter::must_not([equal_to(k, v)]))
        }
        Filter::NotEquals(..) => None,
        Filter::In(k, vs) => Some(qdrant::Filter::should(vs.iter().map(|v| equal_to(k, v)))),
        Filter::NotIn(k, vs) => {
            let exact: Vec<Condition> = vs
                .iter()
                .filter(|v| negation_is_exact(v))
                .map(|v| equal_to(k, v))
                .collect();
            (!exact.is_empty()).then(|| qdrant::Filter::must_not(exact))
        }
        Filter::GreaterThan(k, n) => one(range(
            k,
            Range {
                gt: Some(*n),
                ..Default::default()
            },
        )),
        Filter::GreaterThanOrEquals(k, n) => one(range(
            k,
            Range {
                gte: Some(*n),
                ..Default::default()
            },
        )),
        Filter::LessThan(k, n) => one(range(
            k,
            Range {
                lt: Some(*n),
                ..Default::default()
            },
        )),
        Filter::LessThanOrEquals(k, n) => one(range(
            k,
            Range {
                lte: Some(*n),
                ..Default::default()
            },
        )),
        Filter::StartsWith(..) | Filter::StringContains(..) => None,
        Filter::ListContains(k, v) => match v {
            MetadataValue::String(s) => one(Condition::matches(k, s.clone())),
            // Only strings are list items; the check afterwards rejects everything.
            _ => None,
        },
        Filter::AndAll(fs) => {
            let parts: Vec<Condition> = fs
                .iter()
                .filter_map(translate)
                .map(Condition::from)
                .collect();
            (!parts.is_empty()).then(|| qdrant::Filter::must(parts))
        }
        Filter::OrAll(fs) => {
            // One untranslatable branch could pass anything: then the whole `or` can too.
            let parts: Option<Vec<Condition>> = fs
                .iter()
                .map(|f| translate(f).map(Condition::from))
                .collect();
            parts.map(qdrant::Filter::should)
        }
    }
}

/// Payload keys a filter reads, for the store to index.
pub fn keys(filter: &Filter, out: &mut Vec<String>) {
    let mut add = |k: &str| {
        if !out.iter().any(|o| o == k) {
            out.push(k.to_owned());
        }
    };
    match filter {
        Filter::Equals(k, _)
        | Filter::NotEquals(k, _)
        | Filter::In(k, _)
        | Filter::NotIn(k, _)
        | Filter::StartsWith(k, _)
        | Filter::ListContains(k, _)
        | Filter::StringContains(k, _)
        | Filter::GreaterThan(k, _)
        | Filter::GreaterThanOrEquals(k, _)
        | Filter::LessThan(k, _)
        | Filter::LessThanOrEquals(k, _) => add(k),
        Filter::AndAll(fs) | Filter::OrAll(fs) => fs.iter().for_each(|f| keys(f, out)),
    }
}

#[cfg(test)]
mod tests {
    use qdrant_client::qdrant::condition::ConditionOneOf;
    use qdrant_client::qdrant::r#match::MatchValue;
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> Filter {
        Filter::from_json(&v).unwrap()
    }

    fn field(c: &Condition) -> &qdrant::FieldCondition {
        match &c.condition_one_of {
            Some(ConditionOneOf::Field(f)) => f,
            other => panic!("not a field condition: {other:?}"),
        }
    }

    fn match_value(c: &Condition) -> &MatchValue {
        field(c)
            .r#match
            .as_ref()
            .unwrap()
            .match_value
            .as_ref()
            .unwrap()
    }

    #[test]
    fn equals_strings_booleans_and_numbers() {
        let f = translate(&parse(json!({"equals": {"key": "team", "value": "hr"}}))).unwrap();
        assert_eq!(field(&f.must[0]).key, "team");
        assert_eq!(match_value(&f.must[0]), &MatchValue::Keyword("hr".into()));
        let f = translate(&parse(json!({"equals": {"key": "draft", "value": true}}))).unwrap();
        assert_eq!(match_value(&f.must[0]), &MatchValue::Boolean(true));
        let f = translate(&parse(json!({"equals": {"key": "year", "value": 2024}}))).unwrap();
        let r = field(&f.must[0]).range.unwrap();
        assert_eq!(
            (r.gte, r.lte, r.gt, r.lt),
            (Some(2024.0), Some(2024.0), None, None)
        );
    }

    #[test]
    fn not_equals_is_must_not_for_numbers_and_left_to_the_check_for_strings() {
        let f = translate(&parse(json!({"notEquals": {"key": "year", "value": 2024}}))).unwrap();
        assert!(f.must.is_empty() && f.should.is_empty());
        assert_eq!(field(&f.must_not[0]).range.unwrap().gte, Some(2024.0));
        assert_eq!(
            translate(&parse(json!({"notEquals": {"key": "team", "value": "hr"}}))),
            None
        );
        let f = translate(&parse(
            json!({"notIn": {"key": "year", "value": [2020, "x", 2021]}}),
        ))
        .unwrap();
        assert_eq!(f.must_not.len(), 2);
    }

    #[test]
    fn ranges_and_lists_are_translated_prefixes_and_substrings_left_to_the_check() {
        let f = translate(&parse(json!({"greaterThan": {"key": "n", "value": 3}}))).unwrap();
        assert_eq!(field(&f.must[0]).range.unwrap().gt, Some(3.0));
        let f = translate(&parse(
            json!({"lessThanOrEquals": {"key": "n", "value": 3.5}}),
        ))
        .unwrap();
        assert_eq!(field(&f.must[0]).range.unwrap().lte, Some(3.5));
        for untranslated in [
            json!({"startsWith": {"key": "path", "value": "docs/"}}),
            json!({"stringContains": {"key": "title", "value": "plan"}}),
        ] {
            assert_eq!(translate(&parse(untranslated)), None);
        }
        let f = translate(&parse(
            json!({"listContains": {"key": "tags", "value": "red"}}),
        ))
        .unwrap();
        assert_eq!(match_value(&f.must[0]), &MatchValue::Keyword("red".into()));
        let f = translate(&parse(
            json!({"in": {"key": "team", "value": ["hr", "ops"]}}),
        ))
        .unwrap();
        assert_eq!(f.should.len(), 2);
    }

    #[test]
    fn and_or_nest_and_an_untranslatable_branch_widens_an_or() {
        let f = translate(&parse(json!({"andAll": [
            {"equals": {"key": "team", "value": "hr"}},
            {"notEquals": {"key": "owner", "value": "bob"}},
            {"greaterThanOrEquals": {"key": "year", "value": 2020}}
        ]})))
        .unwrap();
        // The string notEquals is left to the check; the other two narrow.
        assert_eq!(f.must.len(), 2);
        let or = parse(json!({"orAll": [
            {"equals": {"key": "team", "value": "hr"}},
            {"notEquals": {"key": "owner", "value": "bob"}}
        ]}));
        assert_eq!(translate(&or), None);
        let mut seen = Vec::new();
        keys(&or, &mut seen);
        assert_eq!(seen, ["team", "owner"]);
    }
}
