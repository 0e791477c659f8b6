//! One running job per data source, across processes: a job holds an exclusive lock on
//! `<kb dir>/locks/<data source id>.lock` for as long as it runs, and the lock file names the
//! job and process, so a refused start can say who holds it. The operating system releases
//! the lock when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

pub struct DataSourceLock {
    _file: File,
}

/// Who holds a data source's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder(pub String);

impl DataSourceLock {
    /// Takes the lock for `job_id`, or says who holds it.
    pub fn try_acquire(
        kb_dir: &Path,
        data_source_id: &str,
        job_id: &str,
    ) -> std::io::Result<Result<Self, Holder>> {
        let dir = kb_dir.join("locks");
        std::fs::create_dir_all(&dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(format!("{data_source_id}.lock")))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                write!(
                    file,
                    "ingestion job {job_id} (process {})",
                    std::process::id()
                )?;
                file.flush()?;
                Ok(Ok(Self { _file: file }))
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Ok(Err(Holder(if holder.is_empty() {
                    "another process".into()
                } else {
                    holder
                })))
            }
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataSourceLock::try_acquire(dir.path(), "DS00000001", "JOB0000001")
            .unwrap()
            .unwrap();
        let refused = DataSourceLock::try_acquire(dir.path(), "DS00000001", "JOB0000002").unwrap();
        let Err(Holder(who)) = refused else {
            panic!("a second lock was granted")
        };
        assert!(who.contains("JOB0000001"), "{who}");
        // Another data source is independent.
        assert!(
            DataSourceLock::try_acquire(dir.path(), "DS00000002", "JOB0000003")
                .unwrap()
                .is_ok()
        );
        drop(first);
        assert!(
            DataSourceLock::try_acquire(dir.path(), "DS00000001", "JOB0000004")
                .unwrap()
                .is_ok()
        );
    }
}
