//! PDF: lopdf reads the file (objects, streams, decryption); the text of each page comes from
//! running its content streams ourselves (`content.rs`), decoding fonts (`fonts.rs`,
//! `cmap.rs`, `encodings.rs`) and laying glyphs out into words and lines (`layout.rs`). Pages
//! stay pages so chunks carry their page number. Encrypted files open when only an owner password is set;
//! a user password or a broken file fails that document with the reason. Pages without a text
//! layer but with an image (scans) are rendered and read by OCR (`../ocr/`).

mod cmap;
mod content;
mod encodings;
mod fonts;
mod layout;
mod objects;
mod tables;

use lopdf::Document;
use quarry_core::{OcrPage, ParseError, ParseOptions, ParsedDocument, Parser};

use self::content::TextExtractor;
use super::ocr;

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

/// A page with fewer readable characters than this, and an image on it, is read by OCR.
const MIN_TEXT_CHARS: usize = 16;

impl Parser for PdfParser {
    fn format(&self) -> &'static str {
        "pdf"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        self.parse_with(bytes, &ParseOptions::default())
    }

    fn parse_with(
        &self,
        bytes: &[u8],
        options: &ParseOptions,
    ) -> Result<ParsedDocument, ParseError> {
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
        let mut texts: Vec<Option<String>> = Vec::with_capacity(pages.len());
        let mut failures = 0;
        let mut last_error = String::new();
        let mut extractor = TextExtractor::new(&doc, MAX_PAGE_CONTENT);
        for (&number, &page) in &pages {
            match extractor.page(page) {
                Ok(page) => texts.push(Some(clean(&page).trim_end().to_owned())),
                Err(e) => {
                    failures += 1;
                    last_error = format!("page {number}: {e}");
                    texts.push(None);
                }
            }
        }
        // Pages with (nearly) no text but an image are scans; when no page has any text at
        // all, every page is tried (its images may sit inside forms).
        let chars = |t: &Option<String>| {
            t.as_ref()
                .map_or(0, |t| t.chars().filter(|c| !c.is_whitespace()).count())
        };
        let has_text = |t: &Option<String>| chars(t) >= MIN_TEXT_CHARS;
        let none_has_text = texts.iter().all(|t| chars(t) == 0);
        let scans: Vec<u32> = pages
            .iter()
            .zip(&texts)
            .enumerate()
            .filter(|(_, ((_, id), text))| {
                !has_text(text)
                    && (none_has_text
                        || doc
                            .get_page_images(**id)
                            .is_ok_and(|images| !images.is_empty()))
            })
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let mut ocr_failure = None;
        let mut ocr_pages = Vec::new();
        if !scans.is_empty() {
            match ocr::read_pdf_pages(bytes, &scans, options) {
                Ok(read) => {
                    for (page, result) in read {
                        match result {
                            // OCR wins over a few stray characters (a scanner's page number).
                            Ok(t)
                                if t.text.chars().filter(|c| !c.is_whitespace()).count()
                                    > chars(&texts[page as usize - 1]) =>
                            {
                                texts[page as usize - 1] = Some(t.text);
                                ocr_pages.push(OcrPage {
                                    page,
                                    confidence: t.confidence,
                                });
                            }
                            Ok(_) => {}
                            Err(e) => ocr_failure = Some(format!("page {page}: {e}")),
                        }
                    }
                }
                Err(e) => ocr_failure = Some(e),
            }
        }
        let mut text = String::new();
        let mut page_starts = Vec::with_capacity(pages.len());
        for page in &texts {
            page_starts.push(text.len());
            if let Some(page) = page {
                text.push_str(page);
                text.push('\n');
            }
        }
        if text.trim().is_empty() {
            return Err(match (&ocr_failure, failures) {
                (Some(ocr), _) => malformed(format!("no text layer, and OCR failed: {ocr}")),
                (None, 0) if !scans.is_empty() => {
                    malformed("no text layer, and OCR found no text on its pages")
                }
                (None, 0) => malformed("no text layer and no images to read"),
                (None, _) => malformed(format!("no page could be read ({last_error})")),
            });
        }
        if failures > 0 {
            tracing::warn!(failures, %last_error, "PDF pages without readable text were left out");
        }
        if let Some(ocr) = ocr_failure {
            tracing::warn!(%ocr, "scanned PDF pages OCR could not read were left out");
        }
        Ok(ParsedDocument {
            text,
            page_starts,
            ocr_pages,
            ..ParsedDocument::default()
        })
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
