//! Drives the real `quarry` binary on a scratch folder of documents, with the real model.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model_dir() -> PathBuf {
    let dir = repo_root().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "run `make models` first"
    );
    dir
}

pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Workspace {
    /// A scratch folder with `docs/`, a data directory, and a config whose data source reads
    /// `docs/` with the given chunking (TOML inline table, or `None` for the default).
    pub fn new(chunking: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docs")).unwrap();
        let chunking = chunking
            .map(|c| format!("chunking = {c}"))
            .unwrap_or_default();
        let config = dir.path().join("knowledge-bases.toml");
        std::fs::write(
            &config,
            format!(
                r#"[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "{model}"

[[knowledge_bases]]
id = "TESTKB0001"
name = "test"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "TESTDS0001"
name = "docs"
type = "local"
path = "docs"
{chunking}
"#,
                model = model_dir().display()
            ),
        )
        .unwrap();
        Self { dir, config }
    }

    pub fn docs(&self) -> PathBuf {
        self.dir.path().join("docs")
    }

    pub fn write(&self, key: &str, content: impl AsRef<[u8]>) {
        let path = self.docs().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn remove(&self, key: &str) {
        std::fs::remove_file(self.docs().join(key)).unwrap();
    }

    pub fn quarry(&self, args: &[&str]) -> Output {
        quarry_with_stdin(&self.config, args, None)
    }

    /// Runs a sync and returns the finished job; panics when the command fails.
    pub fn sync(&self) -> Value {
        let out = self.quarry(&["sync", "test", "--json"]);
        assert!(
            out.status.success(),
            "sync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("sync --json prints one IngestionJob")
    }

    /// Runs a query and returns the RetrieveResponse.
    pub fn query(&self, text: &str, k: usize, filter: Option<&str>) -> Value {
        let k = k.to_string();
        let mut args = vec!["query", "test", text, "-k", &k, "--json"];
        if let Some(f) = filter {
            args.extend(["--filter", f]);
        }
        let out = self.quarry(&args);
        assert!(
            out.status.success(),
            "query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("query --json prints a RetrieveResponse")
    }

    pub fn uri(&self, key: &str) -> String {
        format!("file://{}", self.docs().join(key).display())
    }
}

pub fn quarry_with_stdin(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.arg("--config").arg(config).args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("quarry runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// The statistics of a job as (scanned, metadata scanned, new, modified, metadata modified,
/// deleted, failed).
pub fn stats(job: &Value) -> [u64; 7] {
    let s = &job["statistics"];
    [
        "numberOfDocumentsScanned",
        "numberOfMetadataDocumentsScanned",
        "numberOfNewDocumentsIndexed",
        "numberOfModifiedDocumentsIndexed",
        "numberOfMetadataDocumentsModified",
        "numberOfDocumentsDeleted",
        "numberOfDocumentsFailed",
    ]
    .map(|k| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("statistics lack {k}: {job}"))
    })
}

/// Source URIs of the results, in rank order.
pub fn sources(response: &Value) -> Vec<String> {
    response["retrievalResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["metadata"]["x-amz-bedrock-kb-source-uri"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

pub fn texts(response: &Value) -> Vec<String> {
    response["retrievalResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["content"]["text"].as_str().unwrap().to_owned())
        .collect()
}
