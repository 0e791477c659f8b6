//! A pool of parse worker processes: the `quarry` executable started with [`WORKER_ARG`],
//! limited to [`WORKER_MEMORY`] of address space, reading documents from its stdin and
//! writing their text to its stdout, one framed message each way per document. Idle workers
//! are reused (starting one costs a few milliseconds); one that dies, or runs past the
//! timeout and is killed, is dropped and its document fails with the reason; a worker is
//! retired after [`DOCUMENTS_PER_WORKER`] documents so its heap stays fresh.
//!
//! Frames: a request is the format's name (one length byte, then the name), the parse
//! options (a length, u64 little-endian, and JSON `{"ocr_languages"}`) and the document (its
//! length and its bytes); a reply is a length (u64) and a JSON object, `{"text",
//! "page_starts", "ocr_pages", "warnings"}` or `{"kind", "failure"}`, after any number of
//! `{"progress"}` frames (one per page OCR has read: each page gets the timeout anew).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use quarry_core::{OcrPage, ParseError, ParseOptions, ParsedDocument, Parser};
use serde_json::{Value, json};

use super::worker::run_isolated;

/// Address space a worker process may map.
pub const WORKER_MEMORY: u64 = 2 << 30;
/// The first argument that makes the `quarry` executable a parse worker.
pub const WORKER_ARG: &str = "__parse-worker";
/// Documents a worker parses before it is replaced.
const DOCUMENTS_PER_WORKER: usize = 500;
/// Idle workers kept for reuse.
const MAX_IDLE: usize = 8;
/// Longest one document may take, however many pages it reports progress on.
const MAX_DOCUMENT_TIME: Duration = Duration::from_secs(60 * 60);
/// The frame a worker sends after each page OCR reads.
const PROGRESS: &[u8] = br#"{"progress":1}"#;
/// What a dead worker said on stderr, kept for its documents' failure reason.
const STDERR_KEPT: usize = 4096;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<Vec<u8>>,
    /// What it says on stderr (the first few KB), once it has exited.
    stderr: std::thread::JoinHandle<Vec<u8>>,
    served: usize,
}

static IDLE: Mutex<Vec<Worker>> = Mutex::new(Vec::new());

fn start(exe: &Path) -> std::io::Result<Worker> {
    let mut child = Command::new(exe)
        .arg(WORKER_ARG)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (Some(stdin), Some(stdout), Some(mut err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        return Err(std::io::Error::other("worker started without pipes"));
    };
    let (send, replies) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        while let Ok(reply) = read_frame(&mut stdout) {
            if send.send(reply).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut err).take(STDERR_KEPT as u64).read_to_end(&mut kept);
        // Drain the rest so the worker never blocks on a full pipe.
        let _ = std::io::copy(&mut err, &mut std::io::sink());
        kept
    });
    Ok(Worker {
        child,
        stdin,
        replies,
        stderr,
        served: 0,
    })
}

fn read_frame(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len) as usize;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Parses one document in a pooled worker.
pub fn parse(
    exe: &Path,
    parser: &'static dyn Parser,
    bytes: &[u8],
    options: &ParseOptions,
    timeout: Duration,
) -> Result<ParsedDocument, ParseError> {
    let format = parser.format();
    let failed = |reason: String| ParseError::Malformed { format, reason };
    let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut worker = match idle {
        Some(worker) => worker,
        None => start(exe).map_err(|e| failed(format!("could not start a parser process: {e}")))?,
    };
    // The header, then the document as it is (no copy of it).
    let mut header = vec![format.len() as u8];
    header.extend_from_slice(format.as_bytes());
    let options = json!({ "ocr_languages": options.ocr_languages }).to_string();
    header.extend_from_slice(&(options.len() as u64).to_le_bytes());
    header.extend_from_slice(options.as_bytes());
    header.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    let sent = worker
        .stdin
        .write_all(&header)
        .and_then(|()| worker.stdin.write_all(bytes))
        .and_then(|()| worker.stdin.flush());
    let reply = match sent {
        Ok(()) => next_reply(&worker, timeout),
        Err(_) => Err(mpsc::RecvTimeoutError::Disconnected),
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = worker.child.kill();
            let _ = worker.child.wait();
            return Err(failed(format!(
                "parsing took longer than {} s; given up",
                timeout.as_secs()
            )));
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => return Err(failed(died(worker))),
    };
    worker.served += 1;
    if worker.served < DOCUMENTS_PER_WORKER {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(worker);
        }
    }
    let reply: Value = serde_json::from_slice(&reply)
        .map_err(|e| failed(format!("unreadable reply from the parser process: {e}")))?;
    if let Some(reason) = reply["failure"].as_str() {
        return Err(match reply["kind"].as_str() {
            Some("empty") => ParseError::Empty,
            _ => failed(reason.to_string()),
        });
    }
    let text = reply["text"].as_str().unwrap_or_default().to_string();
    let page_starts = reply["page_starts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default();
    let ocr_pages = reply["ocr_pages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some(OcrPage {
                        page: p.get(0)?.as_u64()? as u32,
                        confidence: p.get(1)?.as_f64()? as f32,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let warnings = reply["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(ParsedDocument {
        text,
        page_starts,
        ocr_pages,
        warnings,
    })
}

