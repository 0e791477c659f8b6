//! The members an untyped part of a request may have (the parts read as JSON values rather
//! than typed structs), so that those too refuse what Quarry does not honour.

use serde_json::Value;

use crate::server::error::{ApiError, ApiResult};

pub enum Members {
    /// A value (string, number, list of plain values...) whose members are not checked.
    Leaf,
    Object(&'static [(&'static str, Members)]),
    List(&'static Members),
}

/// Refuses, by its path, the first member `v` has that `shape` does not list.
pub fn check(v: &Value, shape: &Members, path: &str) -> ApiResult<()> {
    let at = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    match (shape, v) {
        (Members::Object(known), Value::Object(map)) => {
            for (name, value) in map {
                let Some((_, inner)) = known.iter().find(|(k, _)| k == name) else {
                    return Err(ApiError::Validation(format!(
                        "{}: Quarry does not support this member",
                        at(name)
                    )));
                };
                check(value, inner, &at(name))?;
            }
            Ok(())
        }
        (Members::List(inner), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check(item, inner, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        // Wrong types are for the reader of the value to name.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHAPE: Members = Members::Object(&[
        ("a", Members::Leaf),
        (
            "list",
            Members::List(&Members::Object(&[("b", Members::Leaf)])),
        ),
    ]);

    #[test]
    fn unknown_members_are_named_at_any_depth() {
        assert!(check(&json!({"a": 1, "list": [{"b": 2}]}), &SHAPE, "doc").is_ok());
        let Err(ApiError::Validation(m)) = check(
            &json!({"a": 1, "list": [{"b": 2}, {"c": 3}]}),
            &SHAPE,
            "doc",
        ) else {
            panic!()
        };
        assert_eq!(m, "doc.list[1].c: Quarry does not support this member");
    }
}
