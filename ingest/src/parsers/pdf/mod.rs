//! PDF: lopdf reads the file (objects, streams, decryption); the text of each page comes from
//! running its content streams ourselves (`content.rs`), decoding fonts (`fonts.rs`,
//! `cmap.rs`, `encodings.rs`) and laying glyphs out into words and lines (`layout.rs`). Pages
//! stay pages so chunks carry their page number. Encrypted files open when only an owner password is set;
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
    use super::*;

    #[test]
    fn ligatures_and_soft_hyphens_are_undone() {
        assert_eq!(
            clean("e\u{FB03}cient o\u{FB00}er pro\u{00AD}cess"),
            "efficient offer process"
        );
    }
}
