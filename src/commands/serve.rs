//! `quarry serve`: the HTTP API.

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, overriding [server].listen (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
}

pub fn run(config_path: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(crate::server::serve(config, args.listen))?;
    Ok(ExitCode::SUCCESS)
}
