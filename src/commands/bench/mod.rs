//! `quarry bench ...`: commands that benchmarks use.

pub mod parse;
pub mod populate;
pub mod recall;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Fill a knowledge base with many chunks made from real embeddings, for load tests.
    Populate(populate::PopulateArgs),
    /// Parse every document under a folder and print per format files, pages, MB, seconds
    /// and failures by reason.
    Parse(parse::ParseBenchArgs),
    /// Recall@10 of the embedded HNSW graph against exact search, and its search-only
    /// queries per second, at several ef_search settings.
    Recall(recall::RecallArgs),
}

pub fn run(
    config: &std::path::Path,
    command: BenchCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match command {
        BenchCommand::Populate(args) => populate::run(config, args),
        BenchCommand::Parse(args) => parse::run(args),
        BenchCommand::Recall(args) => recall::run(config, args),
    }
}
