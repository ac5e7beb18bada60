//! A run's records, read alike from an open run directory and from a sealed one.
//!
//! While a run trains, its directory holds one file per record (`config.json`,
//! `metrics.jsonl`, `steps.jsonl`, `provenance.jsonl`, …) beside files derived from them
//! (`metrics.csv`, `steps.csv`, `accuracy.svg`) and its parameters (`*.safetensors`).
//! Once it has finished (or diverged) the directory is *sealed*: every record's text
//! goes verbatim into one gzip-compressed JSON object, [`SEALED`]
//! (`{"rbd_run_record": 1, "files": {NAME: TEXT, …}}`), the derived files are dropped
//! (`rbd results export` writes the CSV again) and the parameters stay as they are.
//! Keeping each record's text, not re-serialised values, is what makes a sealed run
//! read back bit for bit: the same text parses to the same `f64`s.
//!
//! A sealed run then joins its folder's pack ([`super::pack`]): the finished runs of one
//! folder in one file, so its directory goes (or keeps only its parameters).
//!
//! Every reader of a run's records goes through [`text`], so it cannot tell the three
//! forms apart; a sealed or packed run is reopened ([`unseal`]) only to be extended.

use super::run_dir::{write_atomic, LOCK_FILE};
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The sealed record of a finished run, inside its directory.
pub const SEALED: &str = "run.json.gz";

/// Files the binary derives from the records (dropped when sealing, never read).
pub const DERIVED: [&str; 3] = ["metrics.csv", "steps.csv", "accuracy.svg"];

/// The version of the sealed format this binary writes and reads.
pub const FORMAT: u32 = 1;

/// The sealed record: each record's file name and exact text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// [`FORMAT`].
    pub rbd_run_record: u32,
    /// File name → text, in name order (so sealing the same files gives the same bytes).
    pub files: BTreeMap<String, String>,
}

/// Where a run's records are.
pub enum Stored {
    /// In files of their own in the run's directory (a run in progress), or nowhere.
    Open,
    /// In the directory's sealed record, [`SEALED`].
    Sealed,
    /// In its folder's pack, under the run's name.
    Packed(Arc<super::pack::Pack>, String),
}

/// Where the records of the run in `dir` are: a sealed record wins, then open files
/// (a run taken out of its pack to be extended), then the folder's pack.
pub fn stored(dir: &Path) -> Result<Stored> {
    if dir.join(SEALED).is_file() {
        return Ok(Stored::Sealed);
    }
    if dir.join(super::trainer::CONFIG).is_file() {
        return Ok(Stored::Open);
    }
    Ok(match super::pack::find(dir)? {
        Some((pack, name)) => Stored::Packed(pack, name),
        None => Stored::Open,
    })
}

/// Whether `dir` holds a sealed run (in its own `run.json.gz`).
pub fn is_sealed(dir: &Path) -> bool {
    dir.join(SEALED).is_file()
}

/// Whether the run in `dir` is in its folder's pack (and nowhere else).
pub fn is_packed(dir: &Path) -> bool {
    matches!(stored(dir), Ok(Stored::Packed(..)))
}

/// The text of the run's record `name` (e.g. `metrics.jsonl`), from the sealed record
/// or the pack when the run is there, else from the directory; `None` when the run has
/// no such record.
pub fn text(dir: &Path, name: &str) -> Result<Option<String>> {
    match stored(dir)? {
        Stored::Sealed => Ok(read_sealed(&dir.join(SEALED))?.files.get(name).cloned()),
        Stored::Packed(pack, run) => Ok(pack.runs[&run].sealed.files.get(name).cloned()),
        Stored::Open => {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            std::fs::read_to_string(&path)
                .map(Some)
                .with_context(|| format!("reading {}", path.display()))
        }
    }
}

/// Whether the run in `dir` has the record `name` (sealed, packed or not).
pub fn has(dir: &Path, name: &str) -> bool {
    matches!(text(dir, name), Ok(Some(_)))
}

/// Where the record `name` of the run in `dir` is, for messages: the file, or the file
/// inside the sealed record (`DIR/run.json.gz:metrics.jsonl`) or the pack
/// (`FOLDER/sealed-runs.jsonl.gz:RUN/metrics.jsonl`).
pub fn describe(dir: &Path, name: &str) -> String {
    match stored(dir) {
        Ok(Stored::Sealed) => format!("{}:{name}", dir.join(SEALED).display()),
        Ok(Stored::Packed(_, run)) => format!(
            "{}:{run}/{name}",
            dir.with_file_name(super::pack::PACK).display()
        ),
        _ => dir.join(name).display().to_string(),
    }
}

