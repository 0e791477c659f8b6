//! `quarry parse FILE`: what the parsers extract from a file — the text that would be
//! chunked and indexed — or why the file would fail, with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use quarry_core::ParsedDocument;
use quarry_ingest::parsers::parse_document;
use serde_json::json;

#[derive(clap::Args)]
pub struct ParseArgs {
    file: PathBuf,
    /// Print JSON: the format, and the text per page (or sheet) when there are pages.
    #[arg(long)]
    json: bool,
    /// Largest file accepted, in bytes.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    max_bytes: u64,
}

fn pages(doc: &ParsedDocument) -> Vec<(usize, &str)> {
    let mut starts = doc.page_starts.clone();
    starts.push(doc.text.len());
    starts
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i + 1, &doc.text[w[0]..w[1]]))
        .collect()
}

pub fn run(_config: &Path, args: ParseArgs) -> anyhow::Result<ExitCode> {
    let bytes = fs_err::read(&args.file)?;
    let name = args.file.to_string_lossy();
    let format = quarry_ingest::parsers::choose_parser(&name, &bytes)
        .map(|p| p.format())
        .unwrap_or("unknown");
    match parse_document(&name, &bytes, args.max_bytes) {
        Ok(doc) if args.json => {
            let mut out = json!({ "file": name, "format": format, "bytes": bytes.len(), "characters": doc.text.chars().count() });
            if doc.page_starts.is_empty() {
                out["text"] = json!(doc.text);
            } else {
                out["pages"] = pages(&doc)
                    .into_iter()
                    .map(|(n, t)| json!({ "page": n, "text": t }))
                    .collect();
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(doc) => {
            if doc.page_starts.is_empty() {
                print!("{}", doc.text);
            } else {
                for (n, text) in pages(&doc) {
                    println!("--- page {n} ---");
                    print!("{text}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "file": name, "format": format, "failure": e.to_string() })
                    )?
                );
            }
            eprintln!("{name}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
