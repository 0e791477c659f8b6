//! Inputs the fuzzers (`fuzz/run.sh`) found to crash, hang or exhaust memory, kept under
//! `tests/fuzz-regressions/TARGET/` and replayed here through the parsers themselves (not the
//! worker thread that would contain a panic): each must now fail with a reason, quickly.

use std::path::Path;

use quarry_core::{ParseError, Parser};
use quarry_ingest::parsers::{
    CsvParser, DocxParser, HtmlParser, MarkdownParser, PdfParser, SpreadsheetParser, TextParser,
};

fn parsers(target: &str) -> Vec<&'static dyn Parser> {
    match target {
        "pdf" => vec![&PdfParser],
        "docx" => vec![&DocxParser],
        "spreadsheet" => vec![
            &SpreadsheetParser { format: "xlsx" },
            &SpreadsheetParser { format: "xls" },
        ],
        "html" => vec![&HtmlParser],
        "csv" => vec![&CsvParser],
        "text" => vec![&TextParser, &MarkdownParser],
        other => panic!("no fuzz target named {other}"),
    }
}

#[test]
fn every_kept_fuzz_input_is_refused_with_a_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut replayed = 0;
    for target in std::fs::read_dir(&root).unwrap() {
        let target = target.unwrap();
        let name = target.file_name().to_string_lossy().into_owned();
        for input in std::fs::read_dir(target.path()).unwrap() {
            let path = input.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for parser in parsers(&name) {
                let started = std::time::Instant::now();
                let result = parser.parse(&bytes);
                assert!(
                    matches!(result, Err(ParseError::Malformed { .. })),
                    "{}: {} gave {result:?}",
                    path.display(),
                    parser.format()
                );
                println!("{}: {}", path.display(), result.unwrap_err());
                assert!(
                    started.elapsed().as_secs() < 10,
                    "{} took {:?}",
                    path.display(),
                    started.elapsed()
                );
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no kept inputs under {}", root.display());
}
