//! What a parser hands to a chunker.

/// Text extracted from one document. `pages` holds the byte offset at which each page starts
/// (empty for formats without pages), so a chunk's span maps back to a page number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedDocument {
    pub text: String,
    pub page_starts: Vec<usize>,
    /// The pages whose text came from OCR (a scan, an image), in page order.
    pub ocr_pages: Vec<OcrPage>,
    /// What the parser could not read and left out, the document being indexed without it
    /// (`sheet quakes: 1 unreadable cell left out (…)`).
    pub warnings: Vec<String>,
}

/// A page read by OCR, and how sure the engine was of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OcrPage {
    /// 1-based, as [`ParsedDocument::page_at`] numbers pages.
    pub page: u32,
    /// The engine's mean word confidence on the page, 0–100.
    pub confidence: f32,
}

/// How documents are parsed, per data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Tesseract's language codes for OCR (`eng`, `deu`, `chi_sim`, …), tried together.
    pub ocr_languages: Vec<String>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            ocr_languages: vec!["eng".to_owned()],
        }
    }
}

impl ParsedDocument {
    pub fn plain(text: String) -> Self {
        Self {
            text,
            ..Self::default()
        }
    }

    /// 1-based page number of the byte at `offset`, if the document has pages.
    pub fn page_at(&self, offset: usize) -> Option<u32> {
        if self.page_starts.is_empty() {
            return None;
        }
        let idx = self.page_starts.partition_point(|&start| start <= offset);
        Some(idx.max(1) as u32)
    }
}
