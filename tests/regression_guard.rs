//! The retrieval regression guard through the real CLI and model: a regression set scored
//! after each `quarry sync`, a removed document that breaks a query marking the job as a
//! regression against the last good job (in its record, `quarry jobs`, the event log), `quarry
//! regression` scoring it on demand, and `quarry accept` making a job's scores the baseline.

mod common;

use common::Workspace;
use serde_json::Value;

const DOCS: [(&str, &str, &str); 4] = [
    (
        "lighthouse.md",
        "The lighthouse keeper climbs 120 steps each evening to light the lamp that warns ships off the reef.",
        "who lights the lamp in the lighthouse",
    ),
    (
        "bakery.md",
        "The bakery proofs its sourdough overnight and bakes rye loaves in a wood-fired oven before dawn.",
        "when is the sourdough baked",
    ),
    (
        "kiln.md",
        "Stoneware is fired in the kiln at 1280 degrees; glazes melt into glass as the kiln cools slowly.",
        "how hot is the stoneware kiln",
    ),
    (
        "orchard.md",
        "The orchard grows twelve apple varieties, picked by hand in September and pressed into cider.",
        "which apples grow in the orchard",
    ),
];

fn guarded() -> Workspace {
    let ws = Workspace::new(None);
    let config = std::fs::read_to_string(&ws.config).unwrap().replace(
        "embedding_model = \"minilm\"\n",
        "embedding_model = \"minilm\"\nregression = { queries = \"regression.jsonl\", k = 1, margin = 0.1 }\n",
    );
    std::fs::write(&ws.config, config).unwrap();
    let set: String = DOCS
        .iter()
        .map(|(key, _, query)| format!("{{\"query\": \"{query}\", \"documents\": [\"{key}\"]}}\n"))
        .collect();
    std::fs::write(ws.dir.path().join("regression.jsonl"), set).unwrap();
    for (key, text, _) in DOCS {
        ws.write(key, text);
    }
    ws
}

fn stdout(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.quarry(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_sync_that_breaks_a_query_is_marked_and_a_person_can_accept_it() {
    let ws = guarded();
    let first = ws.sync();
    let r = &first["regression"];
    assert_eq!(r["queries"], 4);
    assert_eq!(r["recallAtK"], 1.0, "{r}");
    assert_eq!(r["regressed"], false);
    assert!(
        r.get("baselineJobId").is_none(),
        "the first job has no baseline: {r}"
    );

    // The lighthouse page is taken down: its query can no longer find it.
    ws.remove("lighthouse.md");
    let second = ws.sync();
    let r = &second["regression"];
    assert_eq!(r["recallAtK"], 0.75, "{r}");
    assert_eq!(r["baselineJobId"], first["ingestionJobId"]);
    assert_eq!(r["baselineRecallAtK"], 1.0);
    assert_eq!(r["regressed"], true);

    let jobs = stdout(&ws, &["jobs", "test"]);
    assert!(
        jobs.contains("recall@1 0.750 (was 1.000)") && jobs.contains("REGRESSED"),
        "{jobs}"
    );
    let log = std::fs::read_to_string(ws.dir.path().join("data/events/log.jsonl")).unwrap();
    let told: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "ingestion-job.regression")
        .collect();
    assert_eq!(told.len(), 2);
    assert_eq!(told[1]["regression"]["regressed"], true);

    // On demand: the same scores, against the same baseline.
    let now: Value = serde_json::from_str(&stdout(&ws, &["regression", "test", "--json"])).unwrap();
    assert_eq!(now["recallAtK"], 0.75);
    assert_eq!(now["baselineJobId"], first["ingestionJobId"]);

    // Accepted, the second job is the baseline, and the same state is no regression.
    let second_id = second["ingestionJobId"].as_str().unwrap();
    stdout(&ws, &["accept", "test", second_id]);
    let third = ws.sync();
    let r = &third["regression"];
    assert_eq!(r["baselineJobId"], second["ingestionJobId"]);
    assert_eq!(r["regressed"], false, "{r}");
}

#[test]
fn a_bad_regression_set_is_reported_and_the_job_stands() {
    let ws = guarded();
    std::fs::write(
        ws.dir.path().join("regression.jsonl"),
        "{\"query\": \"x\"}\n",
    )
    .unwrap();
    let job = ws.sync();
    assert_eq!(job["status"], "COMPLETE");
    assert!(job.get("regression").is_none(), "{job}");
    let out = ws.quarry(&["regression", "test"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("regression.jsonl:1: not a regression case"),
        "{err}"
    );
}
