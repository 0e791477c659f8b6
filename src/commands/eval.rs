//! `quarry eval DIR`: retrieval quality on a BEIR-format folder (`corpus.jsonl`,
//! `queries.jsonl`, `qrels/<split>.tsv`). Builds a throw-away knowledge base with the chosen
//! model and chunking (documents are "title text"), runs every judged query, and prints
//! nDCG@10, recall@100, MRR@10 and hit@5 (a relevant document in the first five), with
//! ingestion and query timings. SQuAD-style question files (`{"id", "question"}`) work too.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use quarry_core::config::ChunkingConfig;
use quarry_core::{ParsedDocument, StoredChunk, VectorStore};
use quarry_retrieve::metrics::{mrr_at, ndcg_at, recall_at};
use quarry_vectorstores::{HnswParams, HnswStore};

use crate::knowledge_base::load_model;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.
    dir: PathBuf,
    #[arg(long, default_value = "train")]
    split: String,
    /// Model name from [models] (needed when there are several).
    #[arg(long)]
    model: Option<String>,
    /// NONE (a chunk per document, as BEIR scores it) or DEFAULT.
    #[arg(long, default_value = "NONE")]
    chunking: String,
    /// Only the first N judged queries.
    #[arg(long)]
    limit: Option<usize>,
    /// Queries file, when not DIR/queries.jsonl; lines of `{"_id", "text"}` (BEIR) or
    /// `{"id", "question"}` (SQuAD).
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Relevance judgments, when not DIR/qrels/SPLIT.tsv.
    #[arg(long)]
    qrels: Option<PathBuf>,
}

fn jsonl(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let file = fs_err::File::open(path)?;
    std::io::BufReader::new(file)
        .lines()
        .map(|l| serde_json::from_str(&l?).with_context(|| format!("{}", path.display())))
        .collect()
}

fn text_of(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_owned()
}

pub fn run(config_path: &Path, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let model = match args.model {
        Some(m) => m,
        None if config.models.len() == 1 => {
            config.models.keys().next().cloned().unwrap_or_default()
        }
        None => bail!("several models are configured; choose one with --model"),
    };
    let chunking = match args.chunking.as_str() {
        "NONE" => ChunkingConfig::None,
        "DEFAULT" => ChunkingConfig::Default,
        other => bail!("--chunking {other}: use NONE or DEFAULT"),
    };
    let embedder = load_model(&config, &model)?;
    let chunker = quarry_chunkers::chunker_for(&chunking, embedder.clone())?;

    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    let qrels_path = args
        .qrels
        .clone()
        .unwrap_or_else(|| args.dir.join("qrels").join(format!("{}.tsv", args.split)));
    for line in fs_err::read_to_string(&qrels_path)?.lines().skip(1) {
        let parts: Vec<&str> = line.split('\t').collect();
        if let [q, d, score] = parts[..] {
            qrels
                .entry(q.to_owned())
                .or_default()
                .insert(d.to_owned(), score.trim().parse().unwrap_or(0));
        }
    }
    let queries_path = args
        .queries
        .clone()
        .unwrap_or_else(|| args.dir.join("queries.jsonl"));
    let mut queries: Vec<(String, String)> = jsonl(&queries_path)?
        .iter()
        .map(|q| match q.get("question") {
            Some(_) => (text_of(q, "id"), text_of(q, "question")),
            None => (text_of(q, "_id"), text_of(q, "text")),
        })
        .filter(|(id, _)| qrels.contains_key(id))
        .collect();
    if let Some(n) = args.limit {
        queries.truncate(n);
    }
    let corpus = jsonl(&args.dir.join("corpus.jsonl"))?;

    let scratch = tempfile::tempdir()?;
    let store = HnswStore::open(scratch.path(), embedder.dimension(), HnswParams::default())?;
    let started = Instant::now();
    for (b, batch) in corpus.chunks(256).enumerate() {
        let mut chunks = Vec::new();
        for doc in batch {
            let id = text_of(doc, "_id");
            let text = format!("{} {}", text_of(doc, "title"), text_of(doc, "text"))
                .trim()
                .to_owned();
            for (i, c) in chunker
                .chunk(&ParsedDocument::plain(text))
                .into_iter()
                .enumerate()
            {
                chunks.push((id.clone(), i, c));
            }
        }
        let texts: Vec<&str> = chunks.iter().map(|(_, _, c)| c.text.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        let stored: Vec<StoredChunk> = chunks
            .into_iter()
            .zip(vectors)
            .map(|((doc, i, c), vector)| StoredChunk {
                id: quarry_ingest::sync::chunk_id("EVALDS0001", &doc, i, &c.text),
                data_source_id: "EVALDS0001".into(),
                source_uri: doc.clone(),
                document_key: doc,
                text: c.text,
                span: c.span,
                page: None,
                metadata: Default::default(),
                vector,
            })
            .collect();
        store.upsert(&stored)?;
        eprint!(
            "\rindexed {}/{} documents",
            ((b + 1) * 256).min(corpus.len()),
            corpus.len()
        );
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "\rindexed {} documents ({} chunks) in {ingest_secs:.0}s",
        corpus.len(),
        store.len()?
    );

    let started = Instant::now();
    let (mut ndcg, mut recall, mut mrr, mut hits) = (0.0, 0.0, 0.0, 0.0);
    for batch in queries.chunks(64) {
        let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
        for ((id, _), vector) in batch.iter().zip(embedder.embed(&texts)?) {
            let mut ranked: Vec<String> = Vec::with_capacity(100);
            for hit in store.search(&vector, 300, None)? {
                if !ranked.contains(&hit.chunk.document_key) {
                    ranked.push(hit.chunk.document_key);
                }
                if ranked.len() == 100 {
                    break;
                }
            }
            let relevant = &qrels[id];
            ndcg += ndcg_at(10, &ranked, relevant);
            recall += recall_at(100, &ranked, relevant);
            mrr += mrr_at(10, &ranked, relevant);
            hits += f64::from(u8::from(mrr_at(5, &ranked, relevant) > 0.0));
        }
    }
    let n = queries.len().max(1) as f64;
    let query_ms = started.elapsed().as_secs_f64() * 1000.0 / n;
    println!(
        "{} judged by {}: {} documents, {} judged queries, model {model}, chunking {}",
        args.dir.display(),
        qrels_path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default(),
        corpus.len(),
        queries.len(),
        args.chunking
    );
    println!("| mode | nDCG@10 | recall@100 | MRR@10 | hit@5 |\n|---|---|---|---|---|");
    println!(
        "| SEMANTIC (HNSW) | {:.3} | {:.3} | {:.3} | {:.3} |",
        ndcg / n,
        recall / n,
        mrr / n,
        hits / n
    );
    println!("| HYBRID | not built yet (needs the lexical index) | | | |");
    println!(
        "ingestion {:.1} documents/s; {query_ms:.1} ms per query (embedding included)",
        corpus.len() as f64 / ingest_secs
    );
    Ok(ExitCode::SUCCESS)
}
