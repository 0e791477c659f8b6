//! PDF: the text of each page through lopdf's content-stream extraction (simple fonts with
//! their encodings, Type0/CID fonts through their ToUnicode maps), pages kept as pages so
//! chunks carry their page number. Encrypted files open when only an owner password is set;
//! a user password, a file without any text layer, or a broken file fails that document with
//! the reason.

mod cmap;
mod content;
mod encodings;
mod fonts;
mod layout;
mod objects;

use lopdf::Document;
use quarry_core::{ParseError, ParsedDocument, Parser};

use self::content::TextExtractor;

pub struct PdfParser;

/// Decompressed content a page may have, against compression bombs.
const MAX_PAGE_CONTENT: usize = 64 * 1024 * 1024;

fn malformed(reason: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        format: "pdf",
        reason: reason.into(),
    }
}

/// Ligatures spelled out and soft hyphens dropped, so words are searchable.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            '\u{00AD}' | '\u{0000}' => {}
            c => out.push(c),
        }
    }
    out
}

impl Parser for PdfParser {
    fn format(&self) -> &'static str {
        "pdf"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let doc = Document::load_mem(bytes).map_err(|e| {
            let reason = e.to_string();
            if reason.to_ascii_lowercase().contains("decrypt")
                || reason.to_ascii_lowercase().contains("password")
            {
                malformed(format!("encrypted: it needs a password to open ({reason})"))
            } else {
                malformed(reason)
            }
        })?;
        if doc.is_encrypted() {
            return Err(malformed("encrypted: it needs a password to open"));
        }
        let pages = doc.get_pages();
        if pages.is_empty() {
            return Err(malformed("no pages"));
        }
        let mut text = String::new();
        let mut page_starts = Vec::with_capacity(pages.len());
        let mut failures = 0;
        let mut last_error = String::new();
        let mut extractor = TextExtractor::new(&doc, MAX_PAGE_CONTENT);
        for (&number, &page) in &pages {
            page_starts.push(text.len());
            match extractor.page(page) {
                Ok(page) => {
                    text.push_str(clean(&page).trim_end());
                    text.push('\n');
                }
                Err(e) => {
                    failures += 1;
                    last_error = format!("page {number}: {e}");
                }
            }
        }
        if text.trim().is_empty() {
            return Err(if failures > 0 {
                malformed(format!("no page could be read ({last_error})"))
            } else {
                malformed("no text layer (scanned or image-only PDF; OCR it first)")
            });
        }
        if failures > 0 {
            tracing::warn!(failures, %last_error, "PDF pages without readable text were left out");
        }
        Ok(ParsedDocument { text, page_starts })
    }
}

#[cfg(test)]
mod tests {
    use lopdf::content::{Content, Operation};
    use lopdf::{Object, Stream, dictionary};

    use super::*;

    /// A PDF whose pages show the given lines (none: a page with no text).
    fn pdf(pages: &[&[&str]]) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
            "Encoding" => "WinAnsiEncoding",
        });
        let resources_id = doc.add_object(dictionary! {
            "Font" => dictionary! { "F1" => font_id },
        });
        let mut kids = Vec::new();
        for lines in pages {
            let mut ops = vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
            ];
            for (i, line) in lines.iter().enumerate() {
                let y = 700 - 20 * i as i64;
                ops.push(Operation::new(
                    "Td",
                    vec![
                        if i == 0 { 72.into() } else { 0.into() },
                        if i == 0 { y.into() } else { (-20).into() },
                    ],
                ));
                ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            }
            ops.push(Operation::new("ET", vec![]));
            let content = Content { operations: ops };
            let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
            let page_id = doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
                "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            });
            kids.push(page_id.into());
        }
        let count = kids.len() as i64;
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn text_comes_out_page_by_page_with_page_numbers() {
        let bytes = pdf(&[
            &["Kilns fire stoneware."],
            &["Glazes are sieved twice.", "Clay is wedged."],
        ]);
        let doc = PdfParser.parse(&bytes).unwrap();
        assert_eq!(doc.page_starts.len(), 2);
        let second = &doc.text[doc.page_starts[1]..];
        assert!(
            doc.text[..doc.page_starts[1]].contains("Kilns fire stoneware."),
            "{:?}",
            doc.text
        );
        assert!(second.contains("Glazes are sieved twice."), "{second:?}");
        assert!(second.contains("Clay is wedged."), "{second:?}");
        assert_eq!(doc.page_at(doc.text.find("Clay").unwrap()), Some(2));
        assert_eq!(doc.page_at(doc.text.find("Kilns").unwrap()), Some(1));
    }

    #[test]
    fn ligatures_and_soft_hyphens_are_undone() {
        assert_eq!(
            clean("e\u{FB03}cient o\u{FB00}er pro\u{00AD}cess"),
            "efficient offer process"
        );
    }

    #[test]
    fn image_only_truncated_and_garbage_files_fail_with_a_reason() {
        let empty = PdfParser.parse(&pdf(&[&[], &[]])).unwrap_err();
        assert!(empty.to_string().contains("no text layer"), "{empty}");
        let whole = pdf(&[&["Some text here."]]);
        let cut = PdfParser.parse(&whole[..whole.len() / 2]);
        assert!(
            matches!(cut, Err(ParseError::Malformed { format: "pdf", .. })),
            "{cut:?}"
        );
        let junk = PdfParser
            .parse(b"%PDF-1.4\nthis is not a pdf at all")
            .unwrap_err();
        assert!(
            matches!(junk, ParseError::Malformed { format: "pdf", .. }),
            "{junk}"
        );
    }
}
