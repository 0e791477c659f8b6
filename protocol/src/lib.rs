//! Bedrock's wire-level pieces that read or write bytes a client controls: AWS Signature
//! Version 4 (`sigv4`), the event-stream framing of streamed responses (`eventstream`), and
//! the `nextToken`s of paged responses (`page_token`). Kept apart from the server so they can
//! be fuzzed on their own (`fuzz/fuzz_targets/requests.rs`).
#![forbid(unsafe_code)]

pub mod eventstream;
pub mod page_token;
pub mod sigv4;
