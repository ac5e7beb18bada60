//! `rbd results migrate`: brings a results tree written by any older rbd to today's
//! form, losing nothing. Run directories named with a `^` (`lr2^-1`) take their name
//! now (`lr2pow-1`); every finished or diverged run is sealed into one record
//! ([`crate::train::record`]), which is read back and checked against the files before
//! they are removed, and then joins its folder's pack ([`crate::train::pack`]), again
//! checked before the sealed record goes; runs still in progress stay as they are (they
//! seal when they finish). Every pack met is read whole, so a damaged one stops the
//! migration, naming it. Idempotent, and safe on a tree that an older binary keeps
//! writing to: a run it holds locked is left alone.

use super::runner;
use crate::train::RunConfig;
use crate::train::{pack, record};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What a migration did and found.
#[derive(Debug, Default)]
pub struct Migration {
    /// Directories renamed (old, new).
    pub renamed: Vec<(PathBuf, PathBuf)>,
    /// Runs sealed now (then packed).
    pub sealed: Vec<PathBuf>,
    /// Runs moved into their folder's pack now (sealed now or before).
    pub packed: Vec<PathBuf>,
    /// Runs packed before.
    pub already: usize,
    /// Runs left open: in progress or held by a running rbd (or, for a peer run,
    /// without its summary).
    pub open: Vec<PathBuf>,
    /// Bytes of the pack members written now.
    pub bytes: u64,
}

/// Migrates every run under `results`.
pub fn migrate(results: &Path) -> Result<Migration> {
    if !results.is_dir() {
        bail!("--results {}: no such directory", results.display());
    }
    let mut m = Migration::default();
    walk(results, &mut m)?;
    Ok(m)
}

fn walk(dir: &Path, m: &mut Migration) -> Result<()> {
    if dir.join(crate::train::trainer::CONFIG).is_file()
        || record::is_sealed(dir)
        || record::is_packed(dir)
    {
        return migrate_run(dir, m);
    }
    // A folder: the runs of its pack (read whole: a damaged pack stops here), then
    // its subdirectories (runs open, sealed or kept beside the pack for their
    // parameters, and folders).
    let packed = pack::names(dir)?;
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for sub in &subdirs {
        let sub = rename_legacy(sub, m)?;
        walk(&sub, m)?;
    }
    let on_disk: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    m.already += packed
        .iter()
        .filter(|n| !on_disk.contains(&dir.join(n)))
        .count();
    Ok(())
}

/// Renames `dir` if its name holds the old `lr2^K`; returns where it is now.
fn rename_legacy(dir: &Path, m: &mut Migration) -> Result<PathBuf> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let now = record::current_name(&name);
    if now == name {
        return Ok(dir.to_path_buf());
    }
    let to = dir.with_file_name(&now);
    if to.exists() {
        bail!(
            "{} and {} are both there (the same run under its old and new name?): keep one",
            dir.display(),
            to.display()
        );
    }
    std::fs::rename(dir, &to)
        .with_context(|| format!("renaming {} to {}", dir.display(), to.display()))?;
    m.renamed.push((dir.to_path_buf(), to.clone()));
    Ok(to)
}

fn migrate_run(dir: &Path, m: &mut Migration) -> Result<()> {
    if let record::Stored::Packed(pack, run) = record::stored(dir)? {
        beside_the_pack(dir, &pack.runs[&run].sealed)?;
        m.already += 1;
        return Ok(());
    }
    if crate::train::run_dir::in_use(dir) || !finished(dir)? {
        m.open.push(dir.to_path_buf());
        return Ok(());
    }
    let done = runner::seal(dir)?;
    if done.sealed.records > 0 {
        m.sealed.push(dir.to_path_buf());
    }
    if let pack::Put::Packed { bytes } = done.packed {
        m.bytes += bytes;
        m.packed.push(dir.to_path_buf());
    }
    Ok(())
}

/// Checks the files left in the directory of a packed run (its parameters and lock
/// aside): a copy of a packed record (a packing interrupted) is removed, any other
/// file is refused, naming it.
fn beside_the_pack(dir: &Path, sealed: &record::Sealed) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == crate::train::run_dir::LOCK_FILE || name.ends_with(".safetensors") {
            continue;
        }
        let path = e.path();
        let same = sealed
            .files
            .get(&name)
            .is_some_and(|t| std::fs::read(&path).is_ok_and(|b| b == t.as_bytes()));
        if !same {
            bail!(
                "{} differs from the run's record in its folder's {} (or is not one of its records): move one of them away",
                path.display(),
                pack::PACK
            );
        }
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Whether the run in `dir` is over: an rbd run done or diverged by the rule `rbd
/// reproduce` uses; a peer implementation's run (its `config.json` is not an rbd
/// configuration) once it has written `summary.json`.
fn finished(dir: &Path) -> Result<bool> {
    let text = record::text(dir, crate::train::trainer::CONFIG)?.unwrap_or_default();
    match serde_json::from_str::<RunConfig>(&text) {
        Ok(_) => runner::over(dir),
        Err(_) => Ok(record::has(dir, "summary.json")),
    }
}
