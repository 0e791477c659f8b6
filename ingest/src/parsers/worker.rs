//! Where parsers run. In the `quarry` binary each document is parsed in a short-lived worker
//! process (the same executable, started with [`WORKER_ARG`]) that may map at most
//! [`WORKER_MEMORY`] and is killed after [`PARSE_TIMEOUT`]: whatever a hostile file makes a
//! parser do — panic, recurse off its stack, ask for 137 GB, loop — ends that process and
//! becomes that document's failure. Used as a library without a worker executable, parsers
//! run on a thread of their own with a deep stack, which contains panics and hangs only.

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use quarry_core::{ParseError, ParsedDocument, Parser};
use serde_json::{Value, json};

/// Longest a single document may take to parse.
pub const PARSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Address space a worker process may map.
pub const WORKER_MEMORY: u64 = 2 << 30;
/// The first argument that makes the `quarry` executable a parse worker.
pub const WORKER_ARG: &str = "__parse-worker";

/// Stack for parser threads: deep documents recurse (nested XML, PDF object trees).
const PARSER_STACK: usize = 64 * 1024 * 1024;

static WORKER_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Parse every later document in worker processes started from `exe`, which must call
/// [`worker_main`] when its first argument is [`WORKER_ARG`].
pub fn use_worker_processes(exe: PathBuf) {
    let _ = WORKER_EXE.set(exe);
}

pub fn parse_isolated(
    parser: &'static dyn Parser,
    bytes: &[u8],
) -> Result<ParsedDocument, ParseError> {
    match WORKER_EXE.get() {
        Some(exe) => parse_in_process(exe, parser, bytes, PARSE_TIMEOUT),
        None => run_isolated(parser.format(), PARSE_TIMEOUT, {
            let bytes = bytes.to_vec();
            move || parser.parse(&bytes)
        }),
    }
}

fn panic_reason(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

fn run_isolated(
    format: &'static str,
    timeout: Duration,
    work: impl FnOnce() -> Result<ParsedDocument, ParseError> + Send + 'static,
) -> Result<ParsedDocument, ParseError> {
    let failed = move |reason: String| ParseError::Malformed { format, reason };
    let (done, result) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(format!("parse-{format}"))
        .stack_size(PARSER_STACK)
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
                Err(failed(format!("parser crashed: {}", panic_reason(&*panic))))
            });
            let _ = done.send(outcome);
        })
        .map_err(|e| failed(format!("could not start a parser thread: {e}")))?;
    match result.recv_timeout(timeout) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(failed(format!(
            "parsing took longer than {} s; given up",
            timeout.as_secs()
        ))),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(failed("parser thread died".into())),
    }
}

fn parse_in_process(
    exe: &PathBuf,
    parser: &'static dyn Parser,
    bytes: &[u8],
    timeout: Duration,
) -> Result<ParsedDocument, ParseError> {
    let format = parser.format();
    let failed = |reason: String| ParseError::Malformed { format, reason };
    let mut child = Command::new(exe)
        .arg(WORKER_ARG)
        .arg(format)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("could not start a parser process: {e}")))?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        return Err(failed("parser process has no pipes".into()));
    };
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        // A worker that dies early closes the pipe; its exit status tells why.
        let _ = stdin.write_all(&input);
    });
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let errors = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stderr.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(failed(format!("lost the parser process: {e}"))),
        }
    };
    let _ = writer.join();
    let output = reader.join().unwrap_or_default();
    let stderr = errors.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(failed(format!(
            "parsing took longer than {} s; given up",
            timeout.as_secs()
        )));
    };
    if !status.success() {
        // The runtime's own words come first ("memory allocation of … bytes failed").
        let said = String::from_utf8_lossy(&stderr);
        let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(failed(format!(
            "parser process died ({status}){}{said}; it may map at most {} GB",
            if said.is_empty() { "" } else { ": " },
            WORKER_MEMORY >> 30
        )));
    }
    let reply: Value = serde_json::from_slice(&output)
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
                .filter_map(|v| v.as_u64())
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default();
    Ok(ParsedDocument { text, page_starts })
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

/// The worker process's side: reads one document from stdin, parses it as `format`, writes
/// the text and page starts (or the failure) to stdout as JSON.
pub fn worker_main(format: &str) -> ExitCode {
    limit_address_space(WORKER_MEMORY);
    let Ok(parser) = super::parser_for(&format!("document.{format}")) else {
        eprintln!("unknown format {format}");
        return ExitCode::FAILURE;
    };
    let mut bytes = Vec::new();
    if std::io::stdin().read_to_end(&mut bytes).is_err() {
        return ExitCode::FAILURE;
    }
    let reply = match run_isolated(parser.format(), Duration::MAX, move || parser.parse(&bytes)) {
        Ok(doc) => json!({ "text": doc.text, "page_starts": doc.page_starts }),
        Err(ParseError::Malformed { reason, .. }) => {
            json!({ "kind": "malformed", "failure": reason })
        }
        Err(ParseError::Empty) => json!({ "kind": "empty", "failure": "empty" }),
        Err(other) => json!({ "kind": "other", "failure": other.to_string() }),
    };
    match std::io::stdout().write_all(reply.to_string().as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<ParsedDocument, ParseError>) -> String {
        match result {
            Err(ParseError::Malformed { reason, .. }) => reason,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_panicking_parser_fails_only_its_document() {
        let r = run_isolated("pdf", Duration::from_secs(5), || {
            panic!("index out of bounds")
        });
        assert_eq!(reason(r), "parser crashed: index out of bounds");
        let ok = run_isolated("txt", Duration::from_secs(5), || {
            Ok(ParsedDocument {
                text: "fine".into(),
                page_starts: vec![],
            })
        });
        assert_eq!(ok.unwrap().text, "fine");
    }

    #[test]
    fn a_parser_that_hangs_is_given_up_on() {
        let r = run_isolated("pdf", Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            Err(ParseError::Empty)
        });
        assert_eq!(reason(r), "parsing took longer than 0 s; given up");
    }

    #[test]
    fn deep_recursion_fits_the_parser_stack() {
        fn depth(n: u64) -> u64 {
            let pad = std::hint::black_box([0u8; 512]);
            if n == 0 {
                pad[0] as u64
            } else {
                1 + depth(n - 1) + pad[1] as u64
            }
        }
        // About 30 MB of stack: far past a default 2 MB thread, within the parser's.
        let r = run_isolated("docx", Duration::from_secs(30), || {
            Ok(ParsedDocument {
                text: depth(50_000).to_string(),
                page_starts: vec![],
            })
        });
        assert_eq!(r.unwrap().text, "50000");
    }
}
