//! `quarry bench recall KB`: how close the embedded store's HNSW graph comes to exact search.
//! The queries are a BEIR queries file embedded with the knowledge base's model; for each
//! `ef_search` the graph's top 10 is compared with the exact top 10 over every chunk, and the
//! graph's search alone (no embedding, no SQLite, one thread) is timed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use quarry_core::config::VectorStoreConfig;
use quarry_vectorstores::{HnswParams, HnswStore};

use crate::knowledge_base::load_model;

#[derive(clap::Args)]
pub struct RecallArgs {
    /// Knowledge base id or name (its vector store must be the embedded HNSW one).
    kb: String,
    /// A BEIR queries.jsonl (`{"_id", "text"}` per line).
    #[arg(long, default_value = "../shared/data/scifact/queries.jsonl")]
    queries: PathBuf,
    /// How many of its queries to use.
    #[arg(long, default_value_t = 300)]
    limit: usize,
    /// The ef_search settings to measure.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,60,100,200,400")]
    ef: Vec<usize>,
}

const K: usize = 10;

pub fn run(config_path: &Path, args: RecallArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let Some(kb) = config.knowledge_base(&args.kb) else {
        bail!("no knowledge base {:?}", args.kb);
    };
    let VectorStoreConfig::Hnsw {
        m, ef_construction, ..
    } = kb.vector_store
    else {
        bail!(
            "knowledge base {} does not use the embedded HNSW store",
            args.kb
        );
    };
    let embedder = load_model(&config, kb.embedding_model.get_ref())?;
    let dir = config
        .server
        .data_dir
        .join(kb.id.get_ref().as_str())
        .join("hnsw");
    let started = Instant::now();
    let store = HnswStore::open(
        &dir,
        embedder.dimension(),
        HnswParams {
            max_connections: m,
            ef_construction,
            ..HnswParams::default()
        },
    )?;
    eprintln!(
        "opened {} chunks in {:.1}s ({:?})",
        quarry_core::VectorStore::len(&store)?,
        started.elapsed().as_secs_f64(),
        store.opened()
    );
    let texts: Vec<String> = crate::commands::eval::jsonl(&args.queries)
        .with_context(|| format!("reading {}", args.queries.display()))?
        .iter()
        .take(args.limit)
        .map(|q| q["text"].as_str().unwrap_or("").to_owned())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let queries = embedder.embed(&refs)?;
    let started = Instant::now();
    let exact: Vec<Vec<String>> = queries.iter().map(|q| store.exact_top(q, K)).collect();
    let exact_qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "{} queries, m = {m}, ef_construction = {ef_construction}; exact search {exact_qps:.0} queries/s",
        queries.len()
    );
    println!("| ef_search | recall@10 | queries/s (search only, 1 thread) |\n|---|---|---|");
    for &ef in &args.ef {
        let started = Instant::now();
        let found: Vec<Vec<String>> = queries.iter().map(|q| store.graph_top(q, K, ef)).collect();
        let qps = queries.len() as f64 / started.elapsed().as_secs_f64();
        let hits: usize = found
            .iter()
            .zip(&exact)
            .map(|(f, e)| f.iter().filter(|id| e.contains(id)).count())
            .sum();
        let recall = hits as f64 / (K * queries.len()).max(1) as f64;
        println!("| {ef} | {recall:.3} | {qps:.0} |");
    }
    Ok(ExitCode::SUCCESS)
}
