//! `rbd reproduce ARTEFACT`: runs an artefact of the paper from its manifest
//! (`reproduce/NAME.toml`), resumably, and writes its results beside the paper's
//! values into `results/NAME/`.

pub mod campaign;
mod committed;
pub mod contention;
pub mod cost_cache;
pub mod estimate;
pub mod manifest;
pub mod migrate;
pub mod orthogonality;
pub mod reference;
pub mod regenerate;
pub mod runner;
pub mod sources;
pub mod stats;
pub mod summary;
pub mod templates;
pub mod tune;

use crate::signals::StopFlag;
use anyhow::{bail, Context, Result};
use manifest::{ArtefactKind, Manifest, PlanOptions, PlannedRun};
use runner::{state, RunState, SweepEnd};
use std::path::{Path, PathBuf};

/// What a user asks of a reproduction.
#[derive(Clone, Debug)]
pub struct Request {
    /// A built-in artefact name or a manifest file.
    pub artefact: String,
    /// Where results go (`results/`).
    pub results: PathBuf,
    /// Budget, seeds, filter, device, data.
    pub plan: PlanOptions,
    /// Only list the runs with time estimates.
    pub dry_run: bool,
    /// Train nothing; rewrite the summary from the runs on disk.
    pub summarize: bool,
    /// Train and write nothing: say which generated files differ from what the runs
    /// give (`all` only).
    pub check: bool,
}

/// The sentence stating a shorter budget, for every output.
pub fn budget_note(m: &Manifest, opts: &PlanOptions) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(e) = opts.epochs.filter(|e| *e != m.epochs) {
        parts.push(format!("{e} epochs instead of the paper's {}", m.epochs));
    }
    if let Some(s) = opts.seeds.filter(|s| *s != m.seeds) {
        parts.push(format!(
            "{s} seed{} instead of {}",
            if s == 1 { "" } else { "s" },
            m.seeds
        ));
    }
    (!parts.is_empty()).then(|| format!("This is a reduced reproduction: {}.", parts.join("; ")))
}

/// The width of a table's id column: the widest id sets it, so long ids do not push
/// their row out of line.
fn id_column<'a>(ids: impl Iterator<Item = &'a str>) -> usize {
    ids.map(str::len).max().unwrap_or(0).max(28)
}

fn dry_run(runs: &[PlannedRun], device: &rbd_engine::Device) -> Result<()> {
    let mut est = estimate::Estimator::new(device.clone());
    let mut states = Vec::new();
    for r in runs {
        states.push(match state(r)? {
            RunState::New => ("new".to_string(), 0),
            RunState::Partial { epochs_done } => {
                (format!("{epochs_done}/{} done", r.cfg.epochs), epochs_done)
            }
            RunState::Done => ("done".into(), r.cfg.epochs),
            RunState::Diverged(d) => (format!("diverged@{}", d.epoch), r.cfg.epochs),
        });
    }
    let seconds = est.measured(|est| {
        runs.iter()
            .zip(&states)
            .map(|(r, (_, from))| match r.blocked {
                Some(_) => Ok(0.0),
                None => est.seconds(&r.cfg, *from),
            })
            .collect::<Result<Vec<f64>>>()
    })?;
    let total: f64 = seconds.iter().sum();
    let w = id_column(runs.iter().map(|r| r.entry.id.as_str()));
    println!(
        "{:<w$} {:>5} {:>12} {:>14}  configuration",
        "run", "seed", "state", "estimate"
    );
    for ((r, (st, _)), secs) in runs.iter().zip(&states).zip(seconds) {
        println!(
            "{:<w$} {:>5} {:>12} {:>14}  {}{}",
            r.entry.id,
            r.seed,
            st,
            if r.blocked.is_some() {
                "blocked".into()
            } else {
                estimate::human(secs)
            },
            runner::describe(&r.cfg),
            r.blocked
                .as_ref()
                .map(|b| format!(" [{b}]"))
                .unwrap_or_default()
        );
    }
    println!(
        "{} runs; estimated {} left on {} (steps, the loader and evaluation measured here with synthetic images, on a quiet machine)",
        runs.len(),
        estimate::human(total),
        device.describe()
    );
    println!("{}", est.describe_sources());
    Ok(())
}

/// Rewrites (or, with `check`, checks) every generated text of `req.results` and the
/// README beside it from the runs on disk (`regenerate`); returns the exit code.
pub fn all(req: &Request) -> Result<i32> {
    if !req.summarize && !req.check {
        bail!("`rbd reproduce all` trains nothing: give --summarize (rewrite every summary from the runs) or --check (list what differs)");
    }
    let device_choice = req.plan.device.unwrap_or(rbd_engine::DeviceChoice::Cpu);
    let device = rbd_engine::Device::open(device_choice)?;
    let prov = summary::Provenance::here(device.describe());
    let readme = req
        .results
        .parent()
        .map(|p| p.join("README.md"))
        .filter(|p| p.exists());
    let files = regenerate::generate(&req.results, readme.as_deref(), &prov)?;
    let lint = regenerate::lint(&req.results)?;
    for l in &lint {
        eprintln!("typed by hand (use a placeholder, or {{{{quote …}}}} with its source): {l}");
    }
    if req.check {
        let differ = regenerate::check(&files);
        for d in &differ {
            println!("{d}");
        }
        println!(
            "{} generated files checked: {} differ from the runs; {} numbers typed by hand",
            files.len(),
            differ.len(),
            lint.len()
        );
        return Ok(if differ.is_empty() && lint.is_empty() {
            0
        } else {
            1
        });
    }
    let written = regenerate::write(&files)?;
    for w in &written {
        println!("wrote {}", w.display());
    }
    println!(
        "{} generated files, {} rewritten",
        files.len(),
        written.len()
    );
    Ok(0)
}

