//! The cross-encoder against a plain f64 forward pass written out below, on small random
//! weights saved the way a sentence-transformers `CrossEncoder` folder holds them
//! (BertForSequenceClassification, one label). No real cross-encoder weights can be fetched
//! on the machines this runs on; this checks the numerics, and the API's reranking path is
//! tested with the `rerank-api` kind.

use std::collections::BTreeMap;
use std::path::Path;

use quarry_embed::{Activation, CrossEncoder};
use safetensors::{Dtype, tensor::TensorView};
use serde_json::json;

const HIDDEN: usize = 16;
const HEADS: usize = 4;
const LAYERS: usize = 2;
const INTERMEDIATE: usize = 24;
const POSITIONS: usize = 64;
const EPS: f64 = 1e-12;

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "what", "charges", "a", "battery", "the", "phone", "is",
    "red", "lithium", "cells", "store", "energy", "##s", "cat", "sat", "on", "mat", "?", ".",
];

/// A small deterministic generator, so a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn values(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// Every weight by its name in the folder, with its shape.
struct Weights(BTreeMap<String, (Vec<usize>, Vec<f64>)>);

impl Weights {
    fn random(seed: u64) -> Self {
        let mut rng = Lcg(seed);
        let mut w = BTreeMap::new();
        let mut put = |name: &str, shape: Vec<usize>, scale: f64, offset: f64| {
            let n = shape.iter().product();
            let values = rng
                .values(n, scale)
                .into_iter()
                .map(|v| v + offset)
                .collect();
            w.insert(name.to_string(), (shape, values));
        };
        let h = HIDDEN;
        put(
            "bert.embeddings.word_embeddings.weight",
            vec![VOCAB.len(), h],
            0.5,
            0.0,
        );
        put(
            "bert.embeddings.position_embeddings.weight",
            vec![POSITIONS, h],
            0.5,
            0.0,
        );
        put(
            "bert.embeddings.token_type_embeddings.weight",
            vec![2, h],
            0.5,
            0.0,
        );
        put("bert.embeddings.LayerNorm.weight", vec![h], 0.2, 1.0);
        put("bert.embeddings.LayerNorm.bias", vec![h], 0.1, 0.0);
        for l in 0..LAYERS {
            let p = format!("bert.encoder.layer.{l}");
            for (name, out, inp) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", INTERMEDIATE, h),
                ("output.dense", h, INTERMEDIATE),
            ] {
                put(&format!("{p}.{name}.weight"), vec![out, inp], 0.4, 0.0);
                put(&format!("{p}.{name}.bias"), vec![out], 0.1, 0.0);
            }
            for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
                put(&format!("{p}.{norm}.weight"), vec![h], 0.2, 1.0);
                put(&format!("{p}.{norm}.bias"), vec![h], 0.1, 0.0);
            }
        }
        put("bert.pooler.dense.weight", vec![h, h], 0.5, 0.0);
        put("bert.pooler.dense.bias", vec![h], 0.1, 0.0);
        put("classifier.weight", vec![1, h], 1.0, 0.0);
        put("classifier.bias", vec![1], 0.5, 0.0);
        Self(w)
    }

    fn get(&self, name: &str) -> &[f64] {
        &self.0[name].1
    }

    fn save(&self, path: &Path) {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .0
            .iter()
            .map(|(name, (shape, values))| {
                let data = values
                    .iter()
                    .flat_map(|&v| (v as f32).to_le_bytes())
                    .collect();
                (name.clone(), shape.clone(), data)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = bytes
            .iter()
            .map(|(name, shape, data)| {
                (
                    name.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
                )
            })
            .collect();
        std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    /// The stored f32 values, widened: what the model really holds.
    fn stored(&self, name: &str) -> Vec<f64> {
        self.get(name)
            .iter()
            .map(|&v| f64::from(v as f32))
            .collect()
    }

    /// `x · Wᵀ + b` for one row, in f64.
    fn dense(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let w = self.stored(&format!("{name}.weight"));
        let b = self.stored(&format!("{name}.bias"));
        let inputs = x.len();
        b.iter()
            .enumerate()
            .map(|(o, bias)| bias + (0..inputs).map(|i| w[o * inputs + i] * x[i]).sum::<f64>())
            .collect()
    }

    fn layer_norm(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let gamma = self.stored(&format!("{name}.weight"));
        let beta = self.stored(&format!("{name}.bias"));
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let inv = 1.0 / (var + EPS).sqrt();
        x.iter()
            .zip(gamma.iter().zip(&beta))
            .map(|(v, (g, b))| (v - mean) * inv * g + b)
            .collect()
    }

    /// BertForSequenceClassification's logit for one sequence, written out plainly in f64.
    fn logit(&self, ids: &[u32], types: &[u32]) -> f64 {
        let h = HIDDEN;
        let word = self.stored("bert.embeddings.word_embeddings.weight");
        let position = self.stored("bert.embeddings.position_embeddings.weight");
        let token_type = self.stored("bert.embeddings.token_type_embeddings.weight");
        let mut x: Vec<Vec<f64>> = ids
            .iter()
            .zip(types)
            .enumerate()
            .map(|(pos, (&id, &t))| {
                let sum: Vec<f64> = (0..h)
                    .map(|j| {
                        word[id as usize * h + j]
                            + position[pos * h + j]
                            + token_type[t as usize * h + j]
                    })
                    .collect();
                self.layer_norm("bert.embeddings.LayerNorm", &sum)
            })
            .collect();
        let d = h / HEADS;
        for l in 0..LAYERS {
            let p = format!("bert.encoder.layer.{l}");
            let q: Vec<Vec<f64>> = x
                .iter()
                .map(|r| self.dense(&format!("{p}.attention.self.query"), r))
                .collect();
            let k: Vec<Vec<f64>> = x
                .iter()
                .map(|r| self.dense(&format!("{p}.attention.self.key"), r))
                .collect();
            let v: Vec<Vec<f64>> = x
                .iter()
                .map(|r| self.dense(&format!("{p}.attention.self.value"), r))
                .collect();
            let mut context = vec![vec![0.0; h]; x.len()];
            for head in 0..HEADS {
                let cols = head * d..(head + 1) * d;
                for i in 0..x.len() {
                    let scores: Vec<f64> = (0..x.len())
                        .map(|j| {
                            cols.clone().map(|c| q[i][c] * k[j][c]).sum::<f64>() / (d as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = exps.iter().sum();
                    for c in cols.clone() {
                        context[i][c] =
                            (0..x.len()).map(|j| exps[j] / total * v[j][c]).sum::<f64>();
                    }
                }
            }
            for (row, ctx) in x.iter_mut().zip(&context) {
                let attended = self.dense(&format!("{p}.attention.output.dense"), ctx);
                let sum: Vec<f64> = row.iter().zip(&attended).map(|(a, b)| a + b).collect();
                *row = self.layer_norm(&format!("{p}.attention.output.LayerNorm"), &sum);
                let up: Vec<f64> = self
                    .dense(&format!("{p}.intermediate.dense"), row)
                    .into_iter()
                    .map(gelu)
                    .collect();
                let down = self.dense(&format!("{p}.output.dense"), &up);
                let sum: Vec<f64> = row.iter().zip(&down).map(|(a, b)| a + b).collect();
                *row = self.layer_norm(&format!("{p}.output.LayerNorm"), &sum);
            }
        }
        let pooled: Vec<f64> = self
            .dense("bert.pooler.dense", &x[0])
            .into_iter()
            .map(f64::tanh)
            .collect();
        self.dense("classifier", &pooled)[0]
    }
}

/// Exact GELU, `x·Φ(x)`, with erf from its series (|x| is small here).
fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn erf(x: f64) -> f64 {
    if x.abs() > 5.0 {
        return x.signum();
    }
    // Maclaurin series: 2/√π · Σ (-1)^n x^(2n+1) / (n! (2n+1)).
    let mut sum = 0.0f64;
    let mut term = x;
    let mut n = 0.0f64;
    while term.abs() > 1e-17 * sum.abs().max(1e-300) || n < 3.0 {
        sum += term / (2.0 * n + 1.0);
        n += 1.0;
        term *= -x * x / n;
        if n > 200.0 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn tokenizer_json() -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = VOCAB[..4]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true,
                       "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

fn write_folder(dir: &Path, weights: &Weights, extra_config: serde_json::Value) {
    let mut config = json!({
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2,
        "vocab_size": VOCAB.len(),
        "hidden_act": "gelu",
        "layer_norm_eps": EPS,
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0}
    });
    for (k, v) in extra_config.as_object().unwrap() {
        config[k] = v.clone();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json().to_string()).unwrap();
    weights.save(&dir.join("model.safetensors"));
}

fn id(token: &str) -> u32 {
    VOCAB.iter().position(|t| *t == token).unwrap() as u32
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn scores_match_the_f64_reference_on_random_weights() {
    let dir = tempfile::tempdir().unwrap();
    let weights = Weights::random(7);
    write_folder(dir.path(), &weights, json!({}));
    let model = CrossEncoder::load(Some(dir.path()), None).unwrap();
    assert_eq!(model.activation(), Activation::Sigmoid);

    let query = "What charges a phone?";
    let passages = [
        "Lithium cells store energy.",
        "The cat sat on the mat.",
        "A battery charges the phone.",
        "red",
        "The phone is red. The battery is lithium cells. A cat sat on the mat.",
    ];
    let got = model.scores(query, &passages).unwrap();

    // The pair as BERT reads it: [CLS] query [SEP] passage [SEP], the passage in segment 1.
    let tokens = |text: &str| -> Vec<u32> {
        text.to_lowercase()
            .replace('?', " ?")
            .replace('.', " .")
            .split_whitespace()
            .map(id)
            .collect()
    };
    let q = tokens(query);
    for (passage, score) in passages.iter().zip(&got) {
        let p = tokens(passage);
        let ids: Vec<u32> = [
            vec![id("[CLS]")],
            q.clone(),
            vec![id("[SEP]")],
            p.clone(),
            vec![id("[SEP]")],
        ]
        .concat();
        let types: Vec<u32> = [vec![0; q.len() + 2], vec![1; p.len() + 1]].concat();
        let want = sigmoid(weights.logit(&ids, &types));
        assert!(
            (f64::from(*score) - want).abs() < 2e-5,
            "{passage:?}: {score} against the reference {want}"
        );
    }
    // Not all the same: the scores depend on the passage.
    let spread =
        got.iter().cloned().fold(f32::MIN, f32::max) - got.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread > 1e-3, "{got:?}");

    // One at a time gives what the batch gave.
    for (passage, score) in passages.iter().zip(&got) {
        let alone = model.scores(query, &[passage]).unwrap()[0];
        assert!(
            (alone - score).abs() < 1e-5,
            "{passage:?}: {alone} alone, {score} in a batch"
        );
    }
}

#[test]
fn the_second_text_is_read_as_segment_one() {
    // The same tokens read as one segment give another score, so the comparison with the
    // reference tells a model that ignores segments from one that reads them.
    let dir = tempfile::tempdir().unwrap();
    let weights = Weights::random(11);
    write_folder(dir.path(), &weights, json!({}));
    let model = CrossEncoder::load(Some(dir.path()), None).unwrap();
    let score = model.scores("battery", &["battery"]).unwrap()[0];
    let b = id("battery");
    let as_pair = sigmoid(weights.logit(&[2, b, 3, b, 3], &[0, 0, 0, 1, 1]));
    let one_segment = sigmoid(weights.logit(&[2, b, 3, b, 3], &[0, 0, 0, 0, 0]));
    assert!((as_pair - one_segment).abs() > 1e-4);
    assert!(
        (f64::from(score) - as_pair).abs() < 2e-5,
        "{score} vs {as_pair}"
    );
}

#[test]
fn identity_activation_gives_the_logit_and_other_heads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let weights = Weights::random(3);
    write_folder(
        dir.path(),
        &weights,
        json!({"sentence_transformers": {"activation_fn": "torch.nn.modules.linear.Identity"}}),
    );
    let model = CrossEncoder::load(Some(dir.path()), None).unwrap();
    assert_eq!(model.activation(), Activation::Identity);
    let score = model.scores("red", &["red"]).unwrap()[0];
    let r = id("red");
    let want = weights.logit(&[2, r, 3, r, 3], &[0, 0, 0, 1, 1]);
    assert!((f64::from(score) - want).abs() < 5e-5, "{score} vs {want}");

    write_folder(
        dir.path(),
        &weights,
        json!({"id2label": {"0": "contradiction", "1": "entailment", "2": "neutral"}}),
    );
    let err = CrossEncoder::load(Some(dir.path()), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("3 labels"), "{err}");

    // An embedding model's folder has no classifier.
    let mut plain = Weights::random(3);
    plain.0.retain(|name, _| !name.starts_with("classifier"));
    write_folder(dir.path(), &plain, json!({}));
    let err = CrossEncoder::load(Some(dir.path()), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("classifier"), "{err}");
}
