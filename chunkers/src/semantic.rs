//! `SEMANTIC`: chunk boundaries where the meaning changes. Each sentence is embedded with
//! `buffer_size` sentences either side; where the cosine distance between neighbouring
//! groups is above the `breakpoint_percentile_threshold`-th percentile of the document's
//! distances, a chunk ends. Pieces longer than `max_tokens` are packed further by sentence.

use std::ops::Range;
use std::sync::Arc;

use quarry_core::{Chunk, Chunker, Embedder, ParsedDocument, TokenCounter};

use crate::SentencePacker;
use crate::sentences::sentence_spans;

pub struct Semantic {
    max_tokens: usize,
    buffer_size: usize,
    percentile: u8,
    embedder: Arc<dyn Embedder>,
    packer: SentencePacker,
}

impl Semantic {
    pub fn new(
        max_tokens: usize,
        buffer_size: usize,
        breakpoint_percentile_threshold: u8,
        embedder: Arc<dyn Embedder>,
    ) -> Self {
        let counter: Arc<dyn TokenCounter> = embedder.clone();
        Self {
            max_tokens,
            buffer_size,
            percentile: breakpoint_percentile_threshold,
            packer: SentencePacker::with_overlap_tokens(max_tokens, 0, counter),
            embedder,
        }
    }

    /// Where chunks should end: indexes `i` such that a chunk ends after sentence `i`.
    fn breakpoints(&self, text: &str, sentences: &[Range<usize>]) -> Option<Vec<usize>> {
        let n = sentences.len();
        let groups: Vec<&str> = (0..n)
            .map(|i| {
                let first = i.saturating_sub(self.buffer_size);
                let last = (i + self.buffer_size).min(n - 1);
                &text[sentences[first].start..sentences[last].end]
            })
            .collect();
        let vectors = match self.embedder.embed(&groups) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "semantic chunking: embedding sentences failed; packing by size instead");
                return None;
            }
        };
        let distances: Vec<f32> = vectors
            .windows(2)
            .map(|pair| {
                1.0 - pair[0]
                    .iter()
                    .zip(&pair[1])
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
            })
            .collect();
        let threshold = percentile(&distances, self.percentile);
        Some(
            distances
                .iter()
                .enumerate()
                .filter(|(_, d)| **d > threshold)
                .map(|(i, _)| i)
                .collect(),
        )
    }
}

/// The `p`-th percentile of `values`, interpolating linearly between ranks (as numpy does).
pub fn percentile(values: &[f32], p: u8) -> f32 {
    if values.is_empty() {
        return f32::INFINITY;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let rank = f32::from(p) / 100.0 * (sorted.len() - 1) as f32;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f32)
}

impl Chunker for Semantic {
    fn chunk(&self, document: &ParsedDocument) -> Vec<Chunk> {
        let text = &document.text;
        let sentences = sentence_spans(text);
        if sentences.len() < 2 {
            return self.packer.chunk(document);
        }
        let Some(breaks) = self.breakpoints(text, &sentences) else {
            return self.packer.chunk(document);
        };
        let mut chunks = Vec::new();
        let mut first = 0;
        for end in breaks.into_iter().chain([sentences.len() - 1]) {
            let span = sentences[first].start..sentences[end].end;
            let piece = &text[span.clone()];
            if self.embedder.count_tokens(piece) <= self.max_tokens {
                chunks.push(Chunk {
                    text: piece.to_owned(),
                    page: document.page_at(span.start),
                    span,
                    parent: None,
                });
            } else {
                chunks.extend(self.packer.chunk_range(document, span));
            }
            first = end + 1;
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [0.1, 0.4, 0.2, 0.3];
        assert!((percentile(&v, 50) - 0.25).abs() < 1e-6);
        assert!((percentile(&v, 95) - 0.385).abs() < 1e-6);
        assert!((percentile(&v, 99) - 0.397).abs() < 1e-6);
    }
}
