//! Where parsers run. In the `quarry` binary documents go to a pool of worker processes
//! (`worker_pool.rs`) that may each map at most [`WORKER_MEMORY`](super::WORKER_MEMORY) and
//! are killed after [`PARSE_TIMEOUT`]: whatever a hostile file makes a parser do — panic,
//! recurse off its stack, ask for 137 GB, loop — ends that process and becomes that
//! document's failure. Used as a library without a worker executable, parsers run on a thread
//! of their own with a deep stack, which contains panics and hangs only.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use quarry_core::{ParseError, ParseOptions, ParsedDocument, Parser};

use super::worker_pool;

/// Longest a single document may take to parse.
pub const PARSE_TIMEOUT: Duration = Duration::from_secs(120);

/// Stack for parser threads: deep documents recurse (nested XML, PDF object trees).
const PARSER_STACK: usize = 64 * 1024 * 1024;

static WORKER_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Parse every later document in worker processes started from `exe`, which must call
/// [`worker_main`](super::worker_main) when its first argument is
/// [`WORKER_ARG`](super::WORKER_ARG).
pub fn use_worker_processes(exe: PathBuf) {
    let _ = WORKER_EXE.set(exe);
}

pub fn parse_isolated(
    parser: &'static dyn Parser,
    bytes: &[u8],
    options: &ParseOptions,
) -> Result<ParsedDocument, ParseError> {
    match WORKER_EXE.get() {
        Some(exe) => worker_pool::parse(exe, parser, bytes, options, PARSE_TIMEOUT),
        None => run_isolated(parser.format(), PARSE_TIMEOUT, {
            let bytes = bytes.to_vec();
            let options = options.clone();
            move || parser.parse_with(&bytes, &options)
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

pub(super) fn run_isolated(
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
            Ok(ParsedDocument::plain("fine".into()))
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
            Ok(ParsedDocument::plain(depth(50_000).to_string()))
        });
        assert_eq!(r.unwrap().text, "50000");
    }
}
