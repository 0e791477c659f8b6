//! `quarry bench ...`: commands that benchmarks use.

pub mod populate;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Fill a knowledge base with many chunks made from real embeddings, for load tests.
    Populate(populate::PopulateArgs),
}

pub fn run(
    config: &std::path::Path,
    command: BenchCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match command {
        BenchCommand::Populate(args) => populate::run(config, args),
    }
}
