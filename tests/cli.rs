//! The binary's other commands: `embed` against the golden vectors, and configuration errors.

mod common;

use common::{Workspace, quarry_with_stdin};

#[test]
fn embed_reads_stdin_and_matches_the_golden_vectors() {
    let golden_path = common::repo_root().join("../shared/data/golden/all-MiniLM-L6-v2.jsonl");
    let golden: Vec<serde_json::Value> = std::fs::read_to_string(&golden_path)
        .unwrap_or_else(|e| panic!("{}: {e}", golden_path.display()))
        .lines()
        .skip(198)
        .take(4)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let input: String = golden
        .iter()
        .map(|g| format!("{}\n", g["text"].as_str().unwrap()))
        .collect();
    let ws = Workspace::new(None);
    let out = quarry_with_stdin(&ws.config, &["embed"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<f64>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for (got, want) in lines.iter().zip(&golden) {
        let want: Vec<f64> = want["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), 384);
        let cos: f64 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        assert!(cos >= 0.999, "cosine {cos}");
    }
}

#[test]
fn a_bad_config_names_file_line_and_field() {
    let ws = Workspace::new(None);
    let text = std::fs::read_to_string(&ws.config)
        .unwrap()
        .replace("name = \"docs\"", "name = \"docs\"\ncolour = \"x\"");
    std::fs::write(&ws.config, text).unwrap();
    let out = ws.quarry(&["sync", "test"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("knowledge-bases.toml:16:") && err.contains("colour"),
        "{err}"
    );
}

#[test]
fn unknown_knowledge_bases_are_named() {
    let ws = Workspace::new(None);
    let out = ws.quarry(&["query", "nope", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no knowledge base \"nope\"") && err.contains("test (TESTKB0001)"),
        "{err}"
    );
}

#[test]
fn parse_prints_what_would_be_indexed_or_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("prices.csv");
    std::fs::write(&csv, "Plan,Price\nPro,49\n").unwrap();
    let out = common::quarry_with_stdin(
        &dir.path().join("unused.toml"),
        &["parse", csv.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Plan: Pro; Price: 49\n"
    );

    let out = common::quarry_with_stdin(
        &dir.path().join("unused.toml"),
        &["parse", csv.to_str().unwrap(), "--json"],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["format"].as_str(), v["text"].as_str()),
        (Some("csv"), Some("Plan: Pro; Price: 49\n"))
    );

    let bad = dir.path().join("broken.csv");
    std::fs::write(&bad, "a,b\n1,2,3\n").unwrap();
    let out = common::quarry_with_stdin(
        &dir.path().join("unused.toml"),
        &["parse", bad.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("row on line 2 has 3 fields"));
}

#[test]
fn eval_scores_a_beir_folder() {
    let ws = Workspace::new(None);
    let beir = ws.dir.path().join("beir");
    std::fs::create_dir_all(beir.join("qrels")).unwrap();
    let docs = [
        (
            "d1",
            "Lighthouses",
            "The keeper climbs the tower every evening to light the lamp.",
        ),
        (
            "d2",
            "Volcanoes",
            "Magma chambers refill slowly and eruptions eject ash clouds.",
        ),
        (
            "d3",
            "Bread",
            "Sourdough needs a starter fed with flour and water twice a day.",
        ),
    ];
    let corpus: String = docs
        .iter()
        .map(|(id, title, text)| {
            format!(
                "{}\n",
                serde_json::json!({"_id": id, "title": title, "text": text})
            )
        })
        .collect();
    std::fs::write(beir.join("corpus.jsonl"), corpus).unwrap();
    std::fs::write(
        beir.join("queries.jsonl"),
        "{\"_id\": \"q1\", \"text\": \"who lights the lamp in the lighthouse tower\"}\n{\"_id\": \"q2\", \"text\": \"how to feed a sourdough starter\"}\n{\"_id\": \"q3\", \"text\": \"not judged\"}\n{\"_id\": \"q4\", \"text\": \"volcanic ash\"}\n",
    )
    .unwrap();
    std::fs::write(
        beir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq4\td9\t1\n",
    )
    .unwrap();
    let out = ws.quarry(&["eval", beir.to_str().unwrap(), "--split", "test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("3 documents, 3 judged queries"), "{report}");
    // By hand: q1 and q2 find their one relevant document first in every mode (each metric
    // 1); q4's relevant document is not in the corpus (each metric 0). Means: 2/3.
    for mode in ["SEMANTIC (HNSW)", "BM25 alone", "HYBRID"] {
        let row = format!("| {mode} | 0.667 | 0.667 | 0.667 | 0.667 |");
        assert!(report.contains(&row), "{row} not in\n{report}");
    }
}
