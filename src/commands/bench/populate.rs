//! Fills a knowledge base with `--chunks` chunks for load tests. `--passages` real passages
//! from a BEIR corpus are embedded with the knowledge base's model; every chunk is one of
//! them with its vector jittered, so the index has the shape of real data (clusters of
//! near neighbours) without hours of embedding.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use quarry_core::{Metadata, MetadataValue, StoredChunk};

use crate::knowledge_base::KnowledgeBase;

#[derive(clap::Args)]
pub struct PopulateArgs {
    /// Knowledge base id or name.
    kb: String,
    #[arg(long, default_value_t = 100_000)]
    chunks: usize,
    #[arg(long, default_value_t = 2_000)]
    passages: usize,
    /// A BEIR corpus.jsonl (title and text per line).
    #[arg(long, default_value = "../shared/data/scifact/corpus.jsonl")]
    corpus: PathBuf,
}

fn read_passages(path: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    let file = fs_err::File::open(path)?;
    let mut out = Vec::with_capacity(n);
    for line in std::io::BufReader::new(file).lines().take(n) {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        out.push(format!(
            "{} {}",
            v["title"].as_str().unwrap_or(""),
            v["text"].as_str().unwrap_or("")
        ));
    }
    Ok(out)
}

pub fn run(config_path: &Path, args: PopulateArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let kb = KnowledgeBase::open(&config, &args.kb)?;
    let passages = read_passages(&args.corpus, args.passages)
        .with_context(|| format!("reading {}", args.corpus.display()))?;
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(passages.len());
    for (i, batch) in passages.chunks(64).enumerate() {
        let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
        vectors.extend(kb.embedder.embed(&texts)?);
        eprint!(
            "\rembedded {}/{} passages",
            (i * 64 + batch.len()).min(passages.len()),
            passages.len()
        );
    }
    eprintln!(
        "\rembedded {} passages in {:.0}s",
        passages.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    const TOPICS: [&str; 4] = ["biology", "medicine", "chemistry", "physics"];
    let mut batch = Vec::with_capacity(5000);
    for i in 0..args.chunks {
        let base = i % passages.len();
        let v: Vec<f32> = vectors[base].iter().map(|x| x + 0.02 * noise()).collect();
        let mut metadata = Metadata::new();
        metadata.insert(
            "year".into(),
            MetadataValue::Number(f64::from(2000 + (i % 25) as u32)),
        );
        metadata.insert("topic".into(), MetadataValue::String(TOPICS[i % 4].into()));
        let key = format!("bench/doc-{:06}.txt", i / 10);
        batch.push(StoredChunk {
            id: quarry_ingest::sync::chunk_id("BENCHDS001", &key, i % 10, &passages[base]),
            data_source_id: "BENCHDS001".into(),
            document_key: key.clone(),
            source_uri: format!("s3://bench/{key}"),
            text: passages[base].clone(),
            span: 0..passages[base].len(),
            page: None,
            metadata,
            vector: v,
        });
        if batch.len() == batch.capacity() || i + 1 == args.chunks {
            kb.store.upsert(&batch)?;
            batch.clear();
            eprint!("\rindexed {}/{} chunks", i + 1, args.chunks);
        }
    }
    eprintln!(
        "\rindexed {} chunks in {:.0}s; the store holds {}",
        args.chunks,
        started.elapsed().as_secs_f64(),
        kb.store.len()?
    );
    Ok(ExitCode::SUCCESS)
}
