//! The shared suite on SQLite: every handle is another connection to the same file.

use std::path::PathBuf;
use std::sync::OnceLock;

use quarry_state::{SqliteWorkQueue, WorkQueue};

fn open() -> Box<dyn WorkQueue> {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let path: PathBuf = dir.path().join("state.sqlite");
    Box::new(SqliteWorkQueue::open(&path).unwrap())
}

quarry_state::work_queue_suite!(open);
