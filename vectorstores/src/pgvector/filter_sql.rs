//! Bedrock's filter as a SQL condition over the JSONB metadata column, with exactly the
//! meaning of [`Filter::matches`]: a key that is missing or of another type fails a positive
//! test and passes a negative one (`notEquals`, `notIn`).

use quarry_core::{Filter, MetadataValue};

/// A query parameter a condition refers to as `$n`.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Json(serde_json::Value),
    Number(f64),
    JsonList(Vec<serde_json::Value>),
}

/// Builds a condition, numbering parameters after those the query already has.
pub struct Condition {
    pub sql: String,
    pub params: Vec<Param>,
    first: usize,
}

impl Condition {
    /// A condition on `column` whose parameters start at `$first`.
    pub fn new(filter: &Filter, column: &str, first: usize) -> Self {
        let mut c = Condition {
            sql: String::new(),
            params: Vec::new(),
            first,
        };
        c.sql = c.build(filter, column);
        c
    }

    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.first + self.params.len() - 1)
    }

    fn build(&mut self, filter: &Filter, m: &str) -> String {
        let key =
            |c: &mut Self, k: &str| format!("{m} -> {}::text", c.param(Param::Text(k.to_owned())));
        match filter {
            Filter::Equals(k, v) => {
                let (field, value) = (key(self, k), self.param(Param::Json(v.to_json())));
                format!("COALESCE({field} = {value}::jsonb, false)")
            }
            Filter::NotEquals(k, v) => {
                let (field, value) = (key(self, k), self.param(Param::Json(v.to_json())));
                format!("NOT COALESCE({field} = {value}::jsonb, false)")
            }
            Filter::GreaterThan(k, n) => {
                let field = key(self, k);
                self.compare(&field, ">", *n)
            }
            Filter::GreaterThanOrEquals(k, n) => {
                let field = key(self, k);
                self.compare(&field, ">=", *n)
            }
            Filter::LessThan(k, n) => {
                let field = key(self, k);
                self.compare(&field, "<", *n)
            }
            Filter::LessThanOrEquals(k, n) => {
                let field = key(self, k);
                self.compare(&field, "<=", *n)
            }
            Filter::In(k, vs) => {
                let field = key(self, k);
                let list = self.param(Param::JsonList(
                    vs.iter().map(MetadataValue::to_json).collect(),
                ));
                format!("COALESCE({field} = ANY({list}::jsonb[]), false)")
            }
            Filter::NotIn(k, vs) => {
                let field = key(self, k);
                let list = self.param(Param::JsonList(
                    vs.iter().map(MetadataValue::to_json).collect(),
                ));
                format!("NOT COALESCE({field} = ANY({list}::jsonb[]), false)")
            }
            Filter::StartsWith(k, prefix) => {
                let field = key(self, k);
                let p = self.param(Param::Text(prefix.clone()));
                format!(
                    "(CASE WHEN jsonb_typeof({field}) = 'string' THEN starts_with({field} #>> '{{}}', {p}) ELSE false END)"
                )
            }
            Filter::ListContains(k, v) => {
                let field = key(self, k);
                // Bedrock lists hold strings; only a string can be one of their items.
                match v {
                    MetadataValue::String(_) => {
                        let item =
                            self.param(Param::Json(serde_json::Value::Array(vec![v.to_json()])));
                        format!(
                            "(CASE WHEN jsonb_typeof({field}) = 'array' THEN {field} @> {item}::jsonb ELSE false END)"
                        )
                    }
                    _ => "false".into(),
                }
            }
            Filter::StringContains(k, needle) => {
                let field = key(self, k);
                let n = self.param(Param::Text(needle.clone()));
                format!(
                    "(CASE jsonb_typeof({field}) \
                      WHEN 'string' THEN strpos({field} #>> '{{}}', {n}) > 0 \
                      WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({field}) item \
                                                WHERE jsonb_typeof(item) = 'string' AND strpos(item #>> '{{}}', {n}) > 0) \
                      ELSE false END)"
                )
            }
            Filter::AndAll(fs) => self.join(fs, m, " AND "),
            Filter::OrAll(fs) => self.join(fs, m, " OR "),
        }
    }

    fn compare(&mut self, field: &str, op: &str, n: f64) -> String {
        let v = self.param(Param::Number(n));
        format!(
            "(CASE WHEN jsonb_typeof({field}) = 'number' THEN ({field})::float8 {op} {v}::float8 ELSE false END)"
        )
    }

    fn join(&mut self, filters: &[Filter], m: &str, op: &str) -> String {
        let parts: Vec<String> = filters.iter().map(|f| self.build(f, m)).collect();
        format!("({})", parts.join(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_numbered_after_the_querys_own() {
        let f = Filter::from_json(&json!({"andAll": [
            {"equals": {"key": "team", "value": "hr"}},
            {"greaterThan": {"key": "year", "value": 2020}}
        ]}))
        .unwrap();
        let c = Condition::new(&f, "metadata", 3);
        assert_eq!(
            c.params,
            [
                Param::Text("team".into()),
                Param::Json(json!("hr")),
                Param::Text("year".into()),
                Param::Number(2020.0)
            ]
        );
        assert!(
            c.sql.contains("metadata -> $3::text = $4::jsonb"),
            "{}",
            c.sql
        );
        assert!(c.sql.contains("metadata -> $5::text"), "{}", c.sql);
        assert!(c.sql.contains("$6::float8"), "{}", c.sql);
        assert!(c.sql.contains(" AND "), "{}", c.sql);
    }
}
