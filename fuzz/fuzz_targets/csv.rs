//! The csv parser on arbitrary bytes: it may fail, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_core::Parser;
use quarry_ingest::parsers::CsvParser;

fuzz_target!(|data: &[u8]| {
    let _ = CsvParser.parse(data);
});
