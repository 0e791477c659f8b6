//! Inputs the fuzzers found to crash a parser or exhaust memory (`fuzz/run.sh` keeps them in
//! `fuzz/regressions/TARGET/`), replayed through `quarry parse`: each must end as that file's
//! failure with a reason, from a process that exits normally.

mod common;

use std::process::Command;

/// The file extensions each fuzz target's parsers are reached by.
fn extensions(target: &str) -> &'static [&'static str] {
    match target {
        "pdf" => &["pdf"],
        "docx" => &["docx"],
        "spreadsheet" => &["xlsx", "xls"],
        "html" => &["html"],
        "csv" => &["csv"],
        "text" => &["txt", "md"],
        other => panic!("no fuzz target named {other}"),
    }
}

#[test]
fn every_kept_fuzz_input_fails_alone_with_a_reason() {
    let root = common::repo_root().join("fuzz/regressions");
    let scratch = tempfile::tempdir().unwrap();
    let mut replayed = 0;
    for target in std::fs::read_dir(&root).unwrap() {
        let target = target.unwrap();
        let name = target.file_name().to_string_lossy().into_owned();
        for input in std::fs::read_dir(target.path()).unwrap() {
            let input = input.unwrap().path();
            for ext in extensions(&name) {
                let file = scratch.path().join(format!("input.{ext}"));
                std::fs::copy(&input, &file).unwrap();
                let out = Command::new(env!("CARGO_BIN_EXE_quarry"))
                    .args(["parse", "--json"])
                    .arg(&file)
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(1), "{}", input.display());
                let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let failure = reply["failure"].as_str().unwrap_or_default();
                assert!(
                    failure.starts_with("malformed "),
                    "{} as .{ext}: {reply}",
                    input.display()
                );
                replayed += 1;
            }
        }
    }
    assert!(replayed > 0, "nothing kept under {}", root.display());
}
