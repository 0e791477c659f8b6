//! The model's own WordPiece tokenizer, set to truncate at the model's limit and not pad.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::LoadError;

/// A pair's token ids and each token's segment.
pub(crate) type EncodedPair = (Vec<u32>, Vec<u32>);

pub(crate) struct WordPieces {
    inner: Tokenizer,
    /// The same tokenizer without truncation, for counting.
    counter: Tokenizer,
    /// Special tokens added per input ([CLS] and [SEP] for BERT).
    pub special_tokens: usize,
}

impl WordPieces {
    pub fn load(path: &Path, max_seq_length: usize) -> Result<Self, LoadError> {
        let bad = |reason: String| LoadError::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let mut inner = Tokenizer::from_file(path).map_err(|e| bad(e.to_string()))?;
        // tokenizer.json of sentence-transformers models often pads to a fixed length and
        // truncates short; the model's max_seq_length is what counts.
        inner.with_padding(None);
        let mut counter = inner.clone();
        counter
            .with_truncation(None)
            .map_err(|e| bad(e.to_string()))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| bad(e.to_string()))?;
        let special_tokens = inner
            .encode("", true)
            .map_err(|e| bad(e.to_string()))?
            .len();
        Ok(Self {
            inner,
            counter,
            special_tokens,
        })
    }

    /// Token ids with special tokens, truncated to the model's limit.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, String> {
        let encodings = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| e.to_string())?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// Each pair as one input (`[CLS] a [SEP] b [SEP]` for BERT, as the tokenizer's template
    /// says), truncated longest-first to the model's limit: the token ids and each token's
    /// segment (0 for the first text, 1 for the second).
    pub fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<EncodedPair>, String> {
        let inputs: Vec<tokenizers::EncodeInput> =
            pairs.iter().map(|&(a, b)| (a, b).into()).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| e.to_string())?;
        Ok(encodings
            .into_iter()
            .map(|e| (e.get_ids().to_vec(), e.get_type_ids().to_vec()))
            .collect())
    }

    /// Word pieces in `text`, without special tokens and without truncation.
    pub fn count(&self, text: &str) -> usize {
        self.counter
            .encode_fast(text, false)
            .map(|e| e.len())
            .unwrap_or_else(|_| text.split_whitespace().count())
    }
}
