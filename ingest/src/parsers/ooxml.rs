//! Office Open XML packages (PPTX, XLSX): the relationships that say where a part's parts
//! are, and their targets resolved to paths in the zip.

use std::collections::HashMap;

use quarry_core::ParseError;
use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};

fn malformed(format: &'static str, reason: String) -> ParseError {
    ParseError::Malformed { format, reason }
}

/// The character an entity or character reference in a text run stands for (`&amp;`,
/// `&#8364;`); an unknown entity reads as a space.
pub fn referenced_char(r: &BytesRef<'_>, format: &'static str) -> Result<char, ParseError> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| malformed(format, e.to_string()))?
    {
        return Ok(c);
    }
    Ok(match r.xml10_content().as_ref() {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => ' ',
    })
}

/// `base/../x/y.xml` → `x/y.xml`; an absolute target (`/ppt/…`) is taken as it is.
pub fn resolve(base: &str, target: &str) -> String {
    if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_owned();
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// A relationships part: id → (target, type).
pub fn relationships(
    xml: &[u8],
    name: &str,
    format: &'static str,
) -> Result<HashMap<String, (String, String)>, ParseError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = HashMap::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| malformed(format, format!("{name}: {e}")))?
        {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "Relationship" => {
                let get = |key: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == key)
                        .map(|a| a.value.to_string())
                };
                if let (Some(id), Some(target)) = (get("Id"), get("Target")) {
                    out.insert(id, (target, get("Type").unwrap_or_default()));
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
    fn targets_resolve_against_their_part() {
        assert_eq!(resolve("ppt", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert_eq!(
            resolve("ppt/slides", "../notesSlides/notesSlide1.xml"),
            "ppt/notesSlides/notesSlide1.xml"
        );
        assert_eq!(resolve("ppt/slides", "/ppt/x.xml"), "ppt/x.xml");
    }
}
