//! Reads `knowledge-bases.toml`: every error names the file, the line and the field.

use std::path::Path;

use anyhow::{Context, bail};
use quarry_core::config::Config;

pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text = fs_err::read_to_string(path)
        .with_context(|| "cannot read the configuration (set --config or QUARRY_CONFIG)")?;
    let mut config: Config = match toml::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            let line = e.span().map(|s| line_of(&text, s.start));
            let place = line.map(|l| format!(":{l}")).unwrap_or_default();
            bail!("{}{place}: {}", path.display(), e.message());
        }
    };
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    if let Err(e) = config.validate_and_resolve(&base) {
        let place = e
            .span
            .map(|s| format!(":{}", line_of(&text, s.start)))
            .unwrap_or_default();
        bail!("{}{place}: {}: {}", path.display(), e.field, e.message);
    }
    Ok(config)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    const GOOD: &str = r#"
[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "models/m"

[[knowledge_bases]]
id = "DEMOKB0001"
name = "demo"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "DEMODS0001"
name = "docs"
type = "local"
path = "docs"
"#;

    #[test]
    fn loads_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.toml");
        std::fs::write(&path, GOOD).unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.server.data_dir, dir.path().join("data"));
        let ds = &config.knowledge_bases[0].data_sources[0];
        assert_eq!(
            ds.path.as_ref().unwrap().get_ref(),
            &dir.path().join("docs")
        );
        assert_eq!(ds.chunking, quarry_core::config::ChunkingConfig::Default);
        assert!(
            config.knowledge_base("demo").is_some()
                && config.knowledge_base("DEMOKB0001").is_some()
        );
    }

    #[test]
    fn every_vector_store_and_chunking_strategy_loads() {
        use quarry_core::config::{ChunkingConfig, PgFieldMapping, VectorStoreConfig};
        let stores = [
            (
                r#"vector_store = { type = "pgvector", url = "postgres://q@db/kb", table = "kb.chunks", password_env = "PGPASS", fields = { primary_key = "uuid" } }"#,
                VectorStoreConfig::Pgvector {
                    url: "postgres://q@db/kb".into(),
                    table: "kb.chunks".into(),
                    password_env: Some("PGPASS".into()),
                    fields: PgFieldMapping {
                        primary_key: "uuid".into(),
                        ..PgFieldMapping::default()
                    },
                },
            ),
            (
                r#"vector_store = { type = "qdrant", url = "http://q:6334", collection = "kb", shard_number = 6, replication_factor = 2 }"#,
                VectorStoreConfig::Qdrant {
                    url: "http://q:6334".into(),
                    collection: "kb".into(),
                    api_key_env: None,
                    shard_number: Some(6),
                    replication_factor: Some(2),
                },
            ),
        ];
        for (line, want) in stores {
            let text = GOOD.replace(
                "embedding_model = \"minilm\"\n",
                &format!("embedding_model = \"minilm\"\n{line}\n"),
            );
            assert_eq!(
                load_str(&text).unwrap().knowledge_bases[0].vector_store,
                want
            );
        }
        let chunking = [
            (
                r#"{ strategy = "HIERARCHICAL", parent_max_tokens = 1500, child_max_tokens = 200, overlap_tokens = 60 }"#,
                ChunkingConfig::Hierarchical {
                    parent_max_tokens: 1500,
                    child_max_tokens: 200,
                    overlap_tokens: 60,
                },
            ),
            (
                r#"{ strategy = "SEMANTIC", max_tokens = 200, buffer_size = 1, breakpoint_percentile_threshold = 90 }"#,
                ChunkingConfig::Semantic {
                    max_tokens: 200,
                    buffer_size: 1,
                    breakpoint_percentile_threshold: 90,
                },
            ),
        ];
        for (table, want) in chunking {
            let text = GOOD.replace(
                "path = \"docs\"",
                &format!("path = \"docs\"\nchunking = {table}"),
            );
            assert_eq!(
                load_str(&text).unwrap().knowledge_bases[0].data_sources[0].chunking,
                want
            );
        }
        let text = GOOD.replace(
            "path = \"docs\"",
            "path = \"docs\"\nchunking = { strategy = \"SEMANTIC\", max_tokens = 200, buffer_size = 0, breakpoint_percentile_threshold = 20 }",
        );
        let e = load_str(&text).unwrap_err().to_string();
        assert!(
            e.contains("breakpoint_percentile_threshold") && e.contains("50..=99"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_name_file_line_and_field() {
        let text = GOOD.replace("type = \"local\"", "type = \"local\"\ncolour = \"blue\"");
        let e = load_str(&text).unwrap_err().to_string();
        assert!(e.contains("kb.toml:18:") && e.contains("colour"), "{e}");
    }

    #[test]
    fn bad_values_name_file_line_and_field() {
        let e = load_str(&GOOD.replace("DEMOKB0001", "demo-kb"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kb.toml:10:") && e.contains("10 characters"),
            "{e}"
        );
        let e =
            load_str(&GOOD.replace("embedding_model = \"minilm\"", "embedding_model = \"bge\""))
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("kb.toml:12:") && e.contains("embedding_model") && e.contains("bge"),
            "{e}"
        );
        let chunking =
            "path = \"docs\"\nchunking = { strategy = \"FIXED_SIZE\", max_tokens = 100 }";
        let e = load_str(&GOOD.replace("path = \"docs\"", chunking))
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlap_percentage"), "{e}");
        let e =
            load_str(&GOOD.replace("path = \"docs\"", "chunking = { strategy = \"SEMANTICS\" }"))
                .unwrap_err()
                .to_string();
        assert!(e.contains("SEMANTICS"), "{e}");
    }

    /// The embedded HNSW store is one process's: a cluster's replicas must share their
    /// vectors, so it is refused there, naming the stores to use.
    #[test]
    fn cluster_mode_refuses_the_embedded_store() {
        let cluster = "[cluster]\ndatabase_url = \"postgres://quarry@db/quarry\"\n\n";
        let e = load_str(&format!("{cluster}{GOOD}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("knowledge_bases[0].vector_store")
                && e.contains("pgvector")
                && e.contains("qdrant"),
            "{e}"
        );
        let pg = GOOD.replace(
            "embedding_model = \"minilm\"",
            "embedding_model = \"minilm\"\nvector_store = { type = \"pgvector\", url = \"postgres://quarry@db/quarry\", table = \"demo\" }",
        );
        let config = load_str(&format!("{cluster}{pg}")).unwrap();
        let c = config.cluster.unwrap();
        assert_eq!((c.lease_secs, c.claim_batch), (30, 8));
    }

    /// A key without a `knowledge_bases` line used to get every knowledge base.
    #[test]
    fn an_access_key_must_say_which_knowledge_bases_it_may_use() {
        let key = "\n[[server.access_keys]]\nid = \"AKIDSILENT0000000001\"\nsecret_env = \"S\"\n";
        let text = GOOD.replace(
            "data_dir = \"data\"\n",
            &format!("data_dir = \"data\"\n{key}"),
        );
        let e = load_str(&text).unwrap_err().to_string();
        assert!(
            e.contains("AKIDSILENT0000000001")
                && e.contains("server.access_keys[0].knowledge_bases")
                && e.contains("[\"*\"]"),
            "{e}"
        );
        let granted = text.replace(
            "secret_env = \"S\"\n",
            "secret_env = \"S\"\nknowledge_bases = [\"*\"]\n",
        );
        assert!(load_str(&granted).is_ok());
    }

    #[test]
    fn fixed_size_chunking_bounds_are_checked_like_the_apis() {
        for (bad, field) in [
            ("max_tokens = 0, overlap_percentage = 20", "max_tokens"),
            (
                "max_tokens = 100, overlap_percentage = 0",
                "overlap_percentage",
            ),
        ] {
            let chunking =
                format!("path = \"docs\"\nchunking = {{ strategy = \"FIXED_SIZE\", {bad} }}");
            let e = load_str(&GOOD.replace("path = \"docs\"", &chunking))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
