//! PPTX (PowerPoint): each slide's text in the order the presentation lists its slides, a
//! slide per page (so chunks carry the slide number), paragraphs as lines, tables as rows of
//! `cell | cell`, then the slide's speaker notes. Slide-number fields are left out.

use quarry_core::{ParseError, ParsedDocument, Parser};
use quick_xml::Reader;
use quick_xml::events::Event;

use super::ooxml::{referenced_char, relationships, resolve};
use super::zip_limits;

pub struct PptxParser;

/// Deeper XML than this is refused rather than walked.
const MAX_DEPTH: usize = 256;
/// Slides read at most.
const MAX_SLIDES: usize = 10_000;

fn malformed(reason: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        format: "pptx",
        reason: reason.into(),
    }
}

impl Parser for PptxParser {
    fn format(&self) -> &'static str {
        "pptx"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let mut archive = zip_limits::open(bytes, "pptx")?;
        let mut read = |name: &str| zip_limits::read_entry(&mut archive, name, "pptx");
        let presentation = read("ppt/presentation.xml")?
            .ok_or_else(|| malformed("no ppt/presentation.xml: not a PowerPoint presentation"))?;
        let relations = read("ppt/_rels/presentation.xml.rels")?
            .ok_or_else(|| malformed("no ppt/_rels/presentation.xml.rels"))?;
        let targets = relationships(&relations, "ppt/_rels/presentation.xml.rels", "pptx")?;
        let order = slide_ids(&presentation)?;
        if order.len() > MAX_SLIDES {
            return Err(malformed(format!(
                "{} slides, over the {MAX_SLIDES} read",
                order.len()
            )));
        }
        let mut doc = ParsedDocument::default();
        for rid in order {
            let Some((target, _)) = targets.get(&rid) else {
                return Err(malformed(format!("slide relationship {rid} is missing")));
            };
            let path = resolve("ppt", target);
            let Some(xml) = read(&path)? else {
                return Err(malformed(format!("{path} is missing")));
            };
            let mut page = text_of(&xml, &path)?;
            // The slide's notes, through the slide's own relationships.
            let (dir, file) = path.rsplit_once('/').unwrap_or(("", &path));
            let rels_path = format!("{dir}/_rels/{file}.rels");
            if let Some(rels) = read(&rels_path)? {
                for (target, kind) in relationships(&rels, &rels_path, "pptx")?.values() {
                    if kind.ends_with("/notesSlide") {
                        let notes_path = resolve(dir, target);
                        if let Some(notes) = read(&notes_path)? {
                            let notes = text_of(&notes, &notes_path)?;
                            if !notes.trim().is_empty() {
                                page.push_str("\nSpeaker notes:\n");
                                page.push_str(&notes);
                            }
                        }
                    }
                }
            }
            doc.page_starts.push(doc.text.len());
            doc.text.push_str(&page);
            doc.text.push('\n');
        }
        if doc.text.trim().is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(doc)
    }
}

/// The relationship ids of the slides, in presentation order (`p:sldIdLst`).
fn slide_ids(xml: &[u8]) -> Result<Vec<String>, ParseError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| malformed(format!("ppt/presentation.xml: {e}")))?
        {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "sldId" => {
                if let Some(id) = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == "id" && a.key.prefix().is_some())
                {
                    out.push(id.value.to_string());
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

/// The text of a slide or notes part: `a:p` paragraphs as lines, `a:tr` table rows as
/// `cell | cell` lines, slide-number fields dropped.
fn text_of(xml: &[u8], name: &str) -> Result<String, ParseError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = String::new();
    let mut para = String::new();
    let mut depth = 0usize;
    let (mut in_text, mut in_field) = (false, false);
    // Cells of the table row being read, and the cell's text.
    let mut row: Option<(Vec<String>, String)> = None;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| malformed(format!("{name}: {e}")))?;
        match event {
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(malformed(format!(
                        "{name}: XML nested more than {MAX_DEPTH} deep"
                    )));
                }
                match e.local_name().as_ref() {
                    "t" => in_text = true,
                    "fld" => {
                        in_field = e.attributes().flatten().any(|a| {
                            a.key.local_name().as_ref() == "type" && a.value.as_ref() == "slidenum"
                        })
                    }
                    "tr" => row = Some((Vec::new(), String::new())),
                    "tc" => {
                        if let Some((_, cell)) = row.as_mut() {
                            cell.clear();
                        }
                    }
                    _ => {}
                }
            }
            Event::Empty(e) if e.local_name().as_ref() == "br" => para.push('\n'),
            Event::Text(t) if in_text && !in_field => para.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text && !in_field => para.push(referenced_char(&r, "pptx")?),
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                match e.local_name().as_ref() {
                    "t" => in_text = false,
                    "fld" => in_field = false,
                    "p" => {
                        let text = para.trim();
                        match row.as_mut() {
                            Some((_, cell)) if !text.is_empty() => {
                                if !cell.is_empty() {
                                    cell.push(' ');
                                }
                                cell.push_str(text);
                            }
                            Some(_) => {}
                            None if !text.is_empty() => {
                                out.push_str(text);
                                out.push('\n');
                            }
                            None => {}
                        }
                        para.clear();
                    }
                    "tc" => {
                        if let Some((cells, cell)) = row.as_mut() {
                            cells.push(std::mem::take(cell));
                        }
                    }
                    "tr" => {
                        if let Some((cells, _)) = row.take() {
                            let line = cells.join(" | ");
                            if !line.trim_matches([' ', '|']).is_empty() {
                                out.push_str(&line);
                                out.push('\n');
                            }
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
