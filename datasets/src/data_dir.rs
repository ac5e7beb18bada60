//! Where data sets live on disk.

use std::path::{Path, PathBuf};

use crate::error::DatasetError;

/// Environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "RBD_DATA";

/// The data directory: `$RBD_DATA` if set and non-empty, else `<user cache dir>/rbd`
/// (e.g. `~/.cache/rbd` on Linux).
///
/// MNIST is kept in `<data_dir>/mnist/`, Fashion-MNIST in `<data_dir>/fmnist/` and
/// CIFAR-10 in `<data_dir>/cifar10/cifar-10-batches-bin/`.
pub fn default_data_dir() -> Result<PathBuf, DatasetError> {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => dirs::cache_dir()
            .map(|d| d.join("rbd"))
            .ok_or(DatasetError::NoDataDir),
    }
}

/// Refuses a data directory that exists as something else than a directory (a file),
/// before a fetch tries to create directories in it.
pub fn check_data_dir(dir: &Path) -> Result<(), DatasetError> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(DatasetError::NotADataDir {
            path: dir.to_path_buf(),
        }),
        _ => Ok(()),
    }
}
