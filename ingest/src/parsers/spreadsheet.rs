//! XLSX, XLS and ODS (calamine): every sheet, each row a line that names its columns from the
//! sheet's header row (`Region: North; Revenue: 1200`), so a chunk of a spreadsheet still
//! says what its numbers mean.

use std::io::Cursor;

use calamine::{Data, Reader, open_workbook_auto_from_rs};
use quarry_core::{ParseError, ParsedDocument, Parser};

use super::{compound_file, zip_limits};

pub struct SpreadsheetParser {
    pub format: &'static str,
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_owned(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => format!("{f}"),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => d
            .as_datetime()
            .map(|t| {
                if t.time() == chrono::NaiveTime::MIN {
                    t.date().to_string()
                } else {
                    t.to_string()
                }
            })
            .unwrap_or_else(|| d.as_f64().to_string()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

impl Parser for SpreadsheetParser {
    fn format(&self) -> &'static str {
        self.format
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let format = self.format;
        if format != "xls" {
            // XLSX and ODS are zip archives: check for bombs before calamine expands them.
            zip_limits::open(bytes, format)?;
        }
        let malformed = |reason: String| ParseError::Malformed { format, reason };
        // XLS workbooks are OLE compound files: check their sector chains first.
        compound_file::check(bytes).map_err(|r| malformed(format!("broken compound file: {r}")))?;
        let mut workbook =
            open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| malformed(e.to_string()))?;
        let mut out = String::new();
        let mut page_starts = Vec::new();
        for name in workbook.sheet_names() {
            let range = workbook
                .worksheet_range(&name)
                .map_err(|e| malformed(format!("sheet {name}: {e}")))?;
            let mut rows = range
                .rows()
                .filter(|r| r.iter().any(|c| !matches!(c, Data::Empty)));
            let Some(header_row) = rows.next() else {
                continue;
            };
            let headers: Vec<String> = header_row
                .iter()
                .enumerate()
                .map(|(i, c)| match cell_text(c) {
                    h if h.is_empty() => format!("Column {}", i + 1),
                    h => h,
                })
                .collect();
            page_starts.push(out.len());
            out.push_str(&format!("# Sheet: {name}\n"));
            for row in rows {
                let line: Vec<String> = row
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        let v = cell_text(c);
                        let header = headers
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("Column {}", i + 1));
                        (!v.is_empty()).then(|| format!("{header}: {v}"))
                    })
                    .collect();
                if !line.is_empty() {
                    out.push_str(&line.join("; "));
                    out.push('\n');
                }
            }
        }
        // Sheets stand in for pages, so chunks can say which sheet they came from.
        Ok(ParsedDocument {
            text: out,
            page_starts,
        })
    }
}
