//! `quarry parse FILE`: what the parsers extract from a file — the text that would be
//! chunked and indexed — or why the file would fail, with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use quarry_core::{ParseOptions, ParsedDocument};
use quarry_ingest::parsers::parse_document_with;
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
    /// Tesseract languages for scans and images, comma-separated (as a data source's
    /// `ocr = { languages = [...] }`).
    #[arg(long, value_delimiter = ',', default_value = "eng")]
    ocr_languages: Vec<String>,
}

/// " (OCR, confidence 91.2)" for a page OCR read.
fn ocr_note(doc: &ParsedDocument, page: usize) -> String {
    doc.ocr_pages
        .iter()
        .find(|p| p.page as usize == page)
        .map(|p| format!(" (OCR, confidence {:.1})", p.confidence))
        .unwrap_or_default()
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
    let options = ParseOptions {
        ocr_languages: args.ocr_languages.clone(),
    };
    let parsed = parse_document_with(&name, &bytes, args.max_bytes, &options);
    if let Ok(doc) = &parsed {
        for warning in &doc.warnings {
            eprintln!("{name}: warning: {warning}");
        }
    }
    match parsed {
        Ok(doc) if args.json => {
            let mut out = json!({ "file": name, "format": format, "bytes": bytes.len(), "characters": doc.text.chars().count() });
            if !doc.warnings.is_empty() {
                out["warnings"] = json!(doc.warnings);
            }
            if doc.page_starts.is_empty() {
                out["text"] = json!(doc.text);
            } else {
                out["pages"] = pages(&doc)
                    .into_iter()
                    .map(|(n, t)| {
                        let mut page = json!({ "page": n, "text": t });
                        if let Some(ocr) = doc.ocr_pages.iter().find(|p| p.page as usize == n) {
                            page["ocr"] = json!(true);
                            page["ocrConfidence"] = json!(ocr.confidence);
                        }
                        page
                    })
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
                    println!("--- page {n}{} ---", ocr_note(&doc, n));
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
