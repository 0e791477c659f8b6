//! Embeds the same passages with our encoder, ONNX Runtime (fp32 and int8-dynamic exports)
//! and candle-transformers' BERT, in one process, and prints passages/s, tokens/s, accuracy
//! against ONNX Runtime fp32, and the fraction of this machine's measured GEMM peak each
//! reaches. Every runtime does the same work: tokenise (≤ 256 word pieces), run the model
//! on batches of 32 passages sorted by length, mean-pool, L2-normalise.
//!
//! Usage: embed-compare MODEL_DIR ONNX_DIR CORPUS_JSONL [--passages N] [--runs R]
//!        [--only ours,ort-fp32,ort-int8,candle]   (ORT_DYLIB_PATH names libonnxruntime.so)

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use quarry_core::Embedder;

mod candle_bert;
mod ort_bert;
mod peak;

const BATCH: usize = 32;
const MAX_TOKENS: usize = 256;

/// One runtime under test: embeds a batch of texts.
pub trait Runtime {
    fn name(&self) -> String;
    fn embed(&mut self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>>;
}

struct Ours(quarry_embed::BertEmbedder);

impl Runtime for Ours {
    fn name(&self) -> String {
        "Quarry's encoder, fp32".into()
    }
    fn embed(&mut self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(self.0.embed(texts)?)
    }
}

/// Mean of the rows of `hidden` (`[len, width]`) over the first `len` tokens, normalised.
pub fn mean_pool(hidden: &[f32], len: usize, width: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; width];
    for row in hidden.chunks_exact(width).take(len) {
        for (a, b) in v.iter_mut().zip(row) {
            *a += b;
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// The model's tokenizer without the truncation and padding its file may set: `encode`
/// truncates at `MAX_TOKENS` itself, and only real tokens are counted.
pub fn tokenizer(model_dir: &Path) -> anyhow::Result<tokenizers::Tokenizer> {
    let mut t = tokenizers::Tokenizer::from_file(model_dir.join("tokenizer.json"))
        .map_err(anyhow::Error::msg)?;
    t.with_truncation(None).map_err(anyhow::Error::msg)?;
    t.with_padding(None);
    Ok(t)
}

/// Token ids of each text, with [CLS]/[SEP], truncated to `MAX_TOKENS`.
pub fn encode(tokenizer: &tokenizers::Tokenizer, texts: &[&str]) -> anyhow::Result<Vec<Vec<u32>>> {
    texts
        .iter()
        .map(|t| {
            let enc = tokenizer.encode(*t, true).map_err(anyhow::Error::msg)?;
            let mut ids = enc.get_ids().to_vec();
            if ids.len() > MAX_TOKENS {
                let sep = *ids.last().expect("non-empty");
                ids.truncate(MAX_TOKENS - 1);
                ids.push(sep);
            }
            Ok(ids)
        })
        .collect()
}

struct Measured {
    name: String,
    passages_per_s: f64,
    tokens_per_s: f64,
    vectors: Vec<Vec<f32>>,
}

fn measure(
    runtime: &mut dyn Runtime,
    batches: &[Vec<&str>],
    tokens: usize,
    runs: usize,
) -> anyhow::Result<Measured> {
    let passages: usize = batches.iter().map(Vec::len).sum();
    runtime.embed(&batches[0])?; // warm-up
    let mut times = Vec::new();
    let mut vectors = Vec::new();
    for _ in 0..runs {
        vectors.clear();
        let started = Instant::now();
        for batch in batches {
            vectors.extend(runtime.embed(batch)?);
        }
        times.push(started.elapsed().as_secs_f64());
        eprintln!("  {}: {:.1} s", runtime.name(), times.last().unwrap());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(Measured {
        name: runtime.name(),
        passages_per_s: passages as f64 / median,
        tokens_per_s: tokens as f64 / median,
        vectors,
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let positional: Vec<&String> = {
        let mut out = Vec::new();
        let mut skip = false;
        for a in &args[1..] {
            if skip {
                skip = false;
            } else if a.starts_with("--") {
                skip = true;
            } else {
                out.push(a);
            }
        }
        out
    };
    let [model_dir, onnx_dir, corpus] = positional[..] else {
        bail!(
            "usage: embed-compare MODEL_DIR ONNX_DIR CORPUS_JSONL [--passages N] [--runs R] [--only LIST]"
        );
    };
    let (model_dir, onnx_dir) = (PathBuf::from(model_dir), PathBuf::from(onnx_dir));
    let n: usize = flag("--passages").map_or(Ok(1000), |v| v.parse())?;
    let runs: usize = flag("--runs").map_or(Ok(1), |v| v.parse())?;
    let only = flag("--only").unwrap_or_else(|| "ours,ort-fp32,ort-int8,candle".into());
    let threads = rayon::current_num_threads();

    let texts = passages(Path::new(corpus), n)?;
    let tokenizer = crate::tokenizer(&model_dir)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids = encode(&tokenizer, &refs)?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let sorted: Vec<&str> = order.iter().map(|&i| texts[i].as_str()).collect();
    let batches: Vec<Vec<&str>> = sorted.chunks(BATCH).map(<[&str]>::to_vec).collect();
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let flops: f64 = ids.iter().map(|s| peak::model_flops(s.len())).sum();
    eprintln!(
        "{} passages, {tokens} tokens, batch {BATCH}, {threads} threads",
        texts.len()
    );

    let mut results: Vec<Measured> = Vec::new();
    for name in only.split(',') {
        let mut runtime: Box<dyn Runtime> = match name {
            "ours" => Box::new(Ours(quarry_embed::BertEmbedder::load(
                quarry_embed::ModelFiles::locate(Some(&model_dir), None)?,
            )?)),
            "ort-fp32" => Box::new(ort_bert::OrtBert::load(
                &onnx_dir.join("all-MiniLM-L6-v2.fp32.onnx"),
                &model_dir,
                threads,
                "fp32",
            )?),
            "ort-int8" => Box::new(ort_bert::OrtBert::load(
                &onnx_dir.join("all-MiniLM-L6-v2.int8-dynamic.onnx"),
                &model_dir,
                threads,
                "int8-dynamic",
            )?),
            "candle" => Box::new(candle_bert::CandleBert::load(&model_dir)?),
            other => bail!("--only: unknown runtime {other}"),
        };
        results.push(
            measure(runtime.as_mut(), &batches, tokens, runs).with_context(|| name.to_owned())?,
        );
    }

    let peak = peak::gemm_peak_flops(threads);
    let reference = results
        .iter()
        .find(|r| r.name.contains("ONNX Runtime") && r.name.contains("fp32"));
    let ours = results
        .iter()
        .find(|r| r.name.starts_with("Quarry"))
        .map(|r| r.passages_per_s);
    println!(
        "{} SciFact passages (\"title text\", ≤{MAX_TOKENS} word pieces, {tokens} tokens), batch {BATCH}, {threads} threads, median of {runs}",
        texts.len()
    );
    println!(
        "| runtime | passages/s | tokens/s | min cosine vs ORT fp32 | share of GEMM peak | ours ÷ this |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &results {
        let min_cos = reference
            .map(|reference| {
                r.vectors
                    .iter()
                    .zip(&reference.vectors)
                    .map(|(a, b)| cosine(a, b))
                    .fold(f32::INFINITY, f32::min)
            })
            .map_or("—".into(), |c| format!("{c:.4}"));
        let share = flops * r.passages_per_s / texts.len() as f64 / peak;
        let ratio = ours.map_or("—".into(), |o| format!("{:.2}", o / r.passages_per_s));
        println!(
            "| {} | {:.1} | {:.0} | {min_cos} | {:.0}% | {ratio} |",
            r.name,
            r.passages_per_s,
            r.tokens_per_s,
            share * 100.0
        );
    }
    println!(
        "GEMM peak measured here: {:.0} GFLOP/s fp32 ({threads} threads, gemm crate, 1024×1536×384 products); the model does {:.1} GFLOP per passage on average.",
        peak / 1e9,
        flops / texts.len() as f64 / 1e9
    );
    Ok(())
}

/// The first `n` passages of a BEIR corpus as "title text".
fn passages(path: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    std::io::BufReader::new(file)
        .lines()
        .take(n)
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            Ok(format!("{} {}", s("title"), s("text")).trim().to_owned())
        })
        .collect()
}
