//! `quarry`: the knowledge-base service's command line (and, later, its server).
#![forbid(unsafe_code)]

mod cluster;
mod commands;
mod config_file;
mod events;
mod generations;
mod knowledge_base;
mod progress;
mod rag;
mod regression;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "quarry",
    version,
    about = "A self-hosted knowledge base that speaks Bedrock Knowledge Bases' API"
)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "QUARRY_CONFIG",
        default_value = "knowledge-bases.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an ingestion job on each data source of a knowledge base (or on one).
    Sync(commands::sync::SyncArgs),
    /// Retrieve the passages nearest to a query.
    Query(commands::query::QueryArgs),
    /// Answer a question from a knowledge base with a generation model, with citations.
    Ask(commands::ask::AskArgs),
    /// Embed texts from stdin (one per line), printing one JSON array per line.
    Embed(commands::embed::EmbedArgs),
    /// List a knowledge base's ingestion jobs, newest first.
    Jobs(commands::jobs::JobsArgs),
    /// Show a knowledge base's documents and chunks, and any disagreement between its ledger
    /// and its store, as JSON.
    Inspect(commands::inspect::InspectArgs),
    /// Retrieval quality on a BEIR folder: nDCG@10, recall@100, MRR@10.
    Eval(commands::eval::EvalArgs),
    /// RetrieveAndGenerate on SQuAD: hit@5, answer containment and latency for a model.
    EvalAnswers(commands::eval_answers::EvalAnswersArgs),
    /// Copy a knowledge base's chunks and vectors to another store, without re-embedding.
    Migrate(commands::migrate::MigrateArgs),
    /// Print the text a file's parser extracts (what would be indexed), or why it fails.
    Parse(commands::parse::ParseArgs),
    /// Serve Bedrock's Knowledge Bases API over HTTP.
    Serve(commands::serve::ServeArgs),
    /// Score a knowledge base's regression set now, against the accepted baseline.
    Regression(commands::regression::RegressionArgs),
    /// Accept a job's regression-set scores as the new baseline.
    Accept(commands::regression::AcceptArgs),
    /// Build the switch to the embedding model a knowledge base's configuration now names
    /// (what `quarry serve` does in the background), resuming a stopped one.
    Switch(commands::switch::SwitchArgs),
    /// Remove the indexes that model switches replaced.
    Gc(commands::switch::GcArgs),
    /// Job events (state changes and document failures).
    #[command(subcommand)]
    Events(commands::events::EventsCommand),
    /// The replicas of a cluster (`[cluster]`).
    #[command(subcommand)]
    Cluster(commands::cluster::ClusterCommand),
    /// Helpers for benchmarks.
    #[command(subcommand, hide = true)]
    Bench(commands::bench::BenchCommand),
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(quarry_ingest::parsers::WORKER_ARG) {
        return quarry_ingest::parsers::worker_main();
    }
    // Every document this process parses goes to a worker process started from this executable.
    if let Ok(exe) = std::env::current_exe() {
        quarry_ingest::parsers::use_worker_processes(exe);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,quarry=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sync(args) => commands::sync::run(&cli.config, args),
        Command::Query(args) => commands::query::run(&cli.config, args),
        Command::Ask(args) => commands::ask::run(&cli.config, args),
        Command::Embed(args) => commands::embed::run(&cli.config, args),
        Command::Jobs(args) => commands::jobs::run(&cli.config, args),
        Command::Inspect(args) => commands::inspect::run(&cli.config, args),
        Command::Serve(args) => commands::serve::run(&cli.config, args),
        Command::Parse(args) => commands::parse::run(&cli.config, args),
        Command::Eval(args) => commands::eval::run(&cli.config, args),
        Command::EvalAnswers(args) => commands::eval_answers::run(&cli.config, args),
        Command::Migrate(args) => commands::migrate::run(&cli.config, args),
        Command::Cluster(command) => commands::cluster::run(&cli.config, command),
        Command::Events(command) => commands::events::run(&cli.config, command),
        Command::Regression(args) => commands::regression::run(&cli.config, args),
        Command::Accept(args) => commands::regression::accept(&cli.config, args),
        Command::Switch(args) => commands::switch::run(&cli.config, args),
        Command::Gc(args) => commands::switch::gc(&cli.config, args),
        Command::Bench(command) => commands::bench::run(&cli.config, command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
