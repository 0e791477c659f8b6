//! The HTTP API through the real AWS SDK for Python (boto3): each test runs one module of
//! `tests/boto3/` against the real `quarry serve`, which the module starts on a free port.

use std::process::Command;

fn run_module(module: &str) {
    let dir = common::repo_root().join("tests/boto3");
    common::model_dir();
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", module])
        .current_dir(&dir)
        .env("QUARRY_BIN", env!("CARGO_BIN_EXE_quarry"))
        .output()
        .expect("python3 runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{module} failed:\n{log}");
    eprintln!("{log}");
}

mod common;

#[test]
fn retrieve_through_boto3() {
    run_module("test_runtime");
}

#[test]
fn sigv4_auth_through_boto3() {
    run_module("test_auth");
}

#[test]
fn control_plane_through_boto3() {
    run_module("test_control_plane");
}

#[test]
fn throttling_metrics_and_shutdown() {
    run_module("test_operations");
}

#[test]
fn s3_data_sources_through_boto3() {
    run_module("test_s3_data_sources");
}

#[test]
fn events_schedules_and_job_locks() {
    run_module("test_events");
}

#[test]
fn kill_9_mid_sync_loses_nothing() {
    run_module("test_crash_safety");
}

#[test]
fn s3_bucket_of_1500_objects_and_its_changes() {
    run_module("test_s3_sync");
}

#[test]
fn direct_ingestion_through_boto3() {
    run_module("test_documents");
}

#[test]
fn hybrid_search_and_hierarchical_chunking_through_boto3() {
    run_module("test_hybrid");
}

#[test]
fn retrieve_and_generate_through_boto3() {
    run_module("test_generate");
}

#[test]
fn hardening_signatures_grants_sessions_buckets_and_open_mode() {
    run_module("test_hardening_auth");
}

#[test]
fn hardening_slow_clients_connection_cap_generations_tls() {
    run_module("test_hardening_load");
}

#[test]
fn remote_embedding_servers_and_quarry_as_one() {
    run_module("test_remote_embeddings");
}

#[test]
fn cluster_of_three_replicas_over_postgres() {
    run_module("test_cluster");
}

#[test]
fn reranking_through_boto3() {
    run_module("test_rerank");
}

#[test]
fn langchain_retriever_unchanged_but_for_the_endpoint() {
    run_module("test_langchain");
}

#[test]
fn llamaindex_retriever_unchanged_but_for_the_endpoint() {
    run_module("test_llamaindex");
}

#[test]
fn every_request_member_is_honoured_or_refused_by_name() {
    run_module("test_members");
}

#[test]
fn control_plane_parity_tokens_tags_rds_and_deletion_policies() {
    run_module("test_parity");
}

#[test]
fn console_in_headless_chromium() {
    run_module("test_console");
}

#[test]
fn ocr_of_scans_and_images_through_parse_and_sync() {
    run_module("test_ocr");
}

#[test]
fn word_97_and_powerpoint_files_made_by_libreoffice() {
    run_module("test_office_formats");
}

#[test]
fn job_events_to_webhooks_and_eventbridge() {
    run_module("test_job_events");
}

#[test]
fn switching_the_embedding_model_without_downtime() {
    run_module("test_model_switch");
}

#[test]
fn a_regressed_sync_is_held_until_accepted() {
    run_module("test_regression_hold");
}
