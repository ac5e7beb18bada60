//! CIFAR-10 on first use: the official binary archive, downloaded (or taken from a local
//! copy, or made by a builder script), verified, and unpacked atomically into
//! `<data_dir>/cifar10/cifar-10-batches-bin/`.
//!
//! Everything happens in a scratch directory inside the data directory; the unpacked
//! batches are renamed into place only once the archive's SHA-256 and every file's size
//! check out. A failed or killed fetch leaves no partial data set under the real name.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::command;
use super::http::{download, DownloadProgress};
use super::is_file;
use super::staging::{self, Staging};
use crate::checksum::sha256_of_reader;
use crate::cifar::{CIFAR_RECORD, CIFAR_RECORDS_PER_FILE, CIFAR_TEST_FILE, CIFAR_TRAIN_FILES};
use crate::cifar_load::{cifar10_dir, resolve_cifar10_dir, CIFAR_BATCHES_DIR};
use crate::error::DatasetError;
use crate::kind::Split;

/// The official "CIFAR-10 binary version" (Krizhevsky, 2009).
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// SHA-256 of `cifar-10-binary.tar.gz`, as pinned by tensorflow-datasets
/// (`url_checksums/cifar10.txt`); the page above publishes its MD5,
/// `c32a1d4ab5d03f1284b67883e8d87530`.
pub const CIFAR10_ARCHIVE_SHA256: &str =
    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd";
/// Length of `cifar-10-binary.tar.gz` in bytes.
pub const CIFAR10_ARCHIVE_BYTES: u64 = 170_052_171;
/// Environment variable: download the archive from this URL instead of [`CIFAR10_URL`]
/// (a mirror; the file must still match [`CIFAR10_ARCHIVE_SHA256`]).
pub const CIFAR10_URL_ENV: &str = "RBD_CIFAR10_URL";
/// Environment variable: a local copy of `cifar-10-binary.tar.gz` to unpack instead of
/// downloading (checked against [`CIFAR10_ARCHIVE_SHA256`]).
pub const CIFAR10_ARCHIVE_ENV: &str = "RBD_CIFAR10_ARCHIVE";
/// Environment variable: a builder script run as `python3 SCRIPT DEST` that writes
/// `DEST/cifar-10-batches-bin/` (e.g. from a JPEG copy), instead of downloading.
pub const CIFAR10_BUILDER_ENV: &str = "RBD_CIFAR10_BUILDER";

/// Extra files of the official archive kept beside the batches (class names, readme).
const SMALL_FILES: [&str; 2] = ["batches.meta.txt", "readme.html"];
/// The most bytes unpacked for one of [`SMALL_FILES`].
const SMALL_FILE_LIMIT: u64 = 1 << 20;

/// Where CIFAR-10 comes from when `<data_dir>/cifar10/` lacks it. In order of
/// precedence: a local archive, a builder script, a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cifar10Source {
    /// URL of `cifar-10-binary.tar.gz` ([`CIFAR10_URL`] or `$RBD_CIFAR10_URL`).
    pub url: String,
    /// A local copy of the archive to unpack instead (`$RBD_CIFAR10_ARCHIVE`).
    pub archive: Option<PathBuf>,
    /// A builder script to run instead (`$RBD_CIFAR10_BUILDER`).
    pub builder: Option<PathBuf>,
    /// Required SHA-256 (lower-case hex) of the archive, downloaded or local.
    pub sha256: String,
    /// Required length of the archive in bytes, when known.
    pub size: Option<u64>,
}

impl Cifar10Source {
    /// The official archive from its official URL, no offline option.
    pub fn official() -> Self {
        Cifar10Source {
            url: CIFAR10_URL.to_string(),
            archive: None,
            builder: None,
            sha256: CIFAR10_ARCHIVE_SHA256.to_string(),
            size: Some(CIFAR10_ARCHIVE_BYTES),
        }
    }

