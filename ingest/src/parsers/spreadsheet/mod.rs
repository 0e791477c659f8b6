//! XLSX, XLS and ODS (calamine): every sheet, each row a line that names its columns from the
//! sheet's header row (`Region: North; Revenue: 1200`), so a chunk of a spreadsheet still
//! says what its numbers mean.

use std::collections::HashMap;
use std::io::Cursor;

use calamine::{Data, Reader, Sheets, open_workbook_auto_from_rs};
use quarry_core::{ParseError, ParsedDocument, Parser};

use super::{compound_file, zip_limits};

mod lenient_xlsx;

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

/// A sheet's non-empty cells as (row, column, value).
type Cells = Vec<(u32, u32, Data)>;

/// Errors in a row, with no cell read between them, after which a sheet is given up.
const MAX_ERRORS_IN_A_ROW: usize = 100;

/// A sheet's non-empty cells as (row, column, value), and a note on the cells that could not
/// be read. XLSX sheets are read cell by cell, so a sheet with two cells far apart costs two
/// cells, not the rectangle between them, and one bad cell (a number stored as `" 41"`)
/// costs that cell only; the other formats come through calamine's ranges.
fn sheet_cells(
    workbook: &mut Sheets<Cursor<&[u8]>>,
    bytes: &[u8],
    name: &str,
) -> Result<(Cells, Option<String>), String> {
    let mut cells = Vec::new();
    let mut note = None;
    if let Sheets::Xlsx(xlsx) = workbook {
        let mut reader = xlsx
            .worksheet_cells_reader(name)
            .map_err(|e| e.to_string())?;
        let (mut unreadable, mut in_a_row, mut first_error) = (0usize, 0usize, None);
        loop {
            match reader.next_cell() {
                Ok(Some(cell)) => {
                    in_a_row = 0;
                    let value = Data::from(cell.get_value().clone());
                    if !matches!(value, Data::Empty) {
                        let (row, col) = cell.get_position();
                        cells.push((row, col, value));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    unreadable += 1;
                    in_a_row += 1;
                    let e = first_error.get_or_insert_with(|| e.to_string());
                    if in_a_row > MAX_ERRORS_IN_A_ROW {
                        return Err(e.clone());
                    }
                }
            }
        }
        if let Some(e) = first_error {
            let s = if unreadable == 1 { "" } else { "s" };
            // The cells calamine refused, from a lenient second reading of the sheet.
            match lenient_xlsx::sheet_cells(bytes, name) {
                Ok(all) => {
                    let known: std::collections::HashSet<(u32, u32)> =
                        cells.iter().map(|&(r, c, _)| (r, c)).collect();
                    let before = cells.len();
                    cells.extend(
                        all.into_iter()
                            .filter(|&(r, c, _)| !known.contains(&(r, c))),
                    );
                    let recovered = cells.len() - before;
                    note = Some(if recovered >= unreadable {
                        format!("sheet {name}: {unreadable} cell{s} read leniently ({e})")
                    } else {
                        format!(
                            "sheet {name}: {} unreadable cell{s} left out ({e})",
                            unreadable - recovered
                        )
                    });
                }
                Err(lenient) => {
                    note = Some(format!(
                        "sheet {name}: {unreadable} unreadable cell{s} left out ({e}; {lenient})"
                    ))
                }
            }
        }
        cells.sort_by_key(|&(row, col, _)| (row, col));
    } else {
        let range = workbook.worksheet_range(name).map_err(|e| e.to_string())?;
        let (row0, col0) = range.start().unwrap_or((0, 0));
        for (row, col, value) in range.used_cells() {
            cells.push((row0 + row as u32, col0 + col as u32, value.clone()));
        }
    }
    Ok((cells, note))
}

/// One sheet as text: its name, then a line per row naming each value's column from the
/// first row (`Column N` where the header is blank).
fn write_sheet(name: &str, cells: Vec<(u32, u32, Data)>, out: &mut String) {
    let first_col = cells.iter().map(|c| c.1).min().unwrap_or(0);
    let mut rows = cells.chunk_by(|a, b| a.0 == b.0).map(|row| {
        row.iter()
            .map(|(_, col, value)| ((col - first_col) as usize, cell_text(value)))
            .filter(|(_, text)| !text.is_empty())
            .collect::<Vec<_>>()
    });
    let Some(header_row) = rows.next() else {
        return;
    };
    let headers: HashMap<usize, String> = header_row.into_iter().collect();
    out.push_str(&format!("# Sheet: {name}\n"));
    for row in rows {
        let line: Vec<String> = row
            .into_iter()
            .map(|(i, value)| match headers.get(&i) {
                Some(header) => format!("{header}: {value}"),
                None => format!("Column {}: {value}", i + 1),
            })
            .collect();
        if !line.is_empty() {
            out.push_str(&line.join("; "));
            out.push('\n');
        }
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
        let mut warnings = Vec::new();
        for name in workbook.sheet_names() {
            let (cells, note) = sheet_cells(&mut workbook, bytes, &name)
                .map_err(|e| malformed(format!("sheet {name}: {e}")))?;
            warnings.extend(note);
            let start = out.len();
            write_sheet(&name, cells, &mut out);
            if out.len() > start {
                page_starts.push(start);
            }
        }
        // Sheets stand in for pages, so chunks can say which sheet they came from.
        Ok(ParsedDocument {
            text: out,
            page_starts,
            warnings,
            ..ParsedDocument::default()
        })
    }
}
