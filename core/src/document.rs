//! What a parser hands to a chunker.

/// Text extracted from one document. `pages` holds the byte offset at which each page starts
/// (empty for formats without pages), so a chunk's span maps back to a page number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedDocument {
    pub text: String,
    pub page_starts: Vec<usize>,
}

impl ParsedDocument {
    pub fn plain(text: String) -> Self {
        Self {
            text,
            page_starts: Vec::new(),
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
