//! BERT's forward pass over a batch of token sequences packed end to end (no padding).

use std::path::Path;

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::error::LoadError;
use crate::kernels::{self, Mat};

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f32 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

struct Linear {
    /// Weights transposed to `[in, out]`, row-major.
    w: Vec<f32>,
    b: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value fused into one `[hidden, 3·hidden]` product.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    up: Linear,
    down: Linear,
    output_norm: Norm,
}

/// BertForSequenceClassification's head with one label: the pooler (dense + tanh on the
/// first token) and the classifier, giving one logit per sequence.
pub(crate) struct ClassifierHead {
    pooler: Linear,
    classifier: Linear,
}

impl ClassifierHead {
    /// The logit of a sequence from its first token's hidden state.
    pub fn logit(&self, first: &[f32]) -> f32 {
        let mut pooled = Vec::new();
        linear(&self.pooler, first, 1, 1, &mut pooled);
        pooled.iter_mut().for_each(|v| *v = v.tanh());
        let mut out = Vec::new();
        linear(&self.classifier, &pooled, 1, 1, &mut out);
        out[0]
    }
}

pub(crate) struct Bert {
    pub config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    scratch: std::sync::Mutex<Vec<Scratch>>,
}

struct Weights<'a> {
    tensors: SafeTensors<'a>,
    prefix: &'static str,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let full = format!("{}{name}", self.prefix);
        let bad = |reason: String| LoadError::BadWeight {
            name: full.clone(),
            reason,
        };
        let view = self.tensors.tensor(&full).map_err(|e| bad(e.to_string()))?;
        if view.shape() != shape {
            return Err(bad(format!("shape {:?}, expected {shape:?}", view.shape())));
        }
        match view.dtype() {
            Dtype::F32 => Ok(view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            Dtype::F16 => Ok(view
                .data()
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect()),
            Dtype::BF16 => Ok(view
                .data()
                .chunks_exact(2)
                .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
                .collect()),
            other => Err(bad(format!("unsupported dtype {other:?}"))),
        }
    }

    fn norm(&self, name: &str, width: usize) -> Result<Norm, LoadError> {
        Ok(Norm {
            gamma: self.get(&format!("{name}.weight"), &[width])?,
            beta: self.get(&format!("{name}.bias"), &[width])?,
        })
    }

    /// A linear layer from one or more `[out, in]` weights stacked along `out`.
    fn linear(&self, names: &[&str], inputs: usize, outputs: usize) -> Result<Linear, LoadError> {
        let total = outputs * names.len();
        let mut w = vec![0.0; inputs * total];
        let mut b = Vec::with_capacity(total);
        for (part, name) in names.iter().enumerate() {
            let weight = self.get(&format!("{name}.weight"), &[outputs, inputs])?;
            for o in 0..outputs {
                for i in 0..inputs {
                    w[i * total + part * outputs + o] = weight[o * inputs + i];
                }
            }
            b.extend(self.get(&format!("{name}.bias"), &[outputs])?);
        }
        Ok(Linear {
            w,
            b,
            inputs,
            outputs: total,
        })
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: renormalise.
            let shift = f.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | ((f << shift) & 0x3ff) << 13
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

impl Bert {
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        Ok(Self::load_parts(dir, false)?.0)
    }

    /// The encoder and its sequence-classification head (`bert.pooler.dense`, `classifier`,
    /// one output).
    pub fn load_with_head(dir: &Path) -> Result<(Self, ClassifierHead), LoadError> {
        let (bert, head) = Self::load_parts(dir, true)?;
        let head = head.ok_or_else(|| LoadError::BadWeight {
            name: "classifier".into(),
            reason: "missing".into(),
        })?;
        Ok((bert, head))
    }

    fn load_parts(
        dir: &Path,
        with_head: bool,
    ) -> Result<(Self, Option<ClassifierHead>), LoadError> {
        let config: BertConfig = crate::model_files::read_json(&dir.join("config.json"))?
            .ok_or_else(|| LoadError::NotFound(dir.join("config.json")))?;
        if config.hidden_act != "gelu" {
            return Err(LoadError::BadFile {
                path: dir.join("config.json"),
                reason: format!(
                    "hidden_act {:?} is not supported (only \"gelu\")",
                    config.hidden_act
                ),
            });
        }
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|e| LoadError::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| LoadError::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let prefix = if tensors.tensor("embeddings.word_embeddings.weight").is_ok() {
            ""
        } else {
            "bert."
        };
        let mut w = Weights { tensors, prefix };
        let h = config.hidden_size;
        let vocab = w
            .tensors
            .tensor(&format!("{prefix}embeddings.word_embeddings.weight"))
            .map_err(|e| LoadError::BadWeight {
                name: "embeddings.word_embeddings.weight".into(),
                reason: e.to_string(),
            })?
            .shape()[0];
        let type_vocab = w
            .tensors
            .tensor(&format!("{prefix}embeddings.token_type_embeddings.weight"))
            .map(|t| t.shape()[0])
            .unwrap_or(2);
        let layers = (0..config.num_hidden_layers)
            .map(|l| {
                let p = format!("encoder.layer.{l}");
                Ok(Layer {
                    qkv: w.linear(
                        &[
                            &format!("{p}.attention.self.query"),
                            &format!("{p}.attention.self.key"),
                            &format!("{p}.attention.self.value"),
                        ],
                        h,
                        h,
                    )?,
                    attention_out: w.linear(&[&format!("{p}.attention.output.dense")], h, h)?,
                    attention_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                    up: w.linear(
                        &[&format!("{p}.intermediate.dense")],
                        h,
                        config.intermediate_size,
                    )?,
                    down: w.linear(&[&format!("{p}.output.dense")], config.intermediate_size, h)?,
                    output_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let bert = Self {
            word: w.get("embeddings.word_embeddings.weight", &[vocab, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type: w.get("embeddings.token_type_embeddings.weight", &[type_vocab, h])?,
            embedding_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            config,
            scratch: std::sync::Mutex::new(Vec::new()),
        };
        if !with_head {
            return Ok((bert, None));
        }
        let pooler = w.linear(&["pooler.dense"], h, h)?;
        // The classifier sits beside the encoder, not inside it.
        w.prefix = "";
        let classifier = w.linear(&["classifier"], h, 1)?;
        Ok((bert, Some(ClassifierHead { pooler, classifier })))
    }

    pub fn vocab_size(&self) -> usize {
        self.word.len() / self.config.hidden_size
    }

    /// Hidden states of the last layer for every token of every sequence, packed: the rows
    /// of sequence `i` follow those of sequence `i - 1`.
    pub fn forward(&self, sequences: &[Vec<u32>], threads: usize) -> Vec<f32> {
        self.forward_typed(sequences, None, threads)
    }

    /// [`Self::forward`] with each token's segment (token type): a pair's second text is
    /// segment 1. `None`: every token is segment 0.
    pub fn forward_typed(
        &self,
        sequences: &[Vec<u32>],
        types: Option<&[Vec<u32>]>,
        threads: usize,
    ) -> Vec<f32> {
        let h = self.config.hidden_size;
        let type_vocab = self.token_type.len() / h;
        let total: usize = sequences.iter().map(Vec::len).sum();
        let mut x = vec![0.0f32; total * h];
        let mut row = 0;
        for (s, seq) in sequences.iter().enumerate() {
            for (pos, &id) in seq.iter().enumerate() {
                let out = &mut x[row * h..(row + 1) * h];
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                let kind = types
                    .and_then(|t| t.get(s))
                    .and_then(|t| t.get(pos))
                    .map_or(0, |&t| (t as usize).min(type_vocab - 1));
                let segment = &self.token_type[kind * h..(kind + 1) * h];
                for (((o, a), b), c) in out.iter_mut().zip(word).zip(position).zip(segment) {
                    *o = a + b + c;
                }
                row += 1;
            }
        }
        let eps = self.config.layer_norm_eps;
        kernels::add_layer_norm(
            &mut x,
            None,
            &self.embedding_norm.gamma,
            &self.embedding_norm.beta,
            eps,
        );
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let mut s = self.take_scratch();
        for layer in &self.layers {
            linear(&layer.qkv, &x, total, threads, &mut s.qkv);
            self.attention(&s.qkv, &lengths, &mut s.context);
            linear(
                &layer.attention_out,
                &s.context,
                total,
                threads,
                &mut s.attended,
            );
            kernels::add_layer_norm(
                &mut x,
                Some(&s.attended),
                &layer.attention_norm.gamma,
                &layer.attention_norm.beta,
                eps,
            );
            linear(&layer.up, &x, total, threads, &mut s.up);
            kernels::gelu(&mut s.up);
            linear(&layer.down, &s.up, total, threads, &mut s.down);
            kernels::add_layer_norm(
                &mut x,
                Some(&s.down),
                &layer.output_norm.gamma,
                &layer.output_norm.beta,
                eps,
            );
        }
        self.return_scratch(s);
        x
    }

    /// Buffers from an earlier forward pass, so big activations are not mapped afresh (and
    /// page-faulted in) every layer of every batch.
    fn take_scratch(&self) -> Scratch {
        self.scratch
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default()
    }

    fn return_scratch(&self, s: Scratch) {
        if let Ok(mut pool) = self.scratch.lock()
            && pool.len() < 2
        {
            pool.push(s);
        }
    }

    /// Multi-head self-attention of each sequence over itself only, into `context`.
    fn attention(&self, qkv: &[f32], lengths: &[usize], context: &mut Vec<f32>) {
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let d = h / heads;
        let stride = 3 * h;
        let scale = 1.0 / (d as f32).sqrt();
        let starts: Vec<usize> = lengths
            .iter()
            .scan(0, |acc, &len| {
                let start = *acc;
                *acc += len;
                Some(start)
            })
            .collect();
        let tasks: Vec<(usize, usize)> = (0..lengths.len())
            .flat_map(|s| (0..heads).map(move |head| (s, head)))
            .collect();
        let outputs: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(s, head)| {
                let (start, len) = (starts[s], lengths[s]);
                let base = start * stride + head * d;
                let q = Mat {
                    data: &qkv[base..],
                    rows: len,
                    cols: d,
                    row_stride: stride,
                    col_stride: 1,
                };
                let k_t = Mat::transposed(&qkv[base + h..], len, d, stride);
                let mut scores = vec![0.0f32; len * len];
                kernels::matmul(q, k_t, &mut scores, len, false, 1);
                let mut inv_sums = vec![0.0f32; len];
                kernels::softmax_numerators(&mut scores, len, scale, &mut inv_sums);
                let v = Mat {
                    data: &qkv[base + 2 * h..],
                    rows: len,
                    cols: d,
                    row_stride: stride,
                    col_stride: 1,
                };
                let mut out = vec![0.0f32; len * d];
                kernels::matmul(Mat::row_major(&scores, len, len), v, &mut out, d, false, 1);
                for (row, inv) in out.chunks_exact_mut(d).zip(inv_sums) {
                    row.iter_mut().for_each(|x| *x *= inv);
                }
                out
            })
            .collect();
        let total: usize = lengths.iter().sum();
        context.clear();
        context.resize(total * h, 0.0);
        for (&(s, head), out) in tasks.iter().zip(outputs) {
            for (i, row) in out.chunks_exact(d).enumerate() {
                let at = (starts[s] + i) * h + head * d;
                context[at..at + d].copy_from_slice(row);
            }
        }
    }
}

/// Activations of one forward pass, kept between passes.
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
}

/// `y = x · W + b` for `rows` rows.
fn linear(layer: &Linear, x: &[f32], rows: usize, threads: usize, y: &mut Vec<f32>) {
    y.clear();
    for _ in 0..rows {
        y.extend_from_slice(&layer.b);
    }
    kernels::matmul(
        Mat::row_major(x, rows, layer.inputs),
        Mat::row_major(&layer.w, layer.inputs, layer.outputs),
        y,
        layer.outputs,
        true,
        threads,
    );
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_precision_converts() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0003), 3.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }
}
