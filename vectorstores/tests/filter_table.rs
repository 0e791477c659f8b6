//! The README's filter-semantics table (operator × store), from the shared suite's filter
//! cases run on every store: `hnsw`, `pgvector` at QUARRY_TEST_PG_URL and `qdrant` at
//! QDRANT_URL (`make test` starts both servers). Prints the table and writes it to
//! `target/filter-semantics.md`; fails if any store disagrees with Bedrock.
//!
//! `scripts/with-postgres.py -- scripts/with-qdrant.py -- cargo test -p quarry-vectorstores --test filter_table -- --nocapture`

use std::collections::BTreeMap;
use std::path::Path;

use quarry_core::VectorStore;
use quarry_vectorstores::suite::{FilterOutcome, OpenStore, filter_outcomes};
use quarry_vectorstores::{
    FieldMapping, HnswParams, HnswStore, PgVectorConfig, PgVectorStore, QdrantConfig, QdrantStore,
};

fn folder_name(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    name.to_lowercase()
}

#[test]
fn filter_semantics_table() {
    let mut stores: Vec<(&str, Box<OpenStore>)> = vec![(
        "hnsw",
        Box::new(|dir: &Path, dim: usize| -> Box<dyn VectorStore> {
            Box::new(HnswStore::open(dir, dim, HnswParams::default()).unwrap())
        }),
    )];
    let required = |var: &str| {
        std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} is not set: run with `make test`, which starts PostgreSQL and Qdrant")
        })
    };
    {
        let url = required("QUARRY_TEST_PG_URL");
        stores.push((
            "pgvector",
            Box::new(move |dir: &Path, dim: usize| -> Box<dyn VectorStore> {
                let config = PgVectorConfig {
                    url: url.clone(),
                    table: format!("filters_{}", folder_name(dir)),
                    password: None,
                    fields: FieldMapping::default(),
                };
                Box::new(PgVectorStore::open(&config, dim).unwrap())
            }),
        ));
    }
    {
        let url = required("QDRANT_URL");
        stores.push((
            "qdrant",
            Box::new(move |dir: &Path, dim: usize| -> Box<dyn VectorStore> {
                let config = QdrantConfig {
                    url: url.clone(),
                    collection: format!("filters_{}", folder_name(dir)),
                    api_key: std::env::var("QDRANT_API_KEY").ok(),
                    shard_number: None,
                    replication_factor: None,
                };
                Box::new(QdrantStore::open(&config, dim).unwrap())
            }),
        ));
    }
    // Operator → store → all of that operator's cases passed.
    let mut table: BTreeMap<String, BTreeMap<&str, bool>> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for (name, open) in &stores {
        let dir = tempfile::tempdir().unwrap();
        for FilterOutcome {
            operator,
            filter,
            passed,
            detail,
        } in filter_outcomes(open.as_ref(), dir.path())
        {
            let cell = table
                .entry(operator)
                .or_default()
                .entry(name)
                .or_insert(true);
            *cell &= passed;
            if !passed {
                failures.push(format!("{name}: {filter}: {detail}"));
            }
        }
    }
    let names: Vec<&str> = stores.iter().map(|(n, _)| *n).collect();
    let mut md = format!(
        "| operator | {} |\n|---|{}\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for (operator, row) in &table {
        let cells: Vec<&str> = names
            .iter()
            .map(|n| if row[n] { "✓" } else { "✗" })
            .collect();
        md.push_str(&format!("| `{operator}` | {} |\n", cells.join(" | ")));
    }
    println!("{md}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/filter-semantics.md");
    let _ = std::fs::write(out, &md);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
