//! CSV: each row becomes one line naming its columns from the header row
//! (`Plan: Pro; Price: 49`), so a chunk of a table still says what its numbers mean.

use quarry_core::{ParseError, ParsedDocument, Parser};

use super::text::decode_text;

pub struct CsvParser;

impl Parser for CsvParser {
    fn format(&self) -> &'static str {
        "csv"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode_text(bytes, "csv")?;
        let malformed = |reason: String| ParseError::Malformed {
            format: "csv",
            reason,
        };
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| malformed(e.to_string()))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                if h.trim().is_empty() {
                    format!("Column {}", i + 1)
                } else {
                    h.trim().to_owned()
                }
            })
            .collect();
        let mut out = String::new();
        for record in reader.records() {
            let record = record.map_err(|e| malformed(describe(&e)))?;
            let line: Vec<String> = headers
                .iter()
                .zip(record.iter())
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(h, v)| format!("{h}: {}", v.trim()))
                .collect();
            if !line.is_empty() {
                out.push_str(&line.join("; "));
                out.push('\n');
            }
        }
        Ok(ParsedDocument::plain(out))
    }
}

fn describe(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "row on line {} has {len} fields, the header has {expected_len}",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_their_columns() {
        let doc = CsvParser
            .parse(b"Plan,Price (USD),Seats\nStarter,0,1\nPro,49,\n")
            .unwrap();
        assert_eq!(
            doc.text,
            "Plan: Starter; Price (USD): 0; Seats: 1\nPlan: Pro; Price (USD): 49\n"
        );
    }

    #[test]
    fn ragged_rows_fail_with_the_line() {
        let e = CsvParser.parse(b"a,b\n1,2\n3,4,5\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed csv: row on line 3 has 3 fields, the header has 2"
        );
    }
}
