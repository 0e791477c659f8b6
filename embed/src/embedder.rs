//! The `Embedder` implementation: tokenise, sort by length, pack into token-budget batches,
//! run the encoder, pool and normalise.

use quarry_core::{EmbedError, Embedder, TokenCounter};

use crate::batching;
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
        batching::check_vocabulary(&ids, self.bert.vocab_size())?;
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let mut out = vec![Vec::new(); texts.len()];
        for order in batching::by_length(&lengths, MAX_BATCH_TEXTS, MAX_BATCH_TOKENS) {
            let batch: Vec<Vec<u32>> = order.iter().map(|&i| ids[i].clone()).collect();
            let hidden = self.bert.forward(&batch, self.threads);
            let h = self.bert.config.hidden_size;
            let mut row = 0;
            for (&i, seq) in order.iter().zip(&batch) {
                out[i] = self.pool(&hidden[row * h..(row + seq.len()) * h], seq.len());
                row += seq.len();
            }
        }
        Ok(out)
    }
}
