//! `quarry events tail KB`: a knowledge base's job events as they happen (state changes and
//! document failures), one JSON object per line, from the event log the server and
//! `quarry sync` append to. Stops on Ctrl-C, or after `--count` events.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

#[derive(clap::Subcommand)]
pub enum EventsCommand {
    /// Print a knowledge base's job events as they happen.
    Tail(TailArgs),
}

#[derive(clap::Args)]
pub struct TailArgs {
    /// Knowledge base id or name.
    kb: String,
    /// Print the events already logged first (else only new ones).
    #[arg(long)]
    from_start: bool,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<usize>,
}

pub fn run(config_path: &Path, command: EventsCommand) -> anyhow::Result<ExitCode> {
    let EventsCommand::Tail(args) = command;
    let config = crate::config_file::load(config_path)?;
    let kb = config
        .knowledge_bases
        .iter()
        .find(|kb| kb.id.get_ref().as_str() == args.kb || kb.name.get_ref() == &args.kb)
        .map(|kb| kb.id.get_ref().to_string())
        .or_else(|| api_made_id(&config.server.data_dir, &args.kb))
        .ok_or_else(|| anyhow::anyhow!("no knowledge base {:?}", args.kb))?;
    let path = crate::events::log_path(&config.server.data_dir);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)?;
    let mut reader = BufReader::new(file);
    if !args.from_start {
        reader.seek(SeekFrom::End(0))?;
    }
    eprintln!("following {} for {kb} (Ctrl-C to stop)", path.display());
    let mut printed = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || !line.ends_with('\n') {
            // At the end (or mid-line while the writer finishes it): wait for more.
            if !line.is_empty() {
                reader.seek(SeekFrom::Current(-(line.len() as i64)))?;
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["knowledgeBaseId"].as_str() == Some(kb.as_str()) {
            println!("{}", line.trim_end());
            use std::io::Write;
            let _ = std::io::stdout().flush();
            printed += 1;
            if args.count.is_some_and(|n| printed >= n) {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

/// The id of a knowledge base made through the API, by its name or id.
fn api_made_id(data_dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("api-knowledge-bases.toml")).ok()?;
    let value: toml::Value = toml::from_str(&text).ok()?;
    value
        .get("knowledge_bases")?
        .as_array()?
        .iter()
        .find(|kb| {
            kb.get("name").and_then(|n| n.as_str()) == Some(name)
                || kb.get("id").and_then(|n| n.as_str()) == Some(name)
        })
        .and_then(|kb| kb.get("id")?.as_str().map(str::to_owned))
}
