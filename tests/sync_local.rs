//! End to end through the binary: a local folder synced, changed and synced again; the
//! statistics and the query results follow the folder exactly.

mod common;

use common::{Workspace, sources, stats, texts};

const LIGHTHOUSE: &str = "The lighthouse keeper climbs 217 steps every evening to light the lamp. \
    The lamp burns paraffin and can be seen 20 nautical miles out at sea.";
const VOLCANO: &str = "Volcanic eruptions eject ash clouds that ground aircraft for days. \
    Magma chambers refill slowly over centuries before the next eruption.";
const BAKERY: &str = "# Sourdough baking\n\nFeed the starter twice a day with flour and water. \
    Bake the loaf at 250 degrees for forty minutes with steam in the oven.";
const ORCHARD: &str =
    "Tree,Fruit,Harvest month\nMalus domestica,Apple,September\nPyrus communis,Pear,August\n";

fn contains(response: &serde_json::Value, needle: &str) -> bool {
    texts(response).iter().any(|t| t.contains(needle))
}

#[test]
fn sync_follows_adds_edits_deletes_and_sidecars_exactly() {
    let ws = Workspace::new(None);
    ws.write("lighthouse.txt", LIGHTHOUSE);
    ws.write("notes/bakery.md", BAKERY);
    ws.write(
        "notes/bakery.md.metadata.json",
        r#"{"metadataAttributes": {"team": "kitchen", "year": 2023}}"#,
    );
    ws.write("orchard.csv", ORCHARD);

    // First sync: everything is new.
    let job = ws.sync();
    assert_eq!(job["status"], "COMPLETE");
    assert_eq!(job["knowledgeBaseId"], "TESTKB0001");
    assert_eq!(job["dataSourceId"], "TESTDS0001");
    assert_eq!(stats(&job), [3, 1, 3, 0, 0, 0, 0]);
    let r = ws.query("How many steps does the keeper climb?", 1, None);
    assert_eq!(sources(&r), [ws.uri("lighthouse.txt")]);

    // Nothing changed: nothing indexed.
    assert_eq!(stats(&ws.sync()), [3, 1, 0, 0, 0, 0, 0]);
    // Rewriting a file with the same bytes changes its mtime, not its content.
    ws.write("orchard.csv", ORCHARD);
    assert_eq!(stats(&ws.sync()), [3, 1, 0, 0, 0, 0, 0]);

    // Add one, change one, delete one.
    ws.write(
        "volcano.html",
        format!("<html><body><h1>Volcanoes</h1><p>{VOLCANO}</p></body></html>"),
    );
    ws.write(
        "lighthouse.txt",
        "The lighthouse was automated in 1987 and no keeper lives there any more.",
    );
    ws.remove("orchard.csv");
    assert_eq!(stats(&ws.sync()), [3, 1, 1, 1, 0, 1, 0]);
    let r = ws.query("lighthouse keeper steps lamp", 10, None);
    assert!(contains(&r, "automated in 1987"), "new text missing: {r}");
    assert!(!contains(&r, "217 steps"), "old text still indexed: {r}");
    assert!(
        !sources(&r).contains(&ws.uri("orchard.csv")),
        "deleted file still indexed"
    );
    assert_eq!(
        sources(&ws.query("magma chambers and ash clouds", 1, None)),
        [ws.uri("volcano.html")]
    );

    // A changed sidecar updates metadata without re-indexing the text.
    let kitchen = r#"{"equals": {"key": "team", "value": "kitchen"}}"#;
    let bakers = r#"{"equals": {"key": "team", "value": "bakers"}}"#;
    assert_eq!(
        sources(&ws.query("bread", 5, Some(kitchen))),
        [ws.uri("notes/bakery.md")]
    );
    let chunk_ids_before = ws.query("bread", 5, Some(kitchen))["retrievalResults"][0]["metadata"]["x-amz-bedrock-kb-chunk-id"].clone();
    ws.write(
        "notes/bakery.md.metadata.json",
        r#"{"metadataAttributes": {"team": "bakers", "year": 2024}}"#,
    );
    assert_eq!(stats(&ws.sync()), [3, 1, 0, 0, 1, 0, 0]);
    assert!(
        ws.query("bread", 5, Some(kitchen))["retrievalResults"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = ws.query("bread", 5, Some(bakers));
    assert_eq!(sources(&r), [ws.uri("notes/bakery.md")]);
    assert_eq!(r["retrievalResults"][0]["metadata"]["year"], 2024.0);
    assert_eq!(
        r["retrievalResults"][0]["metadata"]["x-amz-bedrock-kb-chunk-id"],
        chunk_ids_before
    );

    // A new sidecar (typed form) and a removed one are metadata changes too.
    ws.write(
        "volcano.html.metadata.json",
        r#"{"metadataAttributes": {"team": {"value": {"type": "STRING", "stringValue": "geology"}, "includeForEmbedding": false}}}"#,
    );
    ws.remove("notes/bakery.md.metadata.json");
    assert_eq!(stats(&ws.sync()), [3, 1, 0, 0, 2, 0, 0]);
    assert_eq!(
        sources(&ws.query(
            "eruption",
            5,
            Some(r#"{"equals": {"key": "team", "value": "geology"}}"#)
        )),
        [ws.uri("volcano.html")]
    );
    assert!(
        ws.query("bread", 5, Some(bakers))["retrievalResults"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Deleting a document and its sidecar together counts the document once.
    ws.remove("volcano.html");
    ws.remove("volcano.html.metadata.json");
    assert_eq!(stats(&ws.sync()), [2, 0, 0, 0, 0, 1, 0]);
    assert!(!sources(&ws.query("eruption", 10, None)).contains(&ws.uri("volcano.html")));

    // Every sync is a job, newest first.
    let out = ws.quarry(&["jobs", "test", "--json"]);
    assert!(out.status.success());
    let jobs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(jobs.len(), 7);
    assert_eq!(stats(&jobs[0]), [2, 0, 0, 0, 0, 1, 0]);
    assert_eq!(stats(&jobs[6]), [3, 1, 3, 0, 0, 0, 0]);
}

#[test]
fn malformed_files_fail_alone_with_reasons() {
    let ws = Workspace::new(None);
    ws.write("good.txt", LIGHTHOUSE);
    ws.write("also-good.md", BAKERY);
    ws.write("ragged.csv", "a,b\n1,2\n3,4,5\n");
    ws.write("binary.txt", b"PK\x03\x04\x00\x00\x00garbage");
    ws.write("scan.png", b"\x89PNG\r\n\x1a\n");
    ws.write("clip.mp4", b"\0\0\0\x18ftypmp42");
    ws.write("empty.md", "   \n");
    ws.write("also-good.md.metadata.json", "{not json");
    // 98 KB that make calamine ask for 137 GB (found by fuzzing): the worker process dies,
    // not the job.
    let hostile = common::repo_root().join("fuzz/regressions/spreadsheet/xls-sparse-cells-137gb");
    ws.write("huge.xls", std::fs::read(hostile).unwrap());
    let job = ws.sync();
    assert_eq!(job["status"], "COMPLETE");
    assert_eq!(stats(&job), [8, 1, 1, 0, 0, 0, 7]);
    let reasons: Vec<&str> = job["failureReasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let reason_for = |key: &str| {
        let uri = ws.uri(key);
        reasons
            .iter()
            .find(|r| r.starts_with(&format!("{uri}: ")))
            .unwrap_or_else(|| panic!("no reason for {key}: {reasons:?}"))
            .to_string()
    };
    assert!(reason_for("ragged.csv").contains("row on line 3 has 3 fields"));
    assert!(reason_for("binary.txt").contains("binary content"));
    // Images are read by OCR; this one ends after its signature.
    assert!(reason_for("scan.png").contains("malformed png: png header is truncated"));
    assert!(reason_for("clip.mp4").contains("unsupported file type \"mp4\""));
    assert!(reason_for("empty.md").contains("no text"));
    assert!(reason_for("also-good.md").contains("not valid JSON"));
    let huge = reason_for("huge.xls");
    assert!(
        huge.contains("parser process died") && huge.contains("memory allocation"),
        "{huge}"
    );
    assert_eq!(
        sources(&ws.query("lighthouse lamp", 1, None)),
        [ws.uri("good.txt")]
    );

    // Fixing a file indexes it on the next sync; the others keep failing.
    ws.write("ragged.csv", "a,b\n1,2\n3,4\n");
    assert_eq!(stats(&ws.sync()), [8, 1, 1, 0, 0, 0, 6]);
}

#[test]
fn queries_return_bedrocks_shape_and_filters_apply() {
    let ws = Workspace::new(Some(
        r#"{ strategy = "FIXED_SIZE", max_tokens = 20, overlap_percentage = 20 }"#,
    ));
    ws.write("lighthouse.txt", LIGHTHOUSE);
    ws.write("lighthouse.txt.metadata.json", r#"{"metadataAttributes": {"region": "north", "year": 2021, "tags": ["coast", "history"]}}"#);
    ws.write("volcano.txt", VOLCANO);
    ws.write(
        "volcano.txt.metadata.json",
        r#"{"metadataAttributes": {"region": "south", "year": 2024}}"#,
    );
    ws.write("bakery.md", BAKERY);
    assert_eq!(stats(&ws.sync()), [3, 2, 3, 0, 0, 0, 0]);

    let r = ws.query("lighthouse lamp", 2, None);
    let first = &r["retrievalResults"][0];
    assert!(
        first["content"]["text"]
            .as_str()
            .unwrap()
            .contains("lighthouse")
    );
    assert_eq!(first["content"]["type"], "TEXT");
    assert_eq!(first["location"]["type"], "CUSTOM");
    assert_eq!(
        first["location"]["customDocumentLocation"]["id"],
        ws.uri("lighthouse.txt")
    );
    assert!(first["score"].as_f64().unwrap() > r["retrievalResults"][1]["score"].as_f64().unwrap());
    let m = &first["metadata"];
    assert_eq!(m["x-amz-bedrock-kb-source-uri"], ws.uri("lighthouse.txt"));
    assert_eq!(m["x-amz-bedrock-kb-data-source-id"], "TESTDS0001");
    assert_eq!(m["x-amz-bedrock-kb-chunk-id"].as_str().unwrap().len(), 32);
    assert_eq!(m["region"], "north");
    assert_eq!(m["tags"], serde_json::json!(["coast", "history"]));

    // FIXED_SIZE at 20 tokens splits each two-sentence text (13 + 16 word pieces) in two.
    assert_eq!(
        ws.query(
            "lighthouse",
            100,
            Some(r#"{"equals": {"key": "region", "value": "north"}}"#)
        )["retrievalResults"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let all = |filter: &str| {
        let mut s = sources(&ws.query("anything", 100, Some(filter)));
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(
        all(r#"{"greaterThan": {"key": "year", "value": 2022}}"#),
        [ws.uri("volcano.txt")]
    );
    assert_eq!(
        all(r#"{"notEquals": {"key": "region", "value": "north"}}"#),
        [ws.uri("bakery.md"), ws.uri("volcano.txt")]
    );
    assert_eq!(
        all(
            r#"{"andAll": [{"listContains": {"key": "tags", "value": "coast"}}, {"lessThan": {"key": "year", "value": 2022}}]}"#
        ),
        [ws.uri("lighthouse.txt")]
    );
    assert_eq!(
        all(
            r#"{"orAll": [{"startsWith": {"key": "region", "value": "sou"}}, {"in": {"key": "year", "value": [2021]}}]}"#
        ),
        [ws.uri("lighthouse.txt"), ws.uri("volcano.txt")]
    );

    let out = ws.quarry(&[
        "query",
        "test",
        "x",
        "--filter",
        r#"{"greaterThan": {"key": "year", "value": "new"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("filter.greaterThan.value"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ws.quarry(&["query", "test", "x", "-k", "101"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 1 and 100"));
}

#[test]
fn a_new_process_sees_the_index_and_restarts_cleanly() {
    let ws = Workspace::new(None);
    ws.write("lighthouse.txt", LIGHTHOUSE);
    ws.write("bakery.md", BAKERY);
    ws.sync();
    let before = ws.query("sourdough starter", 2, None);
    // Each command is its own process; the store is reopened from the data directory.
    let after = ws.query("sourdough starter", 2, None);
    assert_eq!(before, after);
    assert_eq!(sources(&after)[0], ws.uri("bakery.md"));
    // A sync in a new process sees the ledger: nothing to do.
    assert_eq!(stats(&ws.sync()), [2, 0, 0, 0, 0, 0, 0]);
}
