//! Which generation of a knowledge base's vector index serves, which is being built, and
//! which are kept until `quarry gc`: `<kb dir>/index-generations.json`, replaced atomically
//! (written beside, synced, renamed), so a crash leaves the old record or the new one.
//!
//! Generation 0 is the index a knowledge base has always had (`<kb dir>/hnsw`, the table or
//! collection its configuration names); a knowledge base that never switched models has no
//! file and serves generation 0 with its configured model.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::regression::Scores;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Generation {
    pub number: u32,
    /// The embedding model (a name of `[models]`) its vectors come from.
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retired {
    #[serde(flatten)]
    pub generation: Generation,
    pub retired_at: DateTime<Utc>,
}

/// The regression set scored on both indexes before a switch's swap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchRegression {
    pub old: Scores,
    pub new: Scores,
}

/// The last switch that finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchRecord {
    pub from: Generation,
    pub to: Generation,
    pub started_at: DateTime<Utc>,
    pub swapped_at: DateTime<Utc>,
    pub chunks: usize,
    /// Documents whose embedded metadata the next sync embeds again with their text.
    #[serde(default)]
    pub documents_to_embed_again: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<SwitchRegression>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Building {
    #[serde(flatten)]
    pub generation: Generation,
    pub started_at: DateTime<Utc>,
}

/// A copy of the index serving in the live one's place ([`super::held`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// The job it is held for: running, or regressed and waiting to be accepted.
    pub job_id: String,
    pub since: DateTime<Utc>,
    pub regressed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexState {
    pub format_version: u32,
    pub active: Generation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<Building>,
    #[serde(default)]
    pub retired: Vec<Retired>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_switch: Option<SwitchRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

const FORMAT_VERSION: u32 = 1;

pub fn path(kb_dir: &Path) -> PathBuf {
    kb_dir.join("index-generations.json")
}

impl IndexState {
    /// The state of a knowledge base that never switched: generation 0 of its model.
    pub fn initial(model: &str) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            active: Generation {
                number: 0,
                model: model.to_owned(),
            },
            building: None,
            retired: Vec::new(),
            last_switch: None,
            held: None,
        }
    }

    /// The recorded state, or the initial one for `configured_model` when there is none.
    pub fn load(kb_dir: &Path, configured_model: &str) -> anyhow::Result<Self> {
        let path = path(kb_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::initial(configured_model));
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: Self =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        if state.format_version != FORMAT_VERSION {
            anyhow::bail!(
                "{}: format version {}; this build reads {FORMAT_VERSION}",
                path.display(),
                state.format_version
            );
        }
        Ok(state)
    }

    pub fn save(&self, kb_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(kb_dir)?;
        let path = path(kb_dir);
        let tmp = path.with_extension("json.tmp");
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        if let Ok(dir) = std::fs::File::open(kb_dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Brings the record in line with the model the configuration now names: a switch to it
    /// is planned (a new generation), one to another model is replaced, and one back to the
    /// serving model is dropped. Returns whether anything changed.
    pub fn plan(&mut self, configured_model: &str) -> bool {
        let target = self.building.as_ref().map(|b| b.generation.model.as_str());
        if target == Some(configured_model)
            || (target.is_none() && self.active.model == configured_model)
        {
            return false;
        }
        if self.active.model == configured_model {
            self.building = None;
            return true;
        }
        let number = self.next_number();
        self.building = Some(Building {
            generation: Generation {
                number,
                model: configured_model.to_owned(),
            },
            started_at: Utc::now(),
        });
        true
    }

    /// A number no generation has used (so a replaced build's leftovers are never reused).
    fn next_number(&self) -> u32 {
        let mut highest = self.active.number;
        if let Some(b) = &self.building {
            highest = highest.max(b.generation.number);
        }
        for r in &self.retired {
            highest = highest.max(r.generation.number);
        }
        highest + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_follows_the_configured_model_and_never_reuses_a_number() {
        let mut s = IndexState::initial("a");
        assert!(!s.plan("a"));
        assert!(s.plan("b"));
        assert_eq!(s.building.as_ref().unwrap().generation.number, 1);
        assert!(!s.plan("b"), "the same target again changes nothing");
        assert!(s.plan("c"));
        assert_eq!(s.building.as_ref().unwrap().generation.number, 2);
        assert!(s.plan("a"), "back to the serving model: nothing to build");
        assert!(s.building.is_none());
        assert!(s.plan("b"));
        assert_eq!(s.building.as_ref().unwrap().generation.number, 1);
    }

    #[test]
    fn saved_state_reads_back_and_a_missing_file_is_generation_zero() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            IndexState::load(dir.path(), "a").unwrap(),
            IndexState::initial("a")
        );
        let mut s = IndexState::initial("a");
        s.plan("b");
        s.save(dir.path()).unwrap();
        assert_eq!(IndexState::load(dir.path(), "ignored").unwrap(), s);
        std::fs::write(path(dir.path()), "{").unwrap();
        assert!(IndexState::load(dir.path(), "a").is_err());
    }
}
