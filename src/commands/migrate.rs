//! `quarry migrate KB --to STORE`: copies a knowledge base's chunks and vectors from the
//! store its configuration names to another, without re-embedding (how a knowledge base moves
//! from the embedded default to PostgreSQL or a cluster). Chunk ids, texts and metadata are
//! kept, so the ledger and the lexical index stay valid; the configuration is then pointed at
//! the new store by hand.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use quarry_core::config::VectorStoreConfig;

use crate::knowledge_base::{KnowledgeBase, open_store};

#[derive(clap::Args)]
pub struct MigrateArgs {
    kb: String,
    /// The target store as a TOML inline table, as `vector_store` takes it, e.g.
    /// `{ type = "pgvector", url = "postgres://quarry@db:5432/kb", table = "demo" }`.
    #[arg(long)]
    to: String,
    /// Chunks per copy batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
}

#[derive(serde::Deserialize)]
struct Target {
    to: VectorStoreConfig,
}

pub fn run(config_path: &Path, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let target: VectorStoreConfig = toml::from_str::<Target>(&format!("to = {}", args.to))
        .context("--to is not a vector_store table (e.g. { type = \"pgvector\", url = \"postgres://…\", table = \"kb\" })")?
        .to;
    let config = crate::config_file::load(config_path)?;
    let kb = KnowledgeBase::open(&config, &args.kb)?;
    if kb.config.vector_store == target {
        bail!("knowledge base {} already uses that store", kb.name());
    }
    let to = open_store(&target, &kb.dir, kb.embedder.dimension())
        .context("opening the target store")?;
    let ids = kb.store.chunk_ids()?;
    let already = to.len()?;
    if already > 0 {
        eprintln!(
            "the target store holds {already} chunks already; chunks with the same ids are replaced"
        );
    }
    let progress = indicatif::ProgressBar::new(ids.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} chunks ({per_sec}, {eta} left)",
        )
        .expect("valid template"),
    );
    for batch in ids.chunks(args.batch.max(1)) {
        let chunks = kb.store.chunks(batch)?;
        if chunks
            .iter()
            .any(|c| c.vector.len() != kb.embedder.dimension())
        {
            bail!(
                "the source store returned chunks without their vectors; nothing more was copied"
            );
        }
        to.upsert(&chunks)?;
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();
    let copied: std::collections::HashSet<String> = to.chunk_ids()?.into_iter().collect();
    let missing = ids.iter().filter(|id| !copied.contains(*id)).count();
    if missing > 0 {
        bail!(
            "{missing} of {} chunks are missing from the target after the copy",
            ids.len()
        );
    }
    println!(
        "copied {} chunks of {} to the new store without re-embedding; now set in knowledge-bases.toml:\n  vector_store = {}",
        ids.len(),
        kb.name(),
        args.to.trim()
    );
    Ok(ExitCode::SUCCESS)
}
