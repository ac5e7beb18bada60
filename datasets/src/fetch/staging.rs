//! A private scratch directory inside the data directory, so that fetched files only
//! appear under their final names after they have been verified.
//!
//! Files are downloaded and unpacked into `<data_dir>/.fetch-<name>-<pid>-<nanos>/`,
//! verified there, and then renamed into place one by one (a rename within one file
//! system is atomic). An interrupted fetch leaves at most a hidden scratch directory,
//! never a partial file under a real name. The scratch directory is removed on drop.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::DatasetError;

/// A scratch directory that is deleted (best effort) when dropped.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Creates `<data_dir>/.fetch-<name>-<pid>-<nanos>/` (and `data_dir` if needed) and
    /// refers to it by its absolute path.
    pub(crate) fn new(data_dir: &Path, name: &str) -> Result<Self, DatasetError> {
        std::fs::create_dir_all(data_dir).map_err(|e| DatasetError::io(data_dir, e))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = data_dir.join(format!(".fetch-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| DatasetError::io(&dir, e))?;
        // Absolute, because the fetch commands run with the scratch directory as cwd.
        let dir = std::fs::canonicalize(&dir).map_err(|e| DatasetError::io(&dir, e))?;
        Ok(Staging { dir })
    }

    /// The scratch directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Moves `src` (inside a staging directory of the same data directory) to `dest`
/// atomically, creating `dest`'s directory if needed. `stale` names other files that
/// would shadow `dest` (e.g. a plain copy when `dest` is gzip) and are removed first.
pub(crate) fn publish(src: &Path, dest: &Path, stale: &[PathBuf]) -> Result<(), DatasetError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DatasetError::io(parent, e))?;
    }
    for path in stale {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DatasetError::io(path, e)),
        }
    }
    std::fs::rename(src, dest).map_err(|e| DatasetError::io(dest, e))
}

/// Removes scratch directories `<data_dir>/.fetch-<name>-<pid>-…` whose process no
/// longer runs (a fetch killed before it could clean up). Best effort, and only where
/// `/proc` shows which processes run (Linux); elsewhere nothing is removed.
pub(crate) fn remove_abandoned(data_dir: &Path, name: &str) {
    let proc_fs = Path::new("/proc");
    if !proc_fs.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    let prefix = format!(".fetch-{name}-");
    for entry in entries.filter_map(Result::ok) {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().filter(|p| p.parse::<u32>().is_ok()) else {
            continue;
        };
        if !proc_fs.join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
