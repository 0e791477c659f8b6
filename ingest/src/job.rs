//! Ingestion jobs in Bedrock's `IngestionJob` shape.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Starting,
    InProgress,
    Complete,
    Failed,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    pub number_of_documents_scanned: u64,
    pub number_of_metadata_documents_scanned: u64,
    pub number_of_new_documents_indexed: u64,
    pub number_of_modified_documents_indexed: u64,
    pub number_of_metadata_documents_modified: u64,
    pub number_of_documents_deleted: u64,
    pub number_of_documents_failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestionJob {
    pub knowledge_base_id: String,
    pub data_source_id: String,
    pub ingestion_job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub status: JobStatus,
    pub statistics: Statistics,
    #[serde(default)]
    pub failure_reasons: Vec<String>,
    #[serde(serialize_with = "iso8601")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "iso8601")]
    pub updated_at: DateTime<Utc>,
    /// Quarry's: the knowledge base's regression set scored after this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionResult>,
}

/// A regression set's scores after a job, against the last accepted job's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegressionResult {
    pub queries: usize,
    pub k: usize,
    pub recall_at_k: f64,
    pub ndcg_at_10: f64,
    /// The job compared with, and its scores (none for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_recall_at_k: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_ndcg_at_10: Option<f64>,
    /// A score fell more than the margin below the baseline's.
    pub regressed: bool,
    /// A person accepted these scores as the new baseline (`quarry accept`).
    #[serde(default)]
    pub accepted: bool,
}

/// Bedrock caps the list and each reason at 2048.
const MAX_REASONS: usize = 2048;
const MAX_REASON_CHARS: usize = 2048;

impl IngestionJob {
    /// A new job, STARTING now, with a fresh Bedrock-style id.
    pub fn starting(
        knowledge_base_id: &str,
        data_source_id: &str,
        description: Option<String>,
    ) -> Self {
        let now = Utc::now();
        Self {
            knowledge_base_id: knowledge_base_id.to_owned(),
            data_source_id: data_source_id.to_owned(),
            ingestion_job_id: quarry_core::ids::ResourceId::random().to_string(),
            description,
            status: JobStatus::Starting,
            statistics: Statistics::default(),
            failure_reasons: Vec::new(),
            started_at: now,
            updated_at: now,
            regression: None,
        }
    }

    pub fn fail_document(&mut self, uri: &str, reason: &str) {
        self.statistics.number_of_documents_failed += 1;
        if self.failure_reasons.len() < MAX_REASONS {
            let line: String = format!("{uri}: {reason}")
                .chars()
                .take(MAX_REASON_CHARS)
                .collect();
            self.failure_reasons.push(line);
        }
    }
}

fn iso8601<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_bedrocks_shape() {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let job = IngestionJob {
            knowledge_base_id: "KB00000001".into(),
            data_source_id: "DS00000001".into(),
            ingestion_job_id: "JOB0000001".into(),
            description: None,
            status: JobStatus::InProgress,
            statistics: Statistics {
                number_of_documents_scanned: 3,
                ..Default::default()
            },
            failure_reasons: vec![],
            started_at: t,
            updated_at: t,
            regression: None,
        };
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["status"], "IN_PROGRESS");
        assert_eq!(v["statistics"]["numberOfDocumentsScanned"], 3);
        assert_eq!(v["statistics"]["numberOfMetadataDocumentsModified"], 0);
        assert_eq!(v["startedAt"], "2026-01-02T03:04:05.000Z");
        assert!(v.get("description").is_none());
        let back: IngestionJob = serde_json::from_value(v).unwrap();
        assert_eq!(back, job);
    }
}
