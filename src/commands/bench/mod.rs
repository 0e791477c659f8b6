//! `quarry bench ...`: commands that benchmarks use.

pub mod parse;
pub mod populate;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Fill a knowledge base with many chunks made from real embeddings, for load tests.
    Populate(populate::PopulateArgs),
    /// Parse every document under a folder and print per format files, pages, MB, seconds
    /// and failures by reason.
    Parse(parse::ParseBenchArgs),
}

pub fn run(
    config: &std::path::Path,
    command: BenchCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match command {
        BenchCommand::Populate(args) => populate::run(config, args),
        BenchCommand::Parse(args) => parse::run(args),
    }
}
