//! What `quarry cluster status` shows: each replica (from its heartbeats), the documents it
//! holds under lease, its lexical lag, and the running jobs with their queues.

use chrono::{DateTime, Utc};
use quarry_state::{PgConnection, StateError};
use serde::Serialize;

#[derive(Serialize)]
pub struct Replica {
    pub name: String,
    pub address: String,
    pub started_at: DateTime<Utc>,
    pub seconds_since_heartbeat: f64,
    pub ready: bool,
    /// Lexical changes logged that it has not applied yet.
    pub lexical_lag: i64,
    pub documents_processed: i64,
    /// Documents it holds under a live lease now.
    pub leases: i64,
}

#[derive(Serialize)]
pub struct RunningJob {
    pub ingestion_job_id: String,
    pub knowledge_base_id: String,
    pub data_source_id: String,
    pub status: String,
    pub queued: i64,
    pub claimed: i64,
    pub finished: i64,
}

#[derive(Serialize)]
pub struct Status {
    pub schema_version: i64,
    pub replicas: Vec<Replica>,
    pub running_jobs: Vec<RunningJob>,
}

pub fn read(db: &PgConnection) -> Result<Status, StateError> {
    db.run(|c| {
        let schema_version: i64 = c
            .query_one("SELECT coalesce(max(version), 0) FROM quarry_schema", &[])?
            .get(0);
        let replicas = c
            .query(
                "SELECT r.name, r.address, r.started_at,
                        extract(epoch FROM now() - r.heartbeat_at)::float8,
                        r.ready, r.lexical_lag, r.documents_processed,
                        (SELECT count(*) FROM quarry_work_items w
                          WHERE w.worker = r.name AND w.state = 'claimed' AND w.lease_until > now())
                 FROM quarry_replicas r ORDER BY r.name",
                &[],
            )?
            .iter()
            .map(|r| Replica {
                name: r.get(0),
                address: r.get(1),
                started_at: r.get(2),
                seconds_since_heartbeat: r.get(3),
                ready: r.get(4),
                lexical_lag: r.get(5),
                documents_processed: r.get(6),
                leases: r.get(7),
            })
            .collect();
        let running_jobs = c
            .query(
                "SELECT j.job_id, j.kb_id, j.data_source_id, j.status,
                        count(*) FILTER (WHERE w.state = 'queued'),
                        count(*) FILTER (WHERE w.state = 'claimed'),
                        count(*) FILTER (WHERE w.state IN ('done', 'failed'))
                 FROM quarry_jobs j LEFT JOIN quarry_work_items w ON w.job_id = j.job_id
                 WHERE j.status IN ('STARTING', 'IN_PROGRESS', 'STOPPING')
                 GROUP BY j.job_id, j.kb_id, j.data_source_id, j.status, j.started_at
                 ORDER BY j.started_at",
                &[],
            )?
            .iter()
            .map(|r| RunningJob {
                ingestion_job_id: r.get(0),
                knowledge_base_id: r.get(1),
                data_source_id: r.get(2),
                status: r.get(3),
                queued: r.get(4),
                claimed: r.get(5),
                finished: r.get(6),
            })
            .collect();
        Ok(Status {
            schema_version,
            replicas,
            running_jobs,
        })
    })
}