/// Runs (or, with `dry_run`, lists) a reproduction; returns the exit code.
pub fn reproduce(req: &Request, stop: &StopFlag) -> Result<i32> {
    if req.artefact == "all" {
        return all(req);
    }
    if req.check {
        bail!("--check belongs to `rbd reproduce all`");
    }
    let m = Manifest::load(&req.artefact)?;
    let out = req.results.join(&m.name);
    let note = budget_note(&m, &req.plan);
    println!("{} — {}", m.name, m.title);
    if let Some(n) = &note {
        println!("{n}");
    }
    if m.kind == ArtefactKind::Orthogonality {
        let spec = m
            .orthogonality
            .clone()
            .context("an orthogonality manifest needs [orthogonality]")?;
        let stream = orthogonality::stream(rbd_kernels::random_bases::Distribution::Gaussian, 0);
        if req.dry_run {
            println!(
                "computes cosines for D = 10^1 … 10^{} with {} vectors (seconds to a minute)",
                spec.max_exponent, spec.vectors
            );
            return Ok(0);
        }
        let rows = orthogonality::compute(&stream, spec.vectors, spec.max_exponent)?;
        print!("{}", orthogonality::table(&rows));
        orthogonality::write(&out, &rows, spec.vectors)?;
        write_orthogonality_readme(&out, &m, &rows)?;
        println!("results: {}", out.display());
        return Ok(0);
    }
    let runs = m.plan(&req.results, &req.plan)?;
    let choice = req.plan.device.unwrap_or(rbd_engine::DeviceChoice::Auto);
    let device = rbd_engine::Device::open(choice)?;
    if req.dry_run {
        dry_run(&runs, &device)?;
        return Ok(0);
    }
    let end = if req.summarize {
        SweepEnd::Complete
    } else {
        runner::run_all(&runs, stop)?
    };
    let results = summarize(&m, &req.results, &device)?;
    println!("results: {} (README.md, summary.csv, plots)", out.display());
    print_table(&results);
    if let Some(r) = reference::check(&m, &results, &req.results)? {
        for l in r.lines() {
            println!("{l}");
        }
        println!(
            "for context, {}'s committed runs after {} epochs (README.md has the table): {}",
            r.reference,
            r.reference_epochs,
            r.context
                .iter()
                .map(|(_, col, ours, paper)| format!("{col} {ours} (paper {paper})"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    match end {
        SweepEnd::Complete => Ok(0),
        SweepEnd::Interrupted(sig) => {
            eprintln!(
                "stopped by {}; the current run kept its checkpoint: run the same command again to continue",
                crate::signals::signal_name(sig)
            );
            Ok(128 + sig)
        }
    }
}

/// Rewrites `results/NAME/`'s summary, table and plots from every run of the artefact
/// on disk (not only those a plan selects), each at its configured epochs.
pub fn summarize(
    m: &Manifest,
    results_dir: &Path,
    device: &rbd_engine::Device,
) -> Result<Vec<summary::EntryResult>> {
    let results = summary::collect_all(m, results_dir)?;
    let prov = summary::Provenance::here(device.describe());
    summary::write(&results_dir.join(&m.name), m, &results, &prov)?;
    Ok(results)
}

fn print_table(results: &[summary::EntryResult]) {
    let w = id_column(results.iter().map(|r| r.entry.id.as_str()));
    if results.iter().all(|r| r.epochs < r.paper_epochs) {
        // A budget shorter than the paper's: its values are not set against the paper's.
        println!("{:<w$} {:>26}", "run", "ours (val acc %)");
        for r in results {
            println!("{:<w$} {:>26}", r.entry.id, r.ours());
        }
        return;
    }
    println!(
        "{:<w$} {:>26} {:>16} {:>10}",
        "run", "ours (val acc %)", "paper", "diff"
    );
    for r in results {
        let paper = r
            .entry
            .paper
            .map(|p| {
                format!(
                    "{p}{}",
                    r.entry
                        .paper_std
                        .map(|s| format!(" ± {s}"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "–".into());
        let diff = r
            .gap()
            .map(|(d, _)| format!("{d:+.2}"))
            .unwrap_or_else(|| "–".into());
        println!(
            "{:<w$} {:>26} {:>16} {:>10}",
            r.entry.id,
            r.ours(),
            paper,
            diff
        );
    }
}

fn write_orthogonality_readme(out: &Path, m: &Manifest, rows: &[orthogonality::Row]) -> Result<()> {
    let prov = summary::Provenance::here("cpu (the direction stream)".into());
    let mut md = format!(
        "# {}\n\nMade by `rbd reproduce {}` at commit {} on {} ({}).\n\n| D | mean cos (pairs) | std cos | mean abs cos (released: consecutive pairs) | std abs cos | theory sqrt(2/(pi D)) |\n|---|---|---|---|---|---|\n",
        m.title, m.name, prov.commit, prov.date, prov.machine
    );
    for r in rows {
        md.push_str(&format!(
            "| 10^{} | {:.5} | {:.5} | {:.5} | {:.5} | {:.5} |\n",
            (r.dim as f64).log10().round(),
            r.pairs_mean,
            r.pairs_std,
            r.released_mean_abs,
            r.released_std_abs,
            r.expected_abs
        ));
    }
    md.push_str("\n## Notes\n\n");
    for n in &m.notes {
        md.push_str(&format!("- {n}\n"));
    }
    md.push_str("\n![orthogonality](orthogonality.svg)\n");
    crate::train::run_dir::write_atomic(&out.join("README.md"), md.as_bytes())
}