    /// [`official`](Self::official), with the URL, local archive and builder taken from
    /// `$RBD_CIFAR10_URL`, `$RBD_CIFAR10_ARCHIVE` and `$RBD_CIFAR10_BUILDER` where set
    /// (and not empty).
    pub fn from_env() -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let mut source = Cifar10Source::official();
        if let Some(url) = var(CIFAR10_URL_ENV) {
            source.url = url.to_string_lossy().into_owned();
        }
        source.archive = var(CIFAR10_ARCHIVE_ENV).map(PathBuf::from);
        source.builder = var(CIFAR10_BUILDER_ENV).map(PathBuf::from);
        source
    }
}

/// Makes sure the batch files of `split` are under `<data_dir>/cifar10/`, fetching the
/// whole data set from `source` if they are not; returns the directory holding them.
/// Messages go to `log`, download progress to `progress`.
pub fn ensure_cifar10(
    data_dir: &Path,
    split: Split,
    source: &Cifar10Source,
    log: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(DownloadProgress),
) -> Result<PathBuf, DatasetError> {
    let dir = cifar10_dir(data_dir);
    match resolve_cifar10_dir(&dir, split) {
        Ok(found) => return Ok(found),
        Err(DatasetError::CifarMissing { .. }) => {}
        Err(e) => return Err(e),
    }
    fetch_cifar10(data_dir, source, log, progress)?;
    resolve_cifar10_dir(&dir, split)
}

/// Fetches CIFAR-10 from `source` into `<data_dir>/cifar10/cifar-10-batches-bin/`
/// (files already there are kept); returns that directory.
pub fn fetch_cifar10(
    data_dir: &Path,
    source: &Cifar10Source,
    log: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(DownloadProgress),
) -> Result<PathBuf, DatasetError> {
    let target = cifar10_dir(data_dir).join(CIFAR_BATCHES_DIR);
    let help = offline_help(data_dir, source);
    staging::remove_abandoned(data_dir, "cifar10");
    let staging = Staging::new(data_dir, "cifar10")?;
    let unpacked = if let Some(archive) = &source.archive {
        log(&format!(
            "unpacking CIFAR-10 from {} (${CIFAR10_ARCHIVE_ENV}) ...",
            archive.display()
        ));
        let file = File::open(archive).map_err(|e| DatasetError::io(archive, e))?;
        // Bounded like a download: never more than the pinned size plus one byte is
        // read (a device such as /dev/zero would otherwise be hashed forever).
        let length_error = |n: String| DatasetError::BadArchive {
            archive: archive.display().to_string(),
            reason: format!(
                "it has {n} bytes, the pinned cifar-10-binary.tar.gz has {}",
                source.size.unwrap_or_default()
            ),
        };
        if let (Some(want), Ok(meta)) = (source.size, file.metadata()) {
            if meta.is_file() && meta.len() > want {
                return Err(length_error(meta.len().to_string()));
            }
        }
        let limit = source.size.map_or(u64::MAX, |s| s + 1);
        let (actual, n) = sha256_of_reader(archive, file, limit)?;
        if let Some(want) = source.size.filter(|&want| n > want) {
            return Err(length_error(format!("more than {want}")));
        }
        check_archive_sum(&archive.display().to_string(), source, actual, &help)?;
        let origin = archive.display().to_string();
        unpack_cifar_archive(archive, &origin, staging.path(), CIFAR_RECORDS_PER_FILE)?
    } else if let Some(builder) = &source.builder {
        build(builder, staging.path(), &help, log)?
    } else {
        log(&format!("downloading CIFAR-10 from {} ...", source.url));
        let archive = staging.path().join("cifar-10-binary.tar.gz");
        let actual = download(&source.url, &archive, source.size, &help, progress)?;
        check_archive_sum(&source.url, source, actual, &help)?;
        log(&format!(
            "  verified {} (sha256 {})",
            source.url, source.sha256
        ));
        unpack_cifar_archive(
            &archive,
            &source.url,
            staging.path(),
            CIFAR_RECORDS_PER_FILE,
        )?
    };
    publish_dir(&unpacked, &target)?;
    log(&format!("CIFAR-10 ready in {}", target.display()));
    Ok(target)
}

fn check_archive_sum(
    what: &str,
    source: &Cifar10Source,
    actual: String,
    help: &str,
) -> Result<(), DatasetError> {
    if actual == source.sha256 {
        return Ok(());
    }
    Err(DatasetError::ArchiveChecksum {
        archive: what.to_string(),
        expected: source.sha256.clone(),
        actual,
        help: help.to_string(),
    })
}

