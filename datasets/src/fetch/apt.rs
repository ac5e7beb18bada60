//! Fashion-MNIST from the Debian package `dataset-fashion-mnist`.

use std::path::{Path, PathBuf};

use super::command;
use crate::catalog::IdxCatalog;
use crate::error::DatasetError;

/// The Debian package name.
pub(crate) const PACKAGE: &str = "dataset-fashion-mnist";
/// Where the gzipped IDX files sit inside the package.
const DATA_DIR_IN_DEB: &str = "usr/share/datasets/fashion-mnist";

/// What to run by hand when the automatic fetch fails.
pub(crate) fn manual(catalog: &IdxCatalog, dest: &Path) -> String {
    let dest = dest.display();
    format!(
        "To fetch {title} by hand, run:\n  \
         cd \"$(mktemp -d)\" && apt-get download {PACKAGE} && dpkg -x {PACKAGE}_*.deb x && \
         mkdir -p '{dest}' && cp {DATA_DIR_IN_DEB_X}/*-ubyte.gz '{dest}/'\n\
         (if apt-get cannot find the package, run `apt-get update` as root first). \
         The four files from github.com/zalandoresearch/fashion-mnist (data/fashion/: {names}; \
         plain or .gz) placed in {dest} work too; they are checked against pinned SHA-256 \
         sums of their decompressed contents.",
        title = catalog.title,
        DATA_DIR_IN_DEB_X = format_args!("x/{DATA_DIR_IN_DEB}"),
        names = catalog.files().map(|f| f.name).join(", "),
    )
}

/// Runs `apt-get download` and `dpkg -x` in `work`; returns the directory of the
/// unpacked package that holds the gzipped IDX files.
pub(crate) fn download(
    catalog: &IdxCatalog,
    work: &Path,
    manual: &str,
) -> Result<PathBuf, DatasetError> {
    command::run(
        catalog.title,
        "apt-get",
        &["download", PACKAGE],
        work,
        manual,
    )?;
    let deb = find_deb(work).ok_or_else(|| DatasetError::MissingFromPackage {
        dataset: catalog.title,
        path: work.join(format!("{PACKAGE}_*.deb")),
        manual: manual.to_string(),
    })?;
    let root = work.join("root");
    let (deb_str, root_str) = (deb.to_string_lossy(), root.to_string_lossy());
    command::run(
        catalog.title,
        "dpkg",
        &["-x", &deb_str, &root_str],
        work,
        manual,
    )?;
    Ok(root.join(DATA_DIR_IN_DEB))
}

/// The first `dataset-fashion-mnist_*.deb` in `dir`.
fn find_deb(dir: &Path) -> Option<PathBuf> {
    let prefix = format!("{PACKAGE}_");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
}
