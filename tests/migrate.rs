//! `quarry migrate`: a knowledge base moved from the embedded HNSW store to PostgreSQL +
//! pgvector, or to Qdrant and on from there, answers every query with the same top 10,
//! without re-embedding. Needs the servers `make test` starts (QUARRY_TEST_PG_URL,
//! QDRANT_URL).

mod common;

use common::Workspace;
use serde_json::Value;

const TOPICS: [&str; 12] = [
    "Penguins huddle together to survive the Antarctic winter winds.",
    "A sourdough starter needs flour and water every day to stay active.",
    "Volcanic eruptions eject ash clouds high into the stratosphere.",
    "The lighthouse keeper lit the lamp at dusk every evening.",
    "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "Chess openings like the Sicilian Defence fight for the centre.",
    "Honeybees communicate the direction of flowers with a waggle dance.",
    "Marathon runners build endurance with long slow weekend runs.",
    "Glaciers carve U-shaped valleys as they move downhill over centuries.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "Electric cars recover energy through regenerative braking.",
    "Origami cranes are folded from a single square sheet of paper.",
];

const QUERIES: [&str; 5] = [
    "birds in the cold south",
    "how to make bread rise",
    "renewable energy at home",
    "insects and pollination",
    "mountains shaped by ice",
];

fn top10(ws: &Workspace, query: &str, search_type: &str) -> Vec<String> {
    let out = ws.quarry(&[
        "query",
        "test",
        query,
        "-k",
        "10",
        "--json",
        "--search-type",
        search_type,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: Value = serde_json::from_slice(&out.stdout).unwrap();
    response["retrievalResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["metadata"]["x-amz-bedrock-kb-chunk-id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn migrating_from_hnsw_to_pgvector_keeps_every_top_10() {
    let url = std::env::var("QUARRY_TEST_PG_URL").expect(
        "QUARRY_TEST_PG_URL is not set: run `make test`, which starts PostgreSQL + pgvector",
    );
    let ws = Workspace::new(None);
    for (i, text) in TOPICS.iter().enumerate() {
        ws.write(&format!("note-{i:02}.txt"), text);
    }
    let out = ws.quarry(&["sync", "test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before: Vec<Vec<String>> = QUERIES.iter().map(|q| top10(&ws, q, "SEMANTIC")).collect();
    let hybrid_before: Vec<Vec<String>> = QUERIES.iter().map(|q| top10(&ws, q, "HYBRID")).collect();
    assert!(before.iter().all(|ids| ids.len() == 10));

    let table = format!("migrated_{}", std::process::id());
    let store = format!(r#"{{ type = "pgvector", url = "{url}", table = "{table}" }}"#);
    let out = ws.quarry(&["migrate", "test", "--to", &store]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("copied 12 chunks"), "{report}");

    // Point the knowledge base at the new store and drop the old one, so nothing can come
    // from it any more.
    let config = std::fs::read_to_string(&ws.config).unwrap().replace(
        "embedding_model = \"minilm\"\n",
        &format!("embedding_model = \"minilm\"\nvector_store = {store}\n"),
    );
    std::fs::write(&ws.config, config).unwrap();
    std::fs::remove_dir_all(ws.dir.path().join("data/TESTKB0001/hnsw")).unwrap();

    let after: Vec<Vec<String>> = QUERIES.iter().map(|q| top10(&ws, q, "SEMANTIC")).collect();
    assert_eq!(after, before);
    let hybrid_after: Vec<Vec<String>> = QUERIES.iter().map(|q| top10(&ws, q, "HYBRID")).collect();
    assert_eq!(hybrid_after, hybrid_before);

    // Syncing again finds nothing to do: the ledger still matches the store.
    let out = ws.quarry(&["sync", "test", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = if job.is_array() { job[0].clone() } else { job };
    assert_eq!(job["statistics"]["numberOfNewDocumentsIndexed"], 0, "{job}");
    assert_eq!(
        job["statistics"]["numberOfModifiedDocumentsIndexed"], 0,
        "{job}"
    );
}

fn run(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.quarry(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Points the knowledge base at `store` in place of the store line before it (or the
/// default HNSW when there was none).
fn switch_store(ws: &Workspace, from: Option<&str>, store: &str) {
    let config = std::fs::read_to_string(&ws.config).unwrap();
    let config = match from {
        None => config.replace(
            "embedding_model = \"minilm\"\n",
            &format!("embedding_model = \"minilm\"\nvector_store = {store}\n"),
        ),
        Some(old) => config.replace(
            &format!("vector_store = {old}\n"),
            &format!("vector_store = {store}\n"),
        ),
    };
    std::fs::write(&ws.config, config).unwrap();
}

/// HNSW → Qdrant → pgvector: every move keeps SEMANTIC and HYBRID top 10s, and a sync after
/// each finds nothing to do.
#[test]
fn migrating_to_and_from_qdrant_keeps_every_top_10() {
    let qdrant = std::env::var("QDRANT_URL")
        .expect("QDRANT_URL is not set: run `make test`, which starts Qdrant");
    let pg = std::env::var("QUARRY_TEST_PG_URL")
        .expect("QUARRY_TEST_PG_URL is not set: run `make test`, which starts PostgreSQL");
    let ws = Workspace::new(None);
    for (i, text) in TOPICS.iter().enumerate() {
        ws.write(&format!("note-{i:02}.txt"), text);
    }
    run(&ws, &["sync", "test"]);
    let semantic: Vec<Vec<String>> = QUERIES.iter().map(|q| top10(&ws, q, "SEMANTIC")).collect();
    let hybrid: Vec<Vec<String>> = QUERIES.iter().map(|q| top10(&ws, q, "HYBRID")).collect();

    let id = std::process::id();
    let to_qdrant =
        format!(r#"{{ type = "qdrant", url = "{qdrant}", collection = "migrated_{id}" }}"#);
    let report = run(&ws, &["migrate", "test", "--to", &to_qdrant]);
    assert!(report.contains("copied 12 chunks"), "{report}");
    switch_store(&ws, None, &to_qdrant);
    std::fs::remove_dir_all(ws.dir.path().join("data/TESTKB0001/hnsw")).unwrap();
    let on_qdrant: Vec<Vec<String>> = QUERIES.iter().map(|q| top10(&ws, q, "SEMANTIC")).collect();
    assert_eq!(on_qdrant, semantic);
    let hybrid_on_qdrant: Vec<Vec<String>> =
        QUERIES.iter().map(|q| top10(&ws, q, "HYBRID")).collect();
    assert_eq!(hybrid_on_qdrant, hybrid);

    let to_pg = format!(r#"{{ type = "pgvector", url = "{pg}", table = "from_qdrant_{id}" }}"#);
    let report = run(&ws, &["migrate", "test", "--to", &to_pg]);
    assert!(report.contains("copied 12 chunks"), "{report}");
    switch_store(&ws, Some(&to_qdrant), &to_pg);
    let on_pg: Vec<Vec<String>> = QUERIES.iter().map(|q| top10(&ws, q, "SEMANTIC")).collect();
    assert_eq!(on_pg, semantic);

    let job: Value = serde_json::from_str(&run(&ws, &["sync", "test", "--json"])).unwrap();
    let job = if job.is_array() { job[0].clone() } else { job };
    assert_eq!(job["statistics"]["numberOfNewDocumentsIndexed"], 0, "{job}");
    assert_eq!(
        job["statistics"]["numberOfModifiedDocumentsIndexed"], 0,
        "{job}"
    );
}