/// Unpacks the batch files (and the small metadata files) of an archive in the
/// official layout into `into/cifar-10-batches-bin/`, which is returned once every
/// batch file is there with its exact size (`records_per_file` records each: 10,000
/// for the official archive). Other members are skipped, so no path in the archive can
/// write outside `into`; a member of the layout that is not a regular file, appears
/// twice or is larger than its file may be is refused. `origin` (URL or path) names the
/// archive in errors.
pub fn unpack_cifar_archive(
    archive: &Path,
    origin: &str,
    into: &Path,
    records_per_file: usize,
) -> Result<PathBuf, DatasetError> {
    let out = into.join(CIFAR_BATCHES_DIR);
    std::fs::create_dir(&out).map_err(|e| DatasetError::io(&out, e))?;
    let bad = |reason: String| DatasetError::BadArchive {
        archive: origin.to_string(),
        reason,
    };
    let io = |e: std::io::Error| bad(e.to_string());
    let batch_bytes = (records_per_file * CIFAR_RECORD) as u64;
    let file = File::open(archive).map_err(|e| DatasetError::io(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    // Raw entries: the archive's names are plain ustar names, and an extension header
    // (a pax header, a GNU long name or link) is refused rather than applied. Readers
    // disagree on which of two names wins and on what a cut record means, so a renamed
    // member could be unpacked under a name that another reader gives other bytes.
    for entry in tar.entries().map_err(io)?.raw(true) {
        let entry = entry.map_err(io)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            return Err(bad(format!(
                "{}: an extension header (pax or GNU long name), which the CIFAR-10 archive does not have",
                String::from_utf8_lossy(&entry.header().path_bytes())
            )));
        }
        let name = {
            let path = entry.path().map_err(io)?;
            let path = path.to_str().map(|p| p.trim_start_matches("./"));
            match path.and_then(|p| p.strip_prefix("cifar-10-batches-bin/")) {
                Some(name) => name.to_string(),
                None => continue,
            }
        };
        let Some(limit) = member_limit(&name, batch_bytes) else {
            continue;
        };
        let member = format!("{CIFAR_BATCHES_DIR}/{name}");
        if !entry.header().entry_type().is_file() {
            return Err(bad(format!("{member} is not a regular file")));
        }
        let dest = out.join(&name);
        let mut file = match File::create_new(&dest) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(bad(format!("{member} appears twice")));
            }
            Err(e) => return Err(DatasetError::io(&dest, e)),
        };
        let copied = std::io::copy(&mut entry.take(limit + 1), &mut file).map_err(io)?;
        if copied > limit {
            return Err(bad(format!(
                "{member} is larger than the {limit} bytes it may have"
            )));
        }
        file.sync_all().map_err(|e| DatasetError::io(&dest, e))?;
    }
    check_batches(&out, batch_bytes, records_per_file).map_err(bad)?;
    Ok(out)
}

/// The most bytes to unpack for archive member `name`, or `None` to skip it.
fn member_limit(name: &str, batch_bytes: u64) -> Option<u64> {
    if batch_files().any(|f| f == name) {
        Some(batch_bytes)
    } else if SMALL_FILES.contains(&name) {
        Some(SMALL_FILE_LIMIT)
    } else {
        None
    }
}

fn batch_files() -> impl Iterator<Item = &'static str> {
    CIFAR_TRAIN_FILES
        .iter()
        .copied()
        .chain(std::iter::once(CIFAR_TEST_FILE))
}

/// Checks that `dir` holds the six batch files at their exact size (`records` records
/// of `CIFAR_RECORD` bytes, `batch_bytes` in all).
fn check_batches(dir: &Path, batch_bytes: u64, records: usize) -> Result<(), String> {
    for name in batch_files() {
        let len = match std::fs::metadata(dir.join(name)) {
            Ok(meta) => meta.len(),
            Err(_) => return Err(format!("{CIFAR_BATCHES_DIR}/{name} is missing")),
        };
        if len != batch_bytes {
            return Err(format!(
                "{CIFAR_BATCHES_DIR}/{name} has {len} bytes, expected {batch_bytes} \
                 ({records} records of {CIFAR_RECORD} bytes)"
            ));
        }
    }
    Ok(())
}

