//! `quarry switch KB`: builds the switch to the embedding model a knowledge base's
//! configuration now names, in the foreground with its progress (what `quarry serve` does in
//! the background), resuming a build that was stopped; `quarry gc KB`: removes the indexes of
//! generations a switch replaced.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::generations::{self, IndexState, Progress, SwapOptions};
use crate::knowledge_base::{KnowledgeBase, load_model};

#[derive(clap::Args)]
pub struct SwitchArgs {
    /// Knowledge base id or name.
    kb: String,
}

#[derive(clap::Args)]
pub struct GcArgs {
    /// Knowledge base id or name.
    kb: String,
}

fn single_node(config: &quarry_core::config::Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.cluster.is_none(),
        "model switches run on one node; in cluster mode a knowledge base keeps its model"
    );
    Ok(())
}

pub fn run(config_path: &Path, args: SwitchArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    single_node(&config)?;
    let kb = KnowledgeBase::open(&config, &args.kb)?;
    let state = IndexState::load(&kb.dir, kb.config.embedding_model.get_ref())?;
    let Some(plan) = state.building else {
        println!(
            "{} serves generation {} ({}), the model its configuration names: nothing to switch",
            kb.name(),
            kb.generation.number,
            kb.generation.model
        );
        return Ok(ExitCode::SUCCESS);
    };
    eprintln!(
        "switching {} from {} to {} (generation {}); the old index serves until the swap",
        kb.name(),
        kb.generation.model,
        plan.generation.model,
        plan.generation.number
    );
    let embedder = load_model(&config, &plan.generation.model)?;
    let progress = Arc::new(Progress::default());
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} chunks embedded again ({per_sec}, {eta} left)",
        )
        .expect("valid template"),
    );
    let watcher = {
        let (progress, bar) = (progress.clone(), bar.clone());
        std::thread::spawn(move || {
            while !bar.is_finished() {
                bar.set_length(progress.total.load(Ordering::Relaxed) as u64);
                bar.set_position(progress.done.load(Ordering::Relaxed) as u64);
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    let options = SwapOptions {
        data_source_ids: kb
            .config
            .data_sources
            .iter()
            .map(|d| d.id.get_ref().to_string())
            .collect(),
        regression: kb.config.regression.as_ref(),
    };
    let result = generations::run(&kb, embedder, &progress, &options);
    bar.finish_and_clear();
    let _ = watcher.join();
    if result?.is_none() {
        println!("nothing to switch");
        return Ok(ExitCode::SUCCESS);
    }
    let state = IndexState::load(&kb.dir, "")?;
    let record = state.last_switch.expect("a swap records itself");
    println!(
        "{} now serves generation {} ({}): {} chunks embedded again; generation {} ({}) is kept until `quarry gc {}`",
        kb.name(),
        record.to.number,
        record.to.model,
        record.chunks,
        record.from.number,
        record.from.model,
        args.kb
    );
    if let Some(r) = record.regression {
        println!(
            "regression set: recall {:.3} (was {:.3}), nDCG@10 {:.3} (was {:.3})",
            r.new.recall, r.old.recall, r.new.ndcg, r.old.ndcg
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn gc(config_path: &Path, args: GcArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    single_node(&config)?;
    // (declared in the configuration, or made through the API)
    let kb = crate::server::registry::find_knowledge_base(&config, &args.kb)?;
    let dir = config.server.data_dir.join(kb.id.get_ref().as_str());
    let removed = generations::gc::gc(&dir, &kb.vector_store)?;
    if removed.is_empty() {
        println!("{}: no retired index to remove", kb.name.get_ref());
    }
    for g in removed {
        println!("removed generation {} ({})", g.number, g.model);
    }
    Ok(ExitCode::SUCCESS)
}