/// The runs in `folder`: its subdirectories and the runs of its pack, by name.
pub fn runs_in(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut names: BTreeSet<String> = super::pack::names(folder)?.into_iter().collect();
    if folder.is_dir() {
        for e in
            std::fs::read_dir(folder).with_context(|| format!("reading {}", folder.display()))?
        {
            let e = e?;
            if e.file_type()?.is_dir() {
                names.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    Ok(names.into_iter().map(|n| folder.join(n)).collect())
}

/// Reads a sealed record, naming the file in every error.
pub fn read_sealed(path: &Path) -> Result<Sealed> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode(&bytes).with_context(|| format!("{}: not a sealed run record", path.display()))
}

fn decode(bytes: &[u8]) -> Result<Sealed> {
    let mut json = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut json)
        .context("gzip")?;
    let sealed: Sealed = serde_json::from_str(&json)?;
    if sealed.rbd_run_record != FORMAT {
        bail!(
            "format {} (this rbd reads format {FORMAT})",
            sealed.rbd_run_record
        );
    }
    Ok(sealed)
}

fn encode(sealed: &Sealed) -> Result<Vec<u8>> {
    // The gzip header's time stays 0, so the bytes depend on the records alone.
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&serde_json::to_vec(sealed)?)?;
    Ok(gz.finish()?)
}

/// What a directory entry is to sealing.
enum Kind {
    /// Stored in the sealed record.
    Record,
    /// Derived from the records: removed.
    Derived,
    /// Stays in the directory (parameters, the lock).
    Kept,
}

fn kind(name: &str) -> Kind {
    if name == LOCK_FILE || name == SEALED || name.ends_with(".safetensors") {
        Kind::Kept
    } else if DERIVED.contains(&name) {
        Kind::Derived
    } else {
        Kind::Record
    }
}

/// What [`seal`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealReport {
    /// Records stored.
    pub records: usize,
    /// Derived files removed.
    pub derived: usize,
    /// Bytes of the sealed record.
    pub bytes: u64,
}

