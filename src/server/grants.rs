//! Which knowledge bases each access key may use, as ids.
//!
//! A key's `knowledge_bases` line names knowledge bases by id or by name. Names are resolved
//! to ids once: when the configuration loads (for those that exist then) and when a
//! knowledge base of a still-unresolved name is created. The resolutions are kept in
//! `<data_dir>/access-grants.json`, so renaming a knowledge base, or restarting after one,
//! never changes who may use what: a grant follows the knowledge base it first named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::RwLock;

use anyhow::Context;
use quarry_core::config::AccessKeyConfig;

/// What one key may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    All,
    Some {
        ids: BTreeSet<String>,
        /// Names no knowledge base had yet; the first one created with the name takes it.
        pending: BTreeSet<String>,
    },
}

impl Grant {
    /// No knowledge base at all.
    pub fn none() -> Self {
        Grant::Some {
            ids: BTreeSet::new(),
            pending: BTreeSet::new(),
        }
    }

    pub fn allows(&self, kb_id: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Some { ids, .. } => ids.contains(kb_id),
        }
    }

    /// Whether this key may create a knowledge base of this name.
    fn may_create(&self, name: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Some { pending, .. } => pending.contains(name),
        }
    }
}

pub struct Grants {
    /// Key id → its grant.
    table: RwLock<BTreeMap<String, Grant>>,
    /// Key id → name → the id it was resolved to.
    resolved: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    kept: GrantStore,
}

/// Where resolved grants are kept: a file of the data directory (one node), or the cluster's
/// database, so every replica resolves a name to the same knowledge base.
pub enum GrantStore {
    File(PathBuf),
    Cluster(std::sync::Arc<quarry_state::PgConnection>),
}

const SETTING: &str = "access-grants";

impl GrantStore {
    fn read(&self) -> anyhow::Result<Option<String>> {
        match self {
            GrantStore::File(path) if path.is_file() => Ok(Some(fs_err::read_to_string(path)?)),
            GrantStore::File(_) => Ok(None),
            GrantStore::Cluster(db) => Ok(crate::cluster::settings::read(db, SETTING)?),
        }
    }

    fn exists(&self) -> bool {
        match self {
            GrantStore::File(path) => path.exists(),
            GrantStore::Cluster(_) => true,
        }
    }

    fn write(&self, text: &str) -> anyhow::Result<()> {
        match self {
            GrantStore::File(path) => {
                if let Some(dir) = path.parent() {
                    fs_err::create_dir_all(dir)?;
                }
                let tmp = path.with_extension("json.tmp");
                fs_err::write(&tmp, text)?;
                fs_err::rename(&tmp, path)?;
            }
            GrantStore::Cluster(db) => crate::cluster::settings::write(db, SETTING, text)?,
        }
        Ok(())
    }
}

impl Grants {
    /// Resolves every key's names against the knowledge bases there are (`(id, name)`),
    /// keeping earlier resolutions from `path` where their knowledge base still exists.
    pub fn load(
        keys: &[AccessKeyConfig],
        knowledge_bases: &[(String, String)],
        kept: GrantStore,
    ) -> anyhow::Result<Self> {
        let mut saved: BTreeMap<String, BTreeMap<String, String>> = match kept.read()? {
            Some(text) => serde_json::from_str(&text).context("the access keys' saved grants")?,
            None => BTreeMap::new(),
        };
        let exists = |id: &str| knowledge_bases.iter().any(|(i, _)| i == id);
        let mut table = BTreeMap::new();
        let mut resolved = BTreeMap::new();
        for key in keys {
            let names = key.knowledge_bases.as_deref().unwrap_or_default();
            if names.iter().any(|n| n == "*") {
                table.insert(key.id.clone(), Grant::All);
                continue;
            }
            let earlier = saved.remove(&key.id).unwrap_or_default();
            let mut mine = BTreeMap::new();
            let mut ids = BTreeSet::new();
            let mut pending = BTreeSet::new();
            for name in names {
                if exists(name) {
                    ids.insert(name.clone());
                } else if let Some(id) = earlier.get(name).filter(|id| exists(id)) {
                    ids.insert(id.clone());
                    mine.insert(name.clone(), id.clone());
                } else if let Some((id, _)) = knowledge_bases.iter().find(|(_, n)| n == name) {
                    ids.insert(id.clone());
                    mine.insert(name.clone(), id.clone());
                } else {
                    pending.insert(name.clone());
                }
            }
            table.insert(key.id.clone(), Grant::Some { ids, pending });
            resolved.insert(key.id.clone(), mine);
        }
        let grants = Self {
            table: RwLock::new(table),
            resolved: RwLock::new(resolved),
            kept,
        };
        grants.save()?;
        Ok(grants)
    }

