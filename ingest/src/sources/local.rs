//! A folder on this machine. Hidden files and folders (`.name`) and symbolic links are
//! skipped, so nothing outside the folder is ever read.

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{Source, SourceError, SourceObject};

pub struct LocalFolder {
    root: PathBuf,
}

impl LocalFolder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        out: &mut Vec<SourceObject>,
    ) -> Result<(), SourceError> {
        let entries = fs_err::read_dir(dir).map_err(|e| SourceError::Unavailable(e.to_string()))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| SourceError::Unavailable(format!("{}: {e}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let file_type = entry
                .file_type()
                .map_err(|e| SourceError::Unavailable(e.to_string()))?;
            let key = format!("{prefix}{name}");
            if file_type.is_dir() {
                self.walk(&entry.path(), &format!("{key}/"), out)?;
            } else if file_type.is_file() {
                let meta = entry
                    .metadata()
                    .map_err(|e| SourceError::Unavailable(e.to_string()))?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                out.push(SourceObject {
                    key,
                    size: meta.len(),
                    version: mtime.to_string(),
                });
            }
        }
        Ok(())
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, SourceError> {
        let relative = Path::new(key);
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(SourceError::Object(format!(
                "refusing key {key:?} outside the folder"
            )));
        }
        Ok(self.root.join(relative))
    }
}

impl Source for LocalFolder {
    fn list(&self) -> Result<Vec<SourceObject>, SourceError> {
        if !self.root.is_dir() {
            return Err(SourceError::Unavailable(format!(
                "{} is not a folder",
                self.root.display()
            )));
        }
        let mut out = Vec::new();
        self.walk(&self.root, "", &mut out)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn fetch(&self, key: &str) -> Result<Vec<u8>, SourceError> {
        fs_err::read(self.path_of(key)?).map_err(|e| SourceError::Object(e.to_string()))
    }

    fn stat(&self, key: &str) -> Result<Option<SourceObject>, SourceError> {
        let path = self.path_of(key)?;
        if key.split('/').any(|part| part.starts_with('.')) {
            return Ok(None);
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(SourceObject {
                key: key.to_owned(),
                size: meta.len(),
                version: meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos())
                    .to_string(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SourceError::Object(format!("{}: {e}", path.display()))),
        }
    }

    fn uri(&self, key: &str) -> String {
        let path = self.root.join(key);
        let absolute = std::path::absolute(&path).unwrap_or(path);
        let mut uri = String::from("file://");
        for c in absolute.to_string_lossy().chars() {
            match c {
                ' ' => uri.push_str("%20"),
                '%' => uri.push_str("%25"),
                '#' => uri.push_str("%23"),
                '?' => uri.push_str("%3F"),
                c => uri.push(c),
            }
        }
        uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_recursively_skipping_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/.git")).unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("sub/b c.md"), "bb").unwrap();
        std::fs::write(dir.path().join("sub/.git/x"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let folder = LocalFolder::new(dir.path());
        let keys: Vec<(String, u64)> = folder
            .list()
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        assert_eq!(keys, [("a.txt".into(), 1), ("sub/b c.md".into(), 2)]);
        assert_eq!(folder.fetch("sub/b c.md").unwrap(), b"bb");
        assert!(folder.uri("sub/b c.md").ends_with("/sub/b%20c.md"));
        assert!(folder.fetch("../etc/passwd").is_err());
        assert_eq!(folder.stat("a.txt").unwrap().map(|o| o.size), Some(1));
        assert_eq!(folder.stat("missing.txt").unwrap(), None);
        assert_eq!(folder.stat("sub/.git/x").unwrap(), None);
        assert!(matches!(
            LocalFolder::new(dir.path().join("missing")).list(),
            Err(SourceError::Unavailable(_))
        ));
    }
}
