//! RetrieveAndGenerate sessions: the turns of a conversation, kept as one small JSON file a
//! session under the data directory (so the server and `quarry ask` share them, and they
//! outlive a restart), forgotten after a configurable idle time.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub question: String,
    pub answer: String,
}

#[derive(Serialize, Deserialize)]
struct SessionFile {
    turns: Vec<Turn>,
}

/// Turns kept per session (the prompt drops the oldest first anyway).
const MAX_TURNS: usize = 20;

pub struct SessionStore {
    dir: PathBuf,
    idle: Duration,
    /// Serialises read-modify-write of session files within this process.
    write: Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("Session with Id {0} is not valid. Please check and try again.")]
    Unknown(String),
    #[error("session store: {0}")]
    Io(#[from] std::io::Error),
}

/// Bedrock's session id shape: 2 to 100 of `[0-9a-zA-Z._:-]`.
pub fn valid_session_id(id: &str) -> bool {
    (2..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

impl SessionStore {
    pub fn new(dir: impl Into<PathBuf>, idle: Duration) -> Self {
        Self {
            dir: dir.into(),
            idle,
            write: Mutex::new(()),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        // `valid_session_id` admits no `/`, so the name stays inside the directory.
        self.dir.join(format!("session-{id}.json"))
    }

    fn expired(&self, modified: SystemTime) -> bool {
        modified.elapsed().is_ok_and(|age| age > self.idle)
    }

    /// Starts a session and returns its id (forgetting sessions idle for too long).
    pub fn create(&self) -> Result<String, SessionError> {
        std::fs::create_dir_all(&self.dir)?;
        self.sweep();
        let id = quarry_core::ids::random_uuid();
        self.write_turns(&id, &[])?;
        Ok(id)
    }

    /// The turns of a live session; an unknown or expired id is an error.
    pub fn turns(&self, id: &str) -> Result<Vec<Turn>, SessionError> {
        if !valid_session_id(id) {
            return Err(SessionError::Unknown(id.into()));
        }
        let path = self.path(id);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SessionError::Unknown(id.into()));
            }
            Err(e) => return Err(e.into()),
        };
        if meta.modified().is_ok_and(|m| self.expired(m)) {
            let _ = std::fs::remove_file(&path);
            return Err(SessionError::Unknown(id.into()));
        }
        let file: SessionFile = serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        Ok(file.turns)
    }

    /// Adds a finished turn to a session.
    pub fn append(&self, id: &str, turn: Turn) -> Result<(), SessionError> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut turns = self.turns(id)?;
        turns.push(turn);
        let start = turns.len().saturating_sub(MAX_TURNS);
        self.write_turns(id, &turns[start..])
    }

    fn write_turns(&self, id: &str, turns: &[Turn]) -> Result<(), SessionError> {
        let path = self.path(id);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec(&SessionFile {
            turns: turns.to_vec(),
        })
        .map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| self.expired(m));
            if stale && entry.file_name().to_string_lossy().starts_with("session-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(q: &str) -> Turn {
        Turn {
            question: q.into(),
            answer: format!("answer to {q}"),
        }
    }

    #[test]
    fn a_session_keeps_its_turns_in_order_across_store_instances() {
        let dir = std::env::temp_dir().join(format!("quarry-sessions-{}", fastrand::u64(..)));
        let store = SessionStore::new(&dir, Duration::from_secs(3600));
        let id = store.create().unwrap();
        assert!(valid_session_id(&id));
        assert!(store.turns(&id).unwrap().is_empty());
        store.append(&id, turn("one")).unwrap();
        store.append(&id, turn("two")).unwrap();
        let again = SessionStore::new(&dir, Duration::from_secs(3600));
        assert_eq!(again.turns(&id).unwrap(), vec![turn("one"), turn("two")]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_malformed_and_idle_sessions_are_refused() {
        let dir = std::env::temp_dir().join(format!("quarry-sessions-{}", fastrand::u64(..)));
        let store = SessionStore::new(&dir, Duration::from_secs(3600));
        assert!(matches!(
            store.turns("nope-123"),
            Err(SessionError::Unknown(_))
        ));
        assert!(matches!(
            store.turns("../../etc/passwd"),
            Err(SessionError::Unknown(_))
        ));
        let id = store.create().unwrap();
        let idle = SessionStore::new(&dir, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(idle.turns(&id), Err(SessionError::Unknown(_))));
        assert!(!dir.join(format!("session-{id}.json")).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