/// Seals the run in `dir`: writes [`SEALED`] with the text of every record, reads it
/// back and checks each text against its file, and only then removes the records and
/// the derived files. Refuses (changing nothing) a directory with a subdirectory, a
/// left-over temporary file or a record that is not UTF-8 text. A directory already
/// sealed is left as it is, once any record files an interrupted seal left beside the
/// sealed record are found identical to it (and removed).
pub fn seal(dir: &Path) -> Result<SealReport> {
    let mut records = BTreeMap::new();
    let mut derived = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !entry.file_type()?.is_file() {
            bail!(
                "{}: not a plain file; a run directory to seal holds files only",
                path.display()
            );
        }
        if name.starts_with('.') && name.ends_with(".tmp") {
            bail!(
                "{}: a temporary file left by an interrupted write; remove it if the run is finished",
                path.display()
            );
        }
        match kind(&name) {
            Kind::Kept => {}
            Kind::Derived => derived.push(path),
            Kind::Record => {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
                records.insert(name, text);
            }
        }
    }
    let sealed_path = dir.join(SEALED);
    let sealed = if sealed_path.exists() {
        // Sealed before: whatever records lie beside it must be what it holds.
        let sealed = read_sealed(&sealed_path)?;
        for (name, text) in &records {
            if sealed.files.get(name) != Some(text) {
                bail!(
                    "{} differs from the copy in {}: the directory was changed after it was sealed; move one of them away",
                    dir.join(name).display(),
                    sealed_path.display()
                );
            }
        }
        sealed
    } else {
        if !records.contains_key(super::trainer::CONFIG) {
            bail!(
                "{}: no {}, so not a run directory",
                dir.display(),
                super::trainer::CONFIG
            );
        }
        let sealed = Sealed {
            rbd_run_record: FORMAT,
            files: records.clone(),
        };
        write_atomic(&sealed_path, &encode(&sealed)?)?;
        let back = read_sealed(&sealed_path)?;
        if back != sealed {
            let _ = std::fs::remove_file(&sealed_path);
            bail!(
                "{}: the sealed record read back differs from the run's files; nothing removed",
                sealed_path.display()
            );
        }
        sealed
    };
    // Every record is safe in the sealed record now.
    for name in records.keys() {
        let path = dir.join(name);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    for path in &derived {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    let bytes = std::fs::metadata(&sealed_path)?.len();
    Ok(SealReport {
        records: sealed.files.len(),
        derived: derived.len(),
        bytes,
    })
}

/// Opens a sealed or packed run again (to extend it): writes each record back to its
/// file, then removes the sealed record or takes the run out of its pack. Does nothing
/// to a run that is neither.
pub fn unseal(dir: &Path) -> Result<()> {
    let path = dir.join(SEALED);
    if path.exists() {
        unseal_record(dir, &path)?;
    }
    // After the sealed record: a packing interrupted before it went left both.
    super::pack::take(dir)
}

fn unseal_record(dir: &Path, path: &Path) -> Result<()> {
    let sealed = read_sealed(path)?;
    for (name, text) in &sealed.files {
        super::pack::check_name(name)
            .with_context(|| format!("{}: holds a record named {name:?}", path.display()))?;
        write_atomic(&dir.join(name), text.as_bytes())?;
    }
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
}

/// The file name a run directory had before names lost shell-special characters
/// (`lr2pow-1` was `lr2^-1`), if it differs from `name`.
pub fn legacy_name(name: &str) -> Option<String> {
    name.contains(LR_POWER)
        .then(|| name.replace(LR_POWER, "lr2^"))
}

/// How a run name writes the learning rate 2^K: `lr2pow-3`, `lr2pow1` (a `^` in a file
/// name trips shells and tools).
pub const LR_POWER: &str = "lr2pow";

/// `name` with the old `lr2^K` written as [`LR_POWER`]`K`.
pub fn current_name(name: &str) -> String {
    name.replace("lr2^", LR_POWER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rbd-record-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn sealing_keeps_every_record_text_and_the_parameters() {
        let d = scratch("keep");
        // Floats whose text must come back exactly (shortest round-trip forms).
        let metrics = "{\"epoch\":1,\"val_loss\":0.30000000000000004,\"x\":1e-300}\n";
        std::fs::write(d.join("config.json"), "{\"seed\":0}").unwrap();
        std::fs::write(d.join("metrics.jsonl"), metrics).unwrap();
        std::fs::write(d.join("metrics.csv"), "epoch\n1\n").unwrap();
        std::fs::write(d.join("final.safetensors"), b"\0params").unwrap();
        let r = seal(&d).unwrap();
        assert_eq!((r.records, r.derived), (2, 1));
        assert!(!d.join("metrics.jsonl").exists() && !d.join("metrics.csv").exists());
        assert_eq!(
            std::fs::read(d.join("final.safetensors")).unwrap(),
            b"\0params"
        );
        assert_eq!(text(&d, "metrics.jsonl").unwrap().as_deref(), Some(metrics));
        assert_eq!(text(&d, "steps.jsonl").unwrap(), None);
        // Sealing again changes nothing; unsealing gives the files back.
        let bytes = std::fs::read(d.join(SEALED)).unwrap();
        seal(&d).unwrap();
        assert_eq!(std::fs::read(d.join(SEALED)).unwrap(), bytes);
        unseal(&d).unwrap();
        assert!(!is_sealed(&d));
        assert_eq!(
            std::fs::read_to_string(d.join("metrics.jsonl")).unwrap(),
            metrics
        );
    }

    #[test]
    fn sealing_refuses_what_it_cannot_keep() {
        let d = scratch("refuse");
        std::fs::write(d.join("config.json"), "{}").unwrap();
        std::fs::write(d.join("notes.bin"), [0xff, 0xfe]).unwrap();
        let e = seal(&d).unwrap_err().to_string();
        assert!(e.contains("notes.bin") && e.contains("UTF-8"), "{e}");
        assert!(!is_sealed(&d) && d.join("notes.bin").exists());
        std::fs::remove_file(d.join("notes.bin")).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        assert!(seal(&d).unwrap_err().to_string().contains("sub"));
        assert!(d.join("config.json").exists());
    }

    #[test]
    fn a_file_changed_after_sealing_is_not_removed() {
        let d = scratch("changed");
        std::fs::write(d.join("config.json"), "{}").unwrap();
        seal(&d).unwrap();
        std::fs::write(d.join("config.json"), "{\"edited\":1}").unwrap();
        let e = seal(&d).unwrap_err().to_string();
        assert!(e.contains("differs"), "{e}");
        assert!(d.join("config.json").exists());
    }

    #[test]
    fn a_damaged_sealed_record_is_named() {
        let d = scratch("damaged");
        std::fs::write(d.join(SEALED), b"not gzip").unwrap();
        let e = format!("{:#}", text(&d, "config.json").unwrap_err());
        assert!(
            e.contains(SEALED) && e.contains("not a sealed run record"),
            "{e}"
        );
    }

    #[test]
    fn run_names_lose_the_caret_and_map_back() {
        assert_eq!(
            current_name("cnn-fmnist-nes-lr2^-1-seed0"),
            "cnn-fmnist-nes-lr2pow-1-seed0"
        );
        assert_eq!(legacy_name("lr2pow3").as_deref(), Some("lr2^3"));
        assert_eq!(legacy_name("fc-mnist-sgd-seed0"), None);
    }
}
