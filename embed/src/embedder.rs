//! The `Embedder` implementation: tokenise, sort by length, pack into token-budget batches,
//! run the encoder, pool and normalise.

use quarry_core::{EmbedError, Embedder, TokenCounter};

use crate::bert::Bert;
use crate::error::LoadError;
use crate::model_files::{ModelFiles, Pooling};
use crate::tokenize::WordPieces;

/// Texts per batch at most, and real tokens per batch at most.
const MAX_BATCH_TEXTS: usize = 64;
const MAX_BATCH_TOKENS: usize = 8192;

pub struct BertEmbedder {
    bert: Bert,
    tokenizer: WordPieces,
    files: ModelFiles,
    threads: usize,
}

impl BertEmbedder {
    pub fn load(files: ModelFiles) -> Result<Self, LoadError> {
        let bert = Bert::load(&files.dir)?;
        let max_seq_length = files
            .max_seq_length
            .min(bert.config.max_position_embeddings);
        let files = ModelFiles {
            max_seq_length,
            ..files
        };
        let tokenizer = WordPieces::load(&files.dir.join("tokenizer.json"), max_seq_length)?;
        let threads = rayon::current_num_threads();
        Ok(Self {
            bert,
            tokenizer,
            files,
            threads,
        })
    }

    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    fn pool(&self, hidden: &[f32], len: usize) -> Vec<f32> {
        let h = self.bert.config.hidden_size;
        let mut out = match self.files.pooling {
            Pooling::Cls => hidden[..h].to_vec(),
            Pooling::Mean => {
                let mut sum = vec![0.0f32; h];
                for row in hidden.chunks_exact(h).take(len) {
                    for (s, v) in sum.iter_mut().zip(row) {
                        *s += v;
                    }
                }
                let inv = 1.0 / len.max(1) as f32;
                sum.iter_mut().for_each(|s| *s *= inv);
                sum
            }
        };
        if self.files.normalize {
            let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            out.iter_mut().for_each(|v| *v /= norm);
        }
        out
    }
}

impl TokenCounter for BertEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.count(text)
    }

    fn max_content_tokens(&self) -> usize {
        self.files.max_seq_length - self.tokenizer.special_tokens
    }
}

impl Embedder for BertEmbedder {
    fn dimension(&self) -> usize {
        self.bert.config.hidden_size
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids = self
            .tokenizer
            .encode_batch(texts)
            .map_err(EmbedError::Tokenizer)?;
        let vocab = self.bert.vocab_size() as u32;
        if let Some(bad) = ids.iter().flatten().find(|&&id| id >= vocab) {
            return Err(EmbedError::Model(format!(
                "token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < order.len()
                && end - start < MAX_BATCH_TEXTS
                && (end == start || tokens + ids[order[end]].len() <= MAX_BATCH_TOKENS)
            {
                tokens += ids[order[end]].len();
                end += 1;
            }
            let batch: Vec<Vec<u32>> = order[start..end].iter().map(|&i| ids[i].clone()).collect();
            let hidden = self.bert.forward(&batch, self.threads);
            let h = self.bert.config.hidden_size;
            let mut row = 0;
            for (&i, seq) in order[start..end].iter().zip(&batch) {
                out[i] = self.pool(&hidden[row * h..(row + seq.len()) * h], seq.len());
                row += seq.len();
            }
            start = end;
        }
        Ok(out)
    }
}
