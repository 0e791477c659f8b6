//! The generation model working on the query before the search: splitting a question into
//! sub-questions (Bedrock's QUERY_DECOMPOSITION) and proposing a metadata filter from the
//! attributes a request declares (Bedrock's implicit filters).

use std::ops::ControlFlow;

use quarry_core::{Filter, MetadataValue};
use quarry_generate::{Cancel, GenerationRequest, Generator, Message, Role};

use super::RagError;

/// At most this many sub-questions are searched.
pub const MAX_SUB_QUESTIONS: usize = 5;

const DECOMPOSE: &str = "You prepare searches of a document collection. Split the user's question into the \
simpler, self-contained sub-questions that must each be looked up to answer it: one per line, no numbering, \
no other text, at most 5. A question that is already simple is its own single sub-question.";

fn ask(
    generator: &dyn Generator,
    system: &str,
    user: String,
    cancel: &Cancel,
) -> Result<String, RagError> {
    let request = GenerationRequest {
        messages: vec![
            Message::new(Role::System, system),
            Message::new(Role::User, user),
        ],
        max_tokens: 200,
        temperature: Some(0.0),
        top_p: None,
        stop_sequences: Vec::new(),
        seed: 0,
        cancel: cancel.clone(),
    };
    Ok(generator
        .generate(&request, &mut |_| ControlFlow::Continue(()))?
        .text)
}

/// The sub-questions the model finds in `question` (the question itself when it finds none).
pub fn sub_questions(
    generator: &dyn Generator,
    question: &str,
    cancel: &Cancel,
) -> Result<Vec<String>, RagError> {
    let answer = ask(generator, DECOMPOSE, question.to_owned(), cancel)?;
    let mut out: Vec<String> = Vec::new();
    for line in answer.lines() {
        let line = line
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_digit() || "-*•.) ".contains(c))
            .trim();
        if !line.is_empty() && !out.iter().any(|q| q == line) {
            out.push(line.to_owned());
        }
    }
    out.truncate(MAX_SUB_QUESTIONS);
    if out.is_empty() {
        out.push(question.to_owned());
    }
    tracing::debug!(question, sub_questions = ?out, "query decomposition");
    Ok(out)
}

/// The type of a declared attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    String,
    Number,
    Boolean,
    StringList,
}

impl AttributeType {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "STRING" => Self::String,
            "NUMBER" => Self::Number,
            "BOOLEAN" => Self::Boolean,
            "STRING_LIST" => Self::StringList,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "STRING",
            Self::Number => "NUMBER",
            Self::Boolean => "BOOLEAN",
            Self::StringList => "STRING_LIST",
        }
    }

    /// Whether `value` is a value of this type (a list's items for list attributes).
    fn admits(self, value: &MetadataValue) -> bool {
        matches!(
            (self, value),
            (Self::String | Self::StringList, MetadataValue::String(_))
                | (Self::Number, MetadataValue::Number(_))
                | (Self::Boolean, MetadataValue::Bool(_))
                | (Self::StringList, MetadataValue::StringList(_))
        )
    }
}

/// A metadata attribute the model may filter on.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub key: String,
    pub kind: AttributeType,
    pub description: String,
}

const PROPOSE: &str = "You turn a search query into a metadata filter. Use only the attributes listed, \
with values of their types. Answer with one JSON object in Amazon Bedrock's RetrievalFilter form \
(operators: equals, notEquals, greaterThan, greaterThanOrEquals, lessThan, lessThanOrEquals, in, notIn, \
startsWith, listContains, stringContains, andAll, orAll; e.g. {\"equals\": {\"key\": \"year\", \"value\": 2020}}), \
or with NONE when the query names no attribute value.";

