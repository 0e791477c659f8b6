//! A second, lenient reading of an XLSX sheet for the cells calamine refuses (a number stored
//! as `" 41"`, which Excel and LibreOffice read as 41): the sheet's XML read cell by cell, a
//! number taken trimmed, a value that is no number kept as its text. Styles are not applied,
//! so a date in such a cell reads as its serial number.

use calamine::Data;
use quick_xml::Reader;
use quick_xml::events::Event;

use super::super::ooxml::{relationships, resolve};
use super::super::zip_limits;

/// `"AB12"` → (row 11, column 27), zero-based.
fn position(reference: &str) -> Option<(u32, u32)> {
    let letters = reference
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .count();
    let (col, row) = reference.split_at(letters);
    let col = col.bytes().try_fold(0u32, |n, b| {
        n.checked_mul(26)?
            .checked_add((b.to_ascii_uppercase() - b'A' + 1) as u32)
    })?;
    let row: u32 = row.parse().ok()?;
    Some((row.checked_sub(1)?, col.checked_sub(1)?))
}

/// Every non-empty cell of the sheet named `sheet`, as (row, column, value).
pub fn sheet_cells(bytes: &[u8], sheet: &str) -> Result<Vec<(u32, u32, Data)>, String> {
    let err = |e: quarry_core::ParseError| e.to_string();
    let mut archive = zip_limits::open(bytes, "xlsx").map_err(err)?;
    let mut read = |name: &str| zip_limits::read_entry(&mut archive, name, "xlsx").map_err(err);
    let workbook = read("xl/workbook.xml")?.ok_or("no xl/workbook.xml")?;
    let mut rid = None;
    let mut reader = Reader::from_reader(workbook.as_slice());
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "sheet" => {
                let get = |key: &str, prefixed: bool| {
                    e.attributes()
                        .flatten()
                        .find(|a| {
                            a.key.local_name().as_ref() == key
                                && a.key.prefix().is_some() == prefixed
                        })
                        .map(|a| a.value.to_string())
                };
                if get("name", false).as_deref() == Some(sheet) {
                    rid = get("id", true);
                    break;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let rid = rid.ok_or_else(|| format!("no sheet {sheet} in xl/workbook.xml"))?;
    let rels = read("xl/_rels/workbook.xml.rels")?.ok_or("no xl/_rels/workbook.xml.rels")?;
    let targets = relationships(&rels, "xl/_rels/workbook.xml.rels", "xlsx").map_err(err)?;
    let (target, _) = targets
        .get(&rid)
        .ok_or_else(|| format!("sheet {sheet}'s relationship {rid} is missing"))?;
    let path = resolve("xl", target);
    let xml = read(&path)?.ok_or_else(|| format!("{path} is missing"))?;
    let mut shared = Vec::new();
    if let Some(sst) = read("xl/sharedStrings.xml")? {
        shared = shared_strings(&sst)?;
    }
    let mut cells = Vec::new();
    let mut reader = Reader::from_reader(xml.as_slice());
    let mut buf = Vec::new();
    // The cell being read: its position, its type, its text so far, whether in <v>/<t>.
    let mut cell: Option<((u32, u32), String, String)> = None;
    let mut in_value = false;
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("{path}: {e}"))?
        {
            Event::Start(e) if e.local_name().as_ref() == "c" => {
                let attr = |key: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == key)
                        .map(|a| a.value.to_string())
                };
                cell = attr("r")
                    .and_then(|r| position(&r))
                    .map(|p| (p, attr("t").unwrap_or_default(), String::new()));
            }
            Event::Start(e) if matches!(e.local_name().as_ref(), "v" | "t") => in_value = true,
            Event::End(e) if matches!(e.local_name().as_ref(), "v" | "t") => in_value = false,
            Event::Text(t) if in_value => {
                if let Some((_, _, text)) = cell.as_mut() {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::End(e) if e.local_name().as_ref() == "c" => {
                if let Some(((row, col), kind, text)) = cell.take()
                    && let Some(value) = value(&kind, &text, &shared)
                {
                    cells.push((row, col, value));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(cells)
}

fn value(kind: &str, text: &str, shared: &[String]) -> Option<Data> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match kind {
        "s" => Data::String(shared.get(text.parse::<usize>().ok()?)?.clone()),
        "b" => Data::Bool(text == "1"),
        "str" | "inlineStr" | "e" => Data::String(text.to_owned()),
        _ => text
            .parse::<f64>()
            .map_or_else(|_| Data::String(text.to_owned()), Data::Float),
    })
}

/// The shared strings, each its `<t>` runs joined.
fn shared_strings(xml: &[u8]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut in_text = false;
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("xl/sharedStrings.xml: {e}"))?
        {
            Event::Start(e) if e.local_name().as_ref() == "si" => out.push(String::new()),
            Event::Start(e) if e.local_name().as_ref() == "t" => in_text = true,
            Event::End(e) if e.local_name().as_ref() == "t" => in_text = false,
            Event::Text(t) if in_text => {
                if let Some(s) = out.last_mut() {
                    s.push_str(&t.xml10_content());
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_values() {
        assert_eq!(position("A1"), Some((0, 0)));
        assert_eq!(position("AB12"), Some((11, 27)));
        assert_eq!(position("A0"), None);
        assert_eq!(value("n", " 41", &[]), Some(Data::Float(41.0)));
        assert_eq!(value("", "4 1", &[]), Some(Data::String("4 1".into())));
        assert_eq!(
            value("s", "1", &["a".into(), "b".into()]),
            Some(Data::String("b".into()))
        );
        assert_eq!(value("s", "9", &[]), None);
        assert_eq!(value("b", "1", &[]), Some(Data::Bool(true)));
    }
}
