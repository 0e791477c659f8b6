//! `quarry inspect KB`: the index as the ledger and the store see it, as JSON, with what does
//! not agree between them (chunks no document owns, chunks the ledger records but the store
//! lacks, documents left half-written). After a completed sync all three lists are empty.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::knowledge_base::KnowledgeBase;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Knowledge base id or name.
    kb: String,
}

pub fn run(config_path: &Path, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    if config.cluster.is_some() {
        anyhow::bail!(
            "this configuration is a cluster's ([cluster]): inspect is a single-node command; the ledger is in the cluster's database (quarry_ledger) and `quarry jobs` reads its jobs"
        );
    }
    let kb = KnowledgeBase::open(&config, &args.kb)?;
    let ledger = kb.ledger();
    let mut documents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pending = Vec::new();
    let mut owned = BTreeSet::new();
    for ds in &kb.config.data_sources {
        for entry in ledger.entries(ds.id.get_ref().as_str())? {
            if entry.pending {
                pending.push(entry.key);
                continue;
            }
            let mut ids = entry.chunk_ids;
            ids.sort();
            owned.extend(ids.iter().cloned());
            documents.insert(entry.key, ids);
        }
    }
    let stored: BTreeSet<String> = kb.store.chunk_ids()?.into_iter().collect();
    let orphans: Vec<&String> = stored.difference(&owned).collect();
    let missing: Vec<&String> = owned.difference(&stored).collect();
    let report = json!({
        "knowledgeBaseId": kb.id(),
        "chunks": kb.store.len()?,
        "documents": documents,
        "pendingDocuments": pending,
        "orphanChunks": orphans,
        "missingChunks": missing,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}