/// Runs `python3 builder DEST` with `DEST` a scratch directory and checks what it wrote.
fn build(
    builder: &Path,
    into: &Path,
    help: &str,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, DatasetError> {
    if !is_file(builder)? {
        return Err(DatasetError::io(
            builder,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("builder script not found (${CIFAR10_BUILDER_ENV})"),
            ),
        ));
    }
    log(&format!(
        "building CIFAR-10 with python3 {} (${CIFAR10_BUILDER_ENV}); this takes a while ...",
        builder.display()
    ));
    let (script, dest) = (builder.to_string_lossy(), into.to_string_lossy());
    command::run("CIFAR-10", "python3", &[&script, &dest], into, help)?;
    let out = into.join(CIFAR_BATCHES_DIR);
    let batch_bytes = (CIFAR_RECORDS_PER_FILE * CIFAR_RECORD) as u64;
    check_batches(&out, batch_bytes, CIFAR_RECORDS_PER_FILE).map_err(|reason| {
        DatasetError::BadBuild {
            builder: builder.to_path_buf(),
            reason,
        }
    })?;
    Ok(out)
}

/// Moves the unpacked `src` to `target`: the whole directory in one rename when
/// `target` does not exist, else only the files `target` lacks, each in one rename.
fn publish_dir(src: &Path, target: &Path) -> Result<(), DatasetError> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DatasetError::io(parent, e))?;
    }
    match std::fs::rename(src, target) {
        Ok(()) => return Ok(()),
        // Target exists (perhaps from a concurrent fetch): fill in what is missing.
        Err(_) if target.is_dir() => {}
        Err(e) => return Err(DatasetError::io(target, e)),
    }
    for name in batch_files().chain(SMALL_FILES) {
        let (from, to) = (src.join(name), target.join(name));
        if is_file(&from)? && !is_file(&to)? {
            staging::publish(&from, &to, &[])?;
        }
    }
    Ok(())
}

/// What to do when the automatic fetch is not possible.
fn offline_help(data_dir: &Path, source: &Cifar10Source) -> String {
    let dir = cifar10_dir(data_dir);
    format!(
        "To get CIFAR-10 without this download, either\n  \
         * fetch cifar-10-binary.tar.gz (the \"CIFAR-10 binary version\" of \
         https://www.cs.toronto.edu/~kriz/cifar.html) elsewhere and set \
         {CIFAR10_ARCHIVE_ENV}=/path/to/cifar-10-binary.tar.gz (checked against SHA-256 \
         {sha}), or unpack it into {dir} so that {dir}/{CIFAR_BATCHES_DIR}/ exists; or\n  \
         * set {CIFAR10_BUILDER_ENV}=/path/to/build.py, a script that `python3 build.py DEST` \
         runs to write DEST/{CIFAR_BATCHES_DIR}/data_batch_1.bin … data_batch_5.bin and \
         test_batch.bin (e.g. from a JPEG copy of CIFAR-10).\n\
         {CIFAR10_URL_ENV}=URL downloads the same archive from a mirror.",
        sha = source.sha256,
        dir = dir.display(),
    )
}

/// A progress callback that writes one line to `log` at every 10% of a download
/// (or every 16 MiB when the size is unknown).
pub fn log_download_progress(mut log: impl FnMut(&str)) -> impl FnMut(DownloadProgress) {
    let mut next_step = 0u64;
    move |p: DownloadProgress| {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        match p.total.filter(|&t| t > 0) {
            Some(total) => {
                let percent = p.done.saturating_mul(100) / total;
                if percent >= next_step {
                    next_step = (percent / 10 + 1) * 10;
                    log(&format!(
                        "  {:.1} of {:.1} MiB ({percent}%)",
                        mib(p.done),
                        mib(total)
                    ));
                }
            }
            None if p.done >= next_step => {
                next_step = p.done + (16 << 20);
                log(&format!("  {:.1} MiB", mib(p.done)));
            }
            None => {}
        }
    }
}