/// The filter the model proposes for `query`, if it proposes a valid one: every key declared,
/// every value of its attribute's type. Anything else means no implicit filter (logged).
pub fn implicit_filter(
    generator: &dyn Generator,
    query: &str,
    attributes: &[Attribute],
    cancel: &Cancel,
) -> Result<Option<Filter>, RagError> {
    let listed: Vec<String> = attributes
        .iter()
        .map(|a| format!("- {} ({}): {}", a.key, a.kind.name(), a.description))
        .collect();
    let user = format!("Attributes:\n{}\n\nQuery: {query}", listed.join("\n"));
    let answer = ask(generator, PROPOSE, user, cancel)?;
    let proposal = match (answer.find('{'), answer.rfind('}')) {
        (Some(start), Some(end)) if start < end => &answer[start..=end],
        _ => {
            tracing::debug!(query, answer, "implicit filter: the model proposed none");
            return Ok(None);
        }
    };
    let filter = serde_json::from_str(proposal)
        .map_err(|e| e.to_string())
        .and_then(|v| Filter::from_json(&v).map_err(|e| e.to_string()))
        .and_then(|f| valid(&f, attributes).map(|()| f));
    match filter {
        Ok(f) => {
            tracing::debug!(query, filter = proposal, "implicit filter");
            Ok(Some(f))
        }
        Err(why) => {
            tracing::info!(
                query,
                proposal,
                why,
                "implicit filter: the model's proposal was invalid; searching without it"
            );
            Ok(None)
        }
    }
}

fn valid(filter: &Filter, attributes: &[Attribute]) -> Result<(), String> {
    let kind = |key: &str| {
        attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.kind)
            .ok_or_else(|| format!("{key} is not a declared attribute"))
    };
    let typed = |key: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(format!("the value for {key} is not of its declared type"))
        }
    };
    match filter {
        Filter::AndAll(all) | Filter::OrAll(all) => {
            all.iter().try_for_each(|f| valid(f, attributes))
        }
        Filter::Equals(k, v) | Filter::NotEquals(k, v) | Filter::ListContains(k, v) => {
            let t = kind(k)?;
            typed(k, t.admits(v))
        }
        Filter::In(k, vs) | Filter::NotIn(k, vs) => {
            let t = kind(k)?;
            typed(k, vs.iter().all(|v| t.admits(v)))
        }
        Filter::GreaterThan(k, _)
        | Filter::GreaterThanOrEquals(k, _)
        | Filter::LessThan(k, _)
        | Filter::LessThanOrEquals(k, _) => typed(k, kind(k)? == AttributeType::Number),
        Filter::StartsWith(k, _) | Filter::StringContains(k, _) => {
            let t = kind(k)?;
            typed(
                k,
                matches!(t, AttributeType::String | AttributeType::StringList),
            )
        }
    }
}

/// `explicit` and `implicit` together (`andAll`), or whichever there is.
pub fn combined(explicit: Option<Filter>, implicit: Option<Filter>) -> Option<Filter> {
    match (explicit, implicit) {
        (Some(e), Some(i)) => Some(Filter::AndAll(vec![e, i])),
        (e, i) => e.or(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes() -> Vec<Attribute> {
        vec![
            Attribute {
                key: "team".into(),
                kind: AttributeType::String,
                description: "the team".into(),
            },
            Attribute {
                key: "year".into(),
                kind: AttributeType::Number,
                description: "the year".into(),
            },
        ]
    }

    fn parse(json: &str) -> Filter {
        Filter::from_json(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn proposals_must_use_declared_keys_with_their_types() {
        let a = attributes();
        assert!(valid(&parse(r#"{"equals": {"key": "team", "value": "ops"}}"#), &a).is_ok());
        assert!(
            valid(
                &parse(r#"{"andAll": [{"equals": {"key": "team", "value": "ops"}}, {"greaterThan": {"key": "year", "value": 2019}}]}"#),
                &a
            )
            .is_ok()
        );
        for bad in [
            r#"{"equals": {"key": "owner", "value": "ops"}}"#,
            r#"{"equals": {"key": "year", "value": "2020"}}"#,
            r#"{"greaterThan": {"key": "team", "value": 3}}"#,
            r#"{"orAll": [{"equals": {"key": "team", "value": "ops"}}, {"equals": {"key": "x", "value": 1}}]}"#,
        ] {
            assert!(valid(&parse(bad), &a).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_combine_with_and_all() {
        let e = parse(r#"{"equals": {"key": "team", "value": "ops"}}"#);
        let i = parse(r#"{"equals": {"key": "year", "value": 2020}}"#);
        assert_eq!(combined(Some(e.clone()), None), Some(e.clone()));
        assert_eq!(combined(None, Some(i.clone())), Some(i.clone()));
        assert_eq!(
            combined(Some(e.clone()), Some(i.clone())),
            Some(Filter::AndAll(vec![e, i]))
        );
    }
}