    /// The grant of a configured key (nothing for an unknown one).
    pub fn of(&self, key_id: &str) -> Grant {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned()
            .unwrap_or_else(Grant::none)
    }

    pub fn may_create(&self, key_id: &str, name: &str) -> bool {
        self.of(key_id).may_create(name)
    }

    /// A knowledge base was created: every key waiting for its name now has its id.
    pub fn created(&self, id: &str, name: &str) -> anyhow::Result<()> {
        let mut changed = false;
        {
            let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
            let mut resolved = self.resolved.write().unwrap_or_else(|p| p.into_inner());
            for (key, grant) in table.iter_mut() {
                if let Grant::Some { ids, pending } = grant
                    && pending.remove(name)
                {
                    ids.insert(id.to_owned());
                    resolved
                        .entry(key.clone())
                        .or_default()
                        .insert(name.to_owned(), id.to_owned());
                    changed = true;
                }
            }
        }
        if changed {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> anyhow::Result<()> {
        let resolved = self.resolved.read().unwrap_or_else(|p| p.into_inner());
        if resolved.values().all(BTreeMap::is_empty) && !self.kept.exists() {
            return Ok(());
        }
        self.kept.write(&serde_json::to_string_pretty(&*resolved)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, kbs: &[&str]) -> AccessKeyConfig {
        AccessKeyConfig {
            id: id.into(),
            secret_env: "X".into(),
            knowledge_bases: Some(kbs.iter().map(|s| s.to_string()).collect()),
            buckets: Vec::new(),
        }
    }

    fn kbs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(i, n)| (i.to_string(), n.to_string()))
            .collect()
    }

    #[test]
    fn names_resolve_once_and_follow_their_knowledge_base() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access-grants.json");
        let keys = [key("A", &["team-a"]), key("B", &["team-b", "KBIDB00001"])];
        let now = kbs(&[("KBIDA00001", "team-a"), ("KBIDB00001", "x")]);
        let grants = Grants::load(&keys, &now, GrantStore::File(path.clone())).unwrap();
        assert!(grants.of("A").allows("KBIDA00001"));
        assert!(!grants.of("A").allows("KBIDB00001"));
        assert!(grants.of("B").allows("KBIDB00001"));
        assert!(grants.may_create("B", "team-b"));
        assert!(!grants.may_create("A", "team-b"));
        assert!(!grants.of("nobody").allows("KBIDA00001"));

        grants.created("KBIDC00001", "team-b").unwrap();
        assert!(grants.of("B").allows("KBIDC00001"));
        assert!(!grants.may_create("B", "team-b"));

        // After a restart in which KBIDA00001 was renamed away and another took its name,
        // A still has the one it was given, and not the newcomer.
        let renamed = kbs(&[
            ("KBIDA00001", "renamed"),
            ("KBIDX00001", "team-a"),
            ("KBIDC00001", "team-b"),
            ("KBIDB00001", "x"),
        ]);
        let again = Grants::load(&keys, &renamed, GrantStore::File(path)).unwrap();
        assert!(again.of("A").allows("KBIDA00001"));
        assert!(!again.of("A").allows("KBIDX00001"));
        assert!(again.of("B").allows("KBIDC00001"));
    }

    #[test]
    fn a_star_grants_everything() {
        let dir = tempfile::tempdir().unwrap();
        let grants = Grants::load(
            &[key("A", &["*"])],
            &[],
            GrantStore::File(dir.path().join("access-grants.json")),
        )
        .unwrap();
        assert!(grants.of("A").allows("ANYKB00001"));
        assert!(grants.may_create("A", "anything"));
    }
}
