//! `DEFAULT` and `FIXED_SIZE`: whole sentences packed into chunks of at most `max_tokens`,
//! each chunk starting with the last sentences of the one before (the overlap). A sentence
//! longer than a chunk is split between words.

use std::ops::Range;
use std::sync::Arc;

use quarry_core::{Chunk, Chunker, ParsedDocument, TokenCounter};

use crate::sentences::sentence_spans;

pub struct SentencePacker {
    max_tokens: usize,
    overlap_tokens: usize,
    counter: Arc<dyn TokenCounter>,
}

struct Unit {
    span: Range<usize>,
    tokens: usize,
}

impl SentencePacker {
    pub fn new(max_tokens: usize, overlap_percentage: u8, counter: Arc<dyn TokenCounter>) -> Self {
        let overlap_tokens = max_tokens * usize::from(overlap_percentage) / 100;
        Self::with_overlap_tokens(max_tokens, overlap_tokens, counter)
    }

    pub fn with_overlap_tokens(
        max_tokens: usize,
        overlap_tokens: usize,
        counter: Arc<dyn TokenCounter>,
    ) -> Self {
        Self {
            max_tokens: max_tokens.max(1),
            overlap_tokens,
            counter,
        }
    }

    /// Sentences of `text[range]` (spans into `text`), each no longer than a chunk.
    fn units(&self, text: &str, range: Range<usize>) -> Vec<Unit> {
        let mut units = Vec::new();
        for local in sentence_spans(&text[range.clone()]) {
            let span = range.start + local.start..range.start + local.end;
            let tokens = self.counter.count_tokens(&text[span.clone()]);
            if tokens <= self.max_tokens {
                units.push(Unit { span, tokens });
            } else {
                self.split_long(text, span, &mut units);
            }
        }
        units
    }

    /// Splits an over-long sentence between words (or, for a single giant word, between
    /// characters) into pieces no longer than a chunk.
    fn split_long(&self, text: &str, span: Range<usize>, units: &mut Vec<Unit>) {
        let mut piece: Option<Unit> = None;
        for word in words(text, span) {
            let tokens = self.counter.count_tokens(&text[word.clone()]);
            if tokens > self.max_tokens {
                units.extend(piece.take());
                self.split_word(text, word, units);
                continue;
            }
            match &mut piece {
                Some(p) if p.tokens + tokens <= self.max_tokens => {
                    p.span.end = word.end;
                    p.tokens += tokens;
                }
                _ => {
                    units.extend(piece.take());
                    piece = Some(Unit { span: word, tokens });
                }
            }
        }
        units.extend(piece);
    }

    fn split_word(&self, text: &str, word: Range<usize>, units: &mut Vec<Unit>) {
        let mut start = word.start;
        while start < word.end {
            // Grow the piece one character at a time would be slow; halve until it fits.
            let mut end = word.end;
            let mut tokens = self.counter.count_tokens(&text[start..end]);
            while tokens > self.max_tokens {
                let mut mid = start + (end - start) / 2;
                while !text.is_char_boundary(mid) {
                    mid += 1;
                }
                if mid >= end || mid == start {
                    break;
                }
                end = mid;
                tokens = self.counter.count_tokens(&text[start..end]);
            }
            units.push(Unit {
                span: start..end,
                tokens,
            });
            start = end;
        }
    }
}

fn words(text: &str, span: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
    let slice = &text[span.clone()];
    slice.split_whitespace().map(move |w| {
        let offset = w.as_ptr() as usize - slice.as_ptr() as usize;
        span.start + offset..span.start + offset + w.len()
    })
}

impl Chunker for SentencePacker {
    fn chunk(&self, document: &ParsedDocument) -> Vec<Chunk> {
        self.chunk_range(document, 0..document.text.len())
    }
}

impl SentencePacker {
    /// Chunks of the part `range` of the document (spans still into the whole text).
    pub fn chunk_range(&self, document: &ParsedDocument, range: Range<usize>) -> Vec<Chunk> {
        let text = &document.text;
        let units = self.units(text, range);
        let mut chunks = Vec::new();
        let mut first = 0;
        while first < units.len() {
            let mut end = first;
            let mut tokens = 0;
            while end < units.len() && tokens + units[end].tokens <= self.max_tokens {
                tokens += units[end].tokens;
                end += 1;
            }
            end = end.max(first + 1);
            // Counting sentence by sentence can differ from counting the joined text; the
            // joined count is what the encoder will see.
            while end > first + 1
                && self
                    .counter
                    .count_tokens(&text[units[first].span.start..units[end - 1].span.end])
                    > self.max_tokens
            {
                end -= 1;
            }
            let span = units[first].span.start..units[end - 1].span.end;
            chunks.push(Chunk {
                text: text[span.clone()].to_owned(),
                page: document.page_at(span.start),
                span,
                parent: None,
            });
            if end == units.len() {
                break;
            }
            let mut next = end;
            let mut overlap = 0;
            while next > first + 1 && overlap + units[next - 1].tokens <= self.overlap_tokens {
                overlap += units[next - 1].tokens;
                next -= 1;
            }
            first = next;
        }
        chunks
    }
}
