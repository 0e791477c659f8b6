//! DOCX (Word): paragraphs in order, headings as `#` lines, list items as `- ` lines, tables as
//! a line per row naming each value's column from the first row (`Item: Laptop; Price: 900`),
//! as spreadsheets are read; a table of one row, or without a header, as `cell | cell`.
//! Deleted text of tracked changes is left out.

use quarry_core::{ParseError, ParsedDocument, Parser};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ooxml::referenced_char;
use super::zip_limits;

pub struct DocxParser;

/// Deeper XML than this is refused rather than walked.
const MAX_DEPTH: usize = 256;

impl Parser for DocxParser {
    fn format(&self) -> &'static str {
        "docx"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let mut archive = zip_limits::open(bytes, "docx")?;
        let xml = zip_limits::read_entry(&mut archive, "word/document.xml", "docx")?.ok_or(
            ParseError::Malformed {
                format: "docx",
                reason: "no word/document.xml: not a Word document".into(),
            },
        )?;
        document_text(&xml).map(ParsedDocument::plain)
    }
}

fn attribute(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .map(|a| a.value.to_string())
}

/// `Heading1`…`Heading9` (and `Title`) styles as heading levels.
fn heading_level(style: &str) -> Option<usize> {
    if style.eq_ignore_ascii_case("title") {
        return Some(1);
    }
    let rest = style
        .strip_prefix("Heading")
        .or_else(|| style.strip_prefix("heading"))?;
    rest.trim()
        .parse::<usize>()
        .ok()
        .filter(|l| (1..=9).contains(l))
        .map(|l| l.min(6))
}

/// A table's rows: with a header row (two or more rows, a header cell in at least two
/// columns), each later row names its values' columns; otherwise `cell | cell`.
fn write_table(rows: &[Vec<String>], out: &mut String) {
    let header = rows
        .first()
        .filter(|h| rows.len() > 1 && h.iter().filter(|c| !c.trim().is_empty()).count() >= 2);
    let Some(header) = header else {
        for row in rows {
            out.push_str(&row.join(" | "));
            out.push('\n');
        }
        return;
    };
    out.push_str(&header.join(" | "));
    out.push('\n');
    for row in &rows[1..] {
        let named: Vec<String> = row
            .iter()
            .enumerate()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(
                |(i, value)| match header.get(i).filter(|h| !h.trim().is_empty()) {
                    Some(h) => format!("{h}: {value}"),
                    None => format!("Column {}: {value}", i + 1),
                },
            )
            .collect();
        out.push_str(&named.join("; "));
        out.push('\n');
    }
}

fn document_text(xml: &[u8]) -> Result<String, ParseError> {
    let malformed = |reason: String| ParseError::Malformed {
        format: "docx",
        reason,
    };
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = String::new();
    let mut para = String::new();
    let (mut heading, mut list_item, mut in_text) = (None, false, false);
    let mut depth = 0usize;
    // For each open table: the cells of the row, the current cell, the rows so far.
    let mut tables: Vec<(Vec<String>, String, Vec<Vec<String>>)> = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| malformed(format!("word/document.xml: {e}")))?;
        match event {
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(malformed(format!("XML nested more than {MAX_DEPTH} deep")));
                }
                match e.local_name().as_ref() {
                    "p" => {
                        para.clear();
                        heading = None;
                        list_item = false;
                    }
                    "t" => in_text = true,
                    "tbl" => tables.push((Vec::new(), String::new(), Vec::new())),
                    "tr" => {
                        if let Some(t) = tables.last_mut() {
                            t.0.clear();
                        }
                    }
                    "tc" => {
                        if let Some(t) = tables.last_mut() {
                            t.1.clear();
                        }
                    }
                    "numPr" => list_item = true,
                    _ => {}
                }
            }
            Event::Empty(e) => match e.local_name().as_ref() {
                "pStyle" => heading = attribute(&e, "val").as_deref().and_then(heading_level),
                "tab" => para.push('\t'),
                "br" | "cr" => para.push('\n'),
                "numPr" => list_item = true,
                _ => {}
            },
            Event::Text(t) if in_text => {
                para.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if in_text => para.push(referenced_char(&r, "docx")?),
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                match e.local_name().as_ref() {
                    "t" => in_text = false,
                    "p" => {
                        let text = para.trim();
                        if let Some((_, cell, _)) = tables.last_mut() {
                            if !text.is_empty() {
                                if !cell.is_empty() {
                                    cell.push(' ');
                                }
                                cell.push_str(text);
                            }
                        } else if !text.is_empty() {
                            if let Some(level) = heading {
                                out.push_str(&"#".repeat(level));
                                out.push(' ');
                            } else if list_item {
                                out.push_str("- ");
                            }
                            out.push_str(text);
                            out.push('\n');
                        }
                        para.clear();
                    }
                    "tc" => {
                        if let Some((cells, cell, _)) = tables.last_mut() {
                            cells.push(std::mem::take(cell));
                        }
                    }
                    "tr" => {
                        let nested = tables.len() > 1;
                        if let Some((cells, _, rows)) = tables.last_mut() {
                            let row = std::mem::take(cells);
                            if row.iter().any(|c| !c.trim().is_empty()) {
                                if nested {
                                    // A nested table's rows become part of the enclosing cell.
                                    let line = row.join(" | ");
                                    let (_, outer_cell, _) =
                                        tables.iter_mut().rev().nth(1).expect("nested");
                                    outer_cell.push_str(&line);
                                    outer_cell.push(' ');
                                } else {
                                    rows.push(row);
                                }
                            }
                        }
                    }
                    "tbl" => {
                        if let Some((_, _, rows)) = tables.pop() {
                            write_table(&rows, &mut out);
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}
