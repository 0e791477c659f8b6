//! The encoder against reference embeddings made with sentence-transformers (see
//! `../shared/data/golden/README.md`): cosine ≥ 0.999 for every text, and a text embedded
//! alone equals the same text inside a batch.

use std::path::PathBuf;

use quarry_core::{Embedder, TokenCounter};
use quarry_embed::{BertEmbedder, ModelFiles};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shared_dir() -> PathBuf {
    std::env::var_os("QUARRY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"))
}

fn embedder() -> BertEmbedder {
    let dir = repo_root().join("models/all-MiniLM-L6-v2");
    let files = ModelFiles::locate(Some(&dir), None)
        .unwrap_or_else(|e| panic!("{e}: run `make models` first"));
    BertEmbedder::load(files).expect("model loads")
}

struct Golden {
    text: String,
    embedding: Vec<f32>,
}

fn golden() -> Vec<Golden> {
    let path = shared_dir().join("data/golden/all-MiniLM-L6-v2.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            Golden {
                text: v["text"].as_str().unwrap().to_owned(),
                embedding: v["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect(),
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn matches_golden_embeddings_in_batches() {
    let model = embedder();
    let golden = golden();
    assert_eq!(golden.len(), 256);
    let texts: Vec<&str> = golden.iter().map(|g| g.text.as_str()).collect();
    let got = model.embed(&texts).unwrap();
    let mut worst = (1.0f32, "");
    for (g, v) in golden.iter().zip(&got) {
        assert_eq!(v.len(), 384);
        let c = cosine(&g.embedding, v);
        if c < worst.0 {
            worst = (c, &g.text);
        }
    }
    eprintln!("minimum cosine to golden: {:.7}", worst.0);
    assert!(worst.0 >= 0.999, "cosine {} for {:?}", worst.0, worst.1);
}

#[test]
fn a_text_alone_equals_the_same_text_in_a_batch() {
    let model = embedder();
    let golden = golden();
    // A long text (truncated at 256), a short query, and texts of other lengths around them.
    let picks = [0usize, 3, 17, 200, 201, 255];
    let texts: Vec<&str> = picks.iter().map(|&i| golden[i].text.as_str()).collect();
    let batch = model.embed(&texts).unwrap();
    for (text, in_batch) in texts.iter().zip(&batch) {
        let alone = model.embed(&[text]).unwrap().remove(0);
        let c = cosine(&alone, in_batch);
        assert!(c >= 0.99999, "alone vs batch cosine {c} for {text:?}");
    }
}

#[test]
fn counts_tokens_like_the_model_and_reports_its_limit() {
    let model = embedder();
    assert_eq!(model.max_content_tokens(), 254);
    assert_eq!(model.dimension(), 384);
    // Punctuation splits off; an out-of-vocabulary word becomes several word pieces.
    assert_eq!(model.count_tokens("hello"), 1);
    assert!(model.count_tokens("embeddings") > 1);
    assert_eq!(model.count_tokens("Hello, world!"), 4);
    let long = "word ".repeat(1000);
    assert_eq!(model.count_tokens(&long), 1000);
}
