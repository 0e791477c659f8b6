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
    /// Who may continue it (the server writes `access key/knowledge base id`); others are
    /// told it does not exist.
    #[serde(default)]
    owner: String,
    turns: Vec<Turn>,
}

/// Turns kept per session (the prompt drops the oldest first anyway).
pub const MAX_TURNS: usize = 20;

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

/// Where sessions live: files under the data directory ([`SessionStore`], one node), or the
/// cluster's database (every replica continues any session).
pub trait Sessions: Send + Sync {
    /// Starts a session belonging to `owner` and returns its id.
    fn create(&self, owner: &str) -> Result<String, SessionError>;
    /// The turns of a live session of `owner` (`None`: the operator, who may read any). An
    /// unknown or expired id, or another owner's session, is the same error.
    fn turns(&self, id: &str, owner: Option<&str>) -> Result<Vec<Turn>, SessionError>;
    /// Adds a finished turn to a session of `owner` (`None`: the operator), keeping the last
    /// [`MAX_TURNS`].
    fn append(&self, id: &str, owner: Option<&str>, turn: Turn) -> Result<(), SessionError>;
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

    fn read(&self, id: &str) -> Result<SessionFile, SessionError> {
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
        Ok(file)
    }

    fn write(&self, id: &str, owner: &str, turns: &[Turn]) -> Result<(), SessionError> {
        let path = self.path(id);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec(&SessionFile {
            owner: owner.to_owned(),
            turns: turns.to_vec(),
        })
        .map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Forgets sessions idle for too long.
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

impl Sessions for SessionStore {
    fn create(&self, owner: &str) -> Result<String, SessionError> {
        std::fs::create_dir_all(&self.dir)?;
        self.sweep();
        let id = quarry_core::ids::random_uuid();
        self.write(&id, owner, &[])?;
        Ok(id)
    }

    fn turns(&self, id: &str, owner: Option<&str>) -> Result<Vec<Turn>, SessionError> {
        let file = self.read(id)?;
        match owner {
            Some(o) if o != file.owner => Err(SessionError::Unknown(id.into())),
            _ => Ok(file.turns),
        }
    }

    fn append(&self, id: &str, owner: Option<&str>, turn: Turn) -> Result<(), SessionError> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let file = self.read(id)?;
        if owner.is_some_and(|o| o != file.owner) {
            return Err(SessionError::Unknown(id.into()));
        }
        let mut turns = file.turns;
        turns.push(turn);
        let start = turns.len().saturating_sub(MAX_TURNS);
        self.write(id, &file.owner, &turns[start..])
    }
}

/// Checks every [`Sessions`] passes; `open` gives another handle on the same sessions each
/// call (another replica's, for the cluster's).
pub mod suite {
    use super::*;

    fn turn(q: &str) -> Turn {
        Turn {
            question: q.into(),
            answer: format!("answer to {q}"),
        }
    }

    pub fn turns_are_kept_in_order_across_handles(open: &dyn Fn() -> Box<dyn Sessions>) {
        let (a, b) = (open(), open());
        let id = a.create("KEY/KB").unwrap();
        assert!(valid_session_id(&id));
        assert!(b.turns(&id, Some("KEY/KB")).unwrap().is_empty());
        a.append(&id, Some("KEY/KB"), turn("one")).unwrap();
        b.append(&id, None, turn("two")).unwrap();
        assert_eq!(
            a.turns(&id, Some("KEY/KB")).unwrap(),
            vec![turn("one"), turn("two")]
        );
        for i in 0..MAX_TURNS {
            b.append(&id, None, turn(&i.to_string())).unwrap();
        }
        let kept = a.turns(&id, None).unwrap();
        assert_eq!(kept.len(), MAX_TURNS);
        assert_eq!(kept[MAX_TURNS - 1], turn(&(MAX_TURNS - 1).to_string()));
        assert!(matches!(
            a.turns("nope-123", None),
            Err(SessionError::Unknown(_))
        ));
    }

    pub fn a_session_answers_only_its_owner(open: &dyn Fn() -> Box<dyn Sessions>) {
        let (store, other) = (open(), open());
        let id = store.create("KEYA/KB1").unwrap();
        store.append(&id, Some("KEYA/KB1"), turn("secret")).unwrap();
        for who in ["KEYB/KB1", "KEYA/KB2"] {
            let read = other.turns(&id, Some(who)).unwrap_err();
            let unknown = other.turns("never-made", Some(who)).unwrap_err();
            assert_eq!(
                read.to_string().replace(&id, "ID"),
                unknown.to_string().replace("never-made", "ID")
            );
            assert!(matches!(
                other.append(&id, Some(who), turn("intrusion")),
                Err(SessionError::Unknown(_))
            ));
        }
        assert_eq!(
            other.turns(&id, Some("KEYA/KB1")).unwrap(),
            vec![turn("secret")]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Box<dyn Sessions> {
        static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| {
            std::env::temp_dir().join(format!("quarry-sessions-{}", fastrand::u64(..)))
        });
        Box::new(SessionStore::new(dir, Duration::from_secs(3600)))
    }

    #[test]
    fn turns_are_kept_in_order_across_handles() {
        suite::turns_are_kept_in_order_across_handles(&files);
    }

    #[test]
    fn a_session_answers_only_its_owner() {
        suite::a_session_answers_only_its_owner(&files);
    }

    #[test]
    fn unknown_malformed_and_idle_sessions_are_refused() {
        let dir = std::env::temp_dir().join(format!("quarry-sessions-{}", fastrand::u64(..)));
        let store = SessionStore::new(&dir, Duration::from_secs(3600));
        assert!(matches!(
            store.turns("nope-123", None),
            Err(SessionError::Unknown(_))
        ));
        assert!(matches!(
            store.turns("../../etc/passwd", None),
            Err(SessionError::Unknown(_))
        ));
        let id = store.create("KEY/KB").unwrap();
        let idle = SessionStore::new(&dir, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(
            idle.turns(&id, None),
            Err(SessionError::Unknown(_))
        ));
        assert!(!dir.join(format!("session-{id}.json")).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
