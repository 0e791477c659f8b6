//! The TXT and Markdown parsers on arbitrary bytes: they may fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_core::Parser;
use quarry_ingest::parsers::{MarkdownParser, TextParser};

fuzz_target!(|data: &[u8]| {
    let _ = TextParser.parse(data);
    let _ = MarkdownParser.parse(data);
});
