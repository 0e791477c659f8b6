//! The spreadsheet parser (XLSX and XLS) on arbitrary bytes: it may fail, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_core::Parser;
use quarry_ingest::parsers::SpreadsheetParser;

fuzz_target!(|data: &[u8]| {
    for format in ["xlsx", "xls"] {
        let _ = SpreadsheetParser { format }.parse(data);
    }
});
