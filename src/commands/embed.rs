//! `quarry embed`: texts on stdin, one per line; a JSON array per line out.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::knowledge_base::{embedding_model_name, load_model};

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Model name from [models] (needed when there are several).
    #[arg(long)]
    model: Option<String>,
}

/// Lines embedded per call: enough to batch well, few enough to stream.
const BATCH: usize = 64;

pub fn run(config_path: &Path, args: EmbedArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let name = embedding_model_name(&config, args.model)?;
    let embedder = load_model(&config, &name)?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut batch: Vec<String> = Vec::with_capacity(BATCH);
    let flush = |batch: &mut Vec<String>, out: &mut dyn Write| -> anyhow::Result<()> {
        let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
        for v in embedder.embed(&texts)? {
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
        }
        out.flush()?;
        batch.clear();
        Ok(())
    };
    for line in stdin.lines() {
        batch.push(line?);
        if batch.len() == BATCH {
            flush(&mut batch, &mut out)?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}
