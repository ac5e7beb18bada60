//! `rbd results migrate`: brings a results tree written by any older rbd to today's
//! form, losing nothing. Run directories named with a `^` (`lr2^-1`) take their name
//! now (`lr2pow-1`); every finished or diverged run is sealed into one record
//! ([`crate::train::record`]), which is read back and checked against the files before
//! they are removed; runs still in progress stay as they are (they seal when they
//! finish). Idempotent, and safe on a tree that an older binary keeps writing to:
//! a run it holds locked is left alone.

use super::runner;
use crate::train::record;
use crate::train::RunConfig;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What a migration did and found.
#[derive(Debug, Default)]
pub struct Migration {
    /// Directories renamed (old, new).
    pub renamed: Vec<(PathBuf, PathBuf)>,
    /// Runs sealed now.
    pub sealed: Vec<PathBuf>,
    /// Runs sealed before.
    pub already: usize,
    /// Runs left open: in progress or held by a running rbd (or, for a peer run,
    /// without its summary).
    pub open: Vec<PathBuf>,
    /// Bytes of the records written now.
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
    if record::has(dir, crate::train::trainer::CONFIG) || record::is_sealed(dir) {
        return migrate_run(dir, m);
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        let sub = rename_legacy(&sub, m)?;
        walk(&sub, m)?;
    }
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

/// Whether any record of the run lies in the directory beside (or instead of) a
/// sealed record.
fn has_open_records(dir: &Path) -> Result<bool> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        let kept = name == record::SEALED
            || name == crate::train::run_dir::LOCK_FILE
            || name.ends_with(".safetensors");
        if !kept {
            return Ok(true);
        }
    }
    Ok(false)
}

fn migrate_run(dir: &Path, m: &mut Migration) -> Result<()> {
    if record::is_sealed(dir) && !has_open_records(dir)? {
        m.already += 1;
        return Ok(());
    }
    if crate::train::run_dir::in_use(dir) || !finished(dir)? {
        m.open.push(dir.to_path_buf());
        return Ok(());
    }
    let report = runner::seal(dir)?;
    m.bytes += report.bytes;
    m.sealed.push(dir.to_path_buf());
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
