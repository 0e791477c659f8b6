//! `quarry bench parse DIR`: parses every supported file under a folder, one at a time on one
//! thread, and prints per format the files, pages, megabytes, seconds and failures by reason.
//! With `--out`, each file's text is written beside a `results.jsonl` (one row per file), for
//! comparing against another extractor (`benches/parse-real.sh` compares PDFs with pdftotext).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use quarry_ingest::parsers::{choose_parser, parse_document, parser_for};
use serde_json::json;

#[derive(clap::Args)]
pub struct ParseBenchArgs {
    /// Folder of documents (searched recursively).
    dir: PathBuf,
    /// Where to write each file's text (`<relative path>.txt`) and `results.jsonl`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Largest file accepted, in bytes.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    max_bytes: u64,
}

#[derive(Default)]
struct Totals {
    files: usize,
    pages: usize,
    /// Pages read by OCR.
    ocr_pages: usize,
    bytes: u64,
    seconds: f64,
    slowest: f64,
    failures: BTreeMap<String, usize>,
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs_err::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else if parser_for(&path.to_string_lossy()).is_ok() {
            out.push(path);
        }
    }
    Ok(())
}

/// A failure reason without the file-specific detail, so reasons group: text up to the
/// first parenthesis, colon-separated detail after the first clause dropped.
fn reason_class(reason: &str) -> String {
    let head = reason.split(" (").next().unwrap_or(reason);
    head.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": ")
}

pub fn run(args: ParseBenchArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    files_under(&args.dir, &mut files)?;
    anyhow::ensure!(
        !files.is_empty(),
        "no supported documents under {}",
        args.dir.display()
    );
    let mut results = match &args.out {
        Some(out) => {
            fs_err::create_dir_all(out)?;
            Some(fs_err::File::create(out.join("results.jsonl"))?)
        }
        None => None,
    };
    let mut totals: BTreeMap<&'static str, Totals> = BTreeMap::new();
    for (i, path) in files.iter().enumerate() {
        let name = path.to_string_lossy();
        let relative = path.strip_prefix(&args.dir).unwrap_or(path);
        eprint!("\r{}/{} {:<70.70}", i + 1, files.len(), relative.display());
        let bytes = fs_err::read(path)?;
        let format = choose_parser(&name, &bytes).map_or("unknown", |p| p.format());
        let started = Instant::now();
        let parsed = parse_document(&name, &bytes, args.max_bytes);
        let seconds = started.elapsed().as_secs_f64();
        let t = totals.entry(format).or_default();
        t.files += 1;
        t.bytes += bytes.len() as u64;
        t.seconds += seconds;
        t.slowest = t.slowest.max(seconds);
        let mut row = json!({
            "file": relative.to_string_lossy(), "format": format,
            "bytes": bytes.len(), "seconds": seconds,
        });
        match &parsed {
            Ok(doc) => {
                t.pages += doc.page_starts.len();
                t.ocr_pages += doc.ocr_pages.len();
                row["pages"] = json!(doc.page_starts.len());
                if !doc.ocr_pages.is_empty() {
                    row["ocrPages"] = json!(doc.ocr_pages.len());
                    row["ocrConfidence"] = json!(
                        doc.ocr_pages
                            .iter()
                            .map(|p| p.confidence as f64)
                            .sum::<f64>()
                            / doc.ocr_pages.len() as f64
                    );
                }
                if let Some(out) = &args.out {
                    let target = out.join(format!("{}.txt", relative.display()));
                    fs_err::create_dir_all(target.parent().unwrap_or(out))?;
                    fs_err::write(&target, &doc.text)?;
                }
            }
            Err(e) => {
                *t.failures.entry(reason_class(&e.to_string())).or_default() += 1;
                row["failure"] = json!(e.to_string());
            }
        }
        if let Some(results) = &mut results {
            writeln!(results, "{row}")?;
        }
    }
    eprintln!();
    println!(
        "{:<6} {:>6} {:>7} {:>6} {:>8} {:>8} {:>9} {:>10} {:>8}  failures",
        "format", "files", "pages", "OCR", "MB", "seconds", "pages/s", "MB/s", "slowest"
    );
    for (format, t) in &totals {
        let failures: Vec<String> = t
            .failures
            .iter()
            .map(|(reason, n)| format!("{n}× {reason}"))
            .collect();
        println!(
            "{:<6} {:>6} {:>7} {:>6} {:>8.1} {:>8.2} {:>9} {:>10.1} {:>7.2}s  {}",
            format,
            t.files,
            t.pages,
            t.ocr_pages,
            t.bytes as f64 / 1e6,
            t.seconds,
            if t.pages > 0 {
                let rate = t.pages as f64 / t.seconds;
                if rate < 10.0 {
                    format!("{rate:.2}")
                } else {
                    format!("{rate:.0}")
                }
            } else {
                "-".into()
            },
            t.bytes as f64 / 1e6 / t.seconds,
            t.slowest,
            if failures.is_empty() {
                "none".into()
            } else {
                failures.join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