/// The worker's reply, waiting up to `timeout` for it or for the next progress frame (each
/// of which allows `timeout` again), at most [`MAX_DOCUMENT_TIME`] in all.
fn next_reply(worker: &Worker, timeout: Duration) -> Result<Vec<u8>, mpsc::RecvTimeoutError> {
    let started = std::time::Instant::now();
    loop {
        let left = MAX_DOCUMENT_TIME.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(mpsc::RecvTimeoutError::Timeout);
        }
        let frame = worker.replies.recv_timeout(timeout.min(left))?;
        if frame != PROGRESS {
            return Ok(frame);
        }
    }
}

/// Why a worker went away: its exit status and the first thing it said
/// ("memory allocation of … bytes failed").
fn died(mut worker: Worker) -> String {
    let status = worker
        .child
        .wait()
        .map_or_else(|e| e.to_string(), |s| s.to_string());
    let said = worker.stderr.join().unwrap_or_default();
    let said = String::from_utf8_lossy(&said);
    let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    format!(
        "parser process died ({status}){}{said}; it may map at most {} GB",
        if said.is_empty() { "" } else { ": " },
        WORKER_MEMORY >> 30
    )
}

#[allow(unsafe_code)]
fn limit_address_space(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
}

fn reply_for(format: &str, options: ParseOptions, bytes: Vec<u8>) -> Value {
    let Ok(parser) = super::parser_for(&format!("document.{format}")) else {
        return json!({ "kind": "other", "failure": format!("unknown format {format}") });
    };
    match run_isolated(parser.format(), Duration::MAX, move || {
        parser.parse_with(&bytes, &options)
    }) {
        Ok(doc) => json!({
            "text": doc.text,
            "page_starts": doc.page_starts,
            "ocr_pages": doc.ocr_pages.iter().map(|p| json!([p.page, p.confidence])).collect::<Vec<_>>(),
            "warnings": doc.warnings,
        }),
        Err(ParseError::Malformed { reason, .. }) => {
            json!({ "kind": "malformed", "failure": reason })
        }
        Err(ParseError::Empty) => json!({ "kind": "empty", "failure": "empty" }),
        Err(other) => json!({ "kind": "other", "failure": other.to_string() }),
    }
}

/// The worker process's side: documents in from stdin, replies out to stdout, until stdin
/// closes.
pub fn worker_main() -> ExitCode {
    limit_address_space(WORKER_MEMORY);
    let mut input = BufReader::new(std::io::stdin().lock());
    let output = std::sync::Arc::new(Mutex::new(BufWriter::new(std::io::stdout())));
    let progress = output.clone();
    super::ocr::on_page_read(Box::new(move || {
        let _ = write_frame(
            &mut *progress.lock().unwrap_or_else(|e| e.into_inner()),
            PROGRESS,
        );
    }));
    loop {
        let mut name_len = [0u8; 1];
        if input.read_exact(&mut name_len).is_err() {
            return ExitCode::SUCCESS; // the pool closed our stdin
        }
        let mut name = vec![0u8; name_len[0] as usize];
        let Ok((options, bytes)) = input
            .read_exact(&mut name)
            .and_then(|()| Ok((read_frame(&mut input)?, read_frame(&mut input)?)))
        else {
            return ExitCode::FAILURE;
        };
        let options: Value = serde_json::from_slice(&options).unwrap_or_default();
        let options = ParseOptions {
            ocr_languages: options["ocr_languages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_else(|| ParseOptions::default().ocr_languages),
        };
        let reply = reply_for(&String::from_utf8_lossy(&name), options, bytes).to_string();
        let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
        if write_frame(&mut *output, reply.as_bytes()).is_err() {
            return ExitCode::FAILURE;
        }
    }
}

fn write_frame(output: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    output.write_all(&(body.len() as u64).to_le_bytes())?;
    output.write_all(body)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::parsers::PdfParser;

    /// A stand-in worker executable: a shell script.
    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn reason(result: Result<ParsedDocument, ParseError>) -> String {
        match result {
            Err(ParseError::Malformed {
                format: "pdf",
                reason,
            }) => reason,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_worker_that_dies_fails_its_document_with_what_it_said() {
        let dir = tempfile::tempdir().unwrap();
        let exe = script(
            dir.path(),
            "dies",
            "echo 'memory allocation of 9 bytes failed' >&2; exit 3",
        );
        let r = reason(parse(
            &exe,
            &PdfParser,
            b"%PDF-1.4",
            &ParseOptions::default(),
            Duration::from_secs(10),
        ));
        assert!(
            r.starts_with(
                "parser process died (exit status: 3): memory allocation of 9 bytes failed"
            ),
            "{r}"
        );
    }

    #[test]
    fn a_worker_that_never_answers_is_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let exe = script(dir.path(), "hangs", "exec sleep 60");
        let r = reason(parse(
            &exe,
            &PdfParser,
            b"%PDF-1.4",
            &ParseOptions::default(),
            Duration::from_millis(300),
        ));
        assert_eq!(r, "parsing took longer than 0 s; given up");
    }
}
