//! Summaries of an artefact's runs beside the paper's values: `summary.csv`, a Markdown
//! `README.md` (the table, each run's row with its gap to the paper, the budget, commit
//! and machine) and the plots in the paper's form.

use super::manifest::{Manifest, Metric, PlannedRun, PlotKind, PlotSpec, RunEntry};
use super::runner::{state, RunState};
use crate::train::metrics::{read_epochs_timed, EpochMetrics};
use crate::train::plot::{band_chart, Band};
use crate::train::trainer::Stretch;
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One manifest entry's result over its seeds.
#[derive(Clone, Debug)]
pub struct EntryResult {
    /// The entry.
    pub entry: RunEntry,
    /// The planned epochs.
    pub epochs: u64,
    /// Each seed's epoch rows (up to the planned epochs), with their training seconds
    /// from `provenance.jsonl` where the rows do not hold them.
    pub seeds: Vec<Vec<EpochMetrics>>,
    /// Seeds that diverged.
    pub diverged: usize,
    /// Seeds that cannot run yet, and why.
    pub blocked: Option<String>,
    /// The first seed's rate and its source.
    pub lr: String,
    /// Every start and resume of its runs, from `provenance.jsonl` (runs from before
    /// provenance was recorded add none).
    pub stretches: Vec<Stretch>,
    /// The budget (epochs) of the paper's value: a run of fewer epochs is not set
    /// against it.
    pub paper_epochs: u64,
}

/// Mean and sample standard deviation.
pub fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

/// Whether a difference from the paper is more than 1 point or more than 2 of the
/// paper's standard deviations (either one: a tiny published σ makes a small gap count).
pub fn needs_explaining(difference: f64, paper_std: Option<f64>) -> bool {
    difference.abs() > 1.0 || paper_std.is_some_and(|s| difference.abs() > 2.0 * s)
}

impl EntryResult {
    /// Seeds that reached the planned epochs.
    fn finished(&self) -> impl Iterator<Item = &Vec<EpochMetrics>> {
        self.seeds.iter().filter(|r| r.len() as u64 >= self.epochs)
    }

    /// The metric at the planned epoch of each finished seed.
    pub fn values(&self, metric: Metric) -> Vec<f64> {
        self.finished()
            .filter_map(|rows| {
                let last = rows.last()?;
                Some(match metric {
                    Metric::ValAccuracy => 100.0 * last.val_accuracy,
                    Metric::Correlation => last.correlation?.mean,
                    Metric::CorrelationPooled => last.correlation_pooled?.mean,
                    // Unknown when an epoch's time was not recorded.
                    Metric::Seconds => rows.iter().map(|r| r.seconds).sum::<Option<f64>>()?,
                })
            })
            .collect()
    }

    /// Our value as `mean ± std` (with the seed count), or the run's progress.
    pub fn ours(&self) -> String {
        let v = self.values(Metric::ValAccuracy);
        let diverged = match self.diverged {
            0 => String::new(),
            n => format!(", {n} diverged"),
        };
        match mean_std(&v) {
            Some((m, s)) if v.len() > 1 => {
                format!("{m:.2} ± {s:.2} ({} seeds{diverged})", v.len())
            }
            Some((m, _)) => format!("{m:.2} (1 seed{diverged})"),
            None => {
                if let Some(b) = &self.blocked {
                    return format!("not run: {b}");
                }
                let best = self.seeds.iter().map(Vec::len).max().unwrap_or(0);
                if self.diverged > 0 {
                    format!("diverged ({} seeds)", self.diverged)
                } else if best == 0 {
                    "not run".into()
                } else {
                    format!("running ({best}/{} epochs)", self.epochs)
                }
            }
        }
    }

    /// Ours minus the paper's, and whether it needs explaining ([`needs_explaining`]);
    /// none for a run shorter than the paper's budget (no gap against a budget it did
    /// not run).
    pub fn gap(&self) -> Option<(f64, bool)> {
        if self.epochs < self.paper_epochs {
            return None;
        }
        let paper = self.entry.paper?;
        let (m, _) = mean_std(&self.values(Metric::ValAccuracy))?;
        let d = m - paper;
        Some((d, needs_explaining(d, self.entry.paper_std)))
    }
}

/// Reads every entry's runs.
pub fn collect(manifest: &Manifest, runs: &[PlannedRun]) -> Result<Vec<EntryResult>> {
    let mut out: Vec<EntryResult> = Vec::new();
    for entry in manifest.entries()? {
        let mine: Vec<&PlannedRun> = runs.iter().filter(|r| r.entry.id == entry.id).collect();
        let Some(first) = mine.first() else {
            continue;
        };
        let mut seeds = Vec::new();
        let mut diverged = 0;
        let mut stretches = Vec::new();
        for r in &mine {
            if !r.dir.exists() {
                continue; // A seed nobody ran.
            }
            if let RunState::Diverged(_) = state(r)? {
                diverged += 1;
            }
            stretches.extend(crate::train::trainer::stretches(&r.dir));
            let mut rows = read_epochs_timed(&r.dir)?;
            rows.truncate(r.cfg.epochs as usize);
            seeds.push(rows);
        }
        let s = &first.cfg.schedule;
        let lr = s
            .iter()
            .map(|s| {
                format!(
                    "{} {} ({})",
                    s.optimizer,
                    crate::lr::format_lr(s.lr),
                    s.lr_source
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        out.push(EntryResult {
            entry,
            epochs: first.cfg.epochs,
            seeds,
            diverged,
            blocked: first.blocked.clone(),
            lr,
            stretches,
            paper_epochs: manifest.paper_epochs.unwrap_or(manifest.epochs),
        });
    }
    Ok(out)
}

/// `items` without repeats, in first-seen order.
fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The machines that trained `results`' runs, and whether some stretches predate the
/// record (`provenance.jsonl` names the machine since 2026-12-01).
fn trained_on_text(results: &[EntryResult]) -> String {
    let stretches = || results.iter().flat_map(|r| r.stretches.iter());
    let machines = unique(stretches().filter_map(|s| s.machine.as_deref()));
    let unrecorded = stretches().any(|s| s.machine.is_none());
    match (machines.is_empty(), unrecorded) {
        (true, _) => "machine not recorded (runs from before provenance.jsonl named it; see the git log of results/)".to_string(),
        (false, false) => format!("on {}", machines.join("; ")),
        (false, true) => format!(
            "on {} (and, for stretches from before provenance.jsonl named the machine, on machines given in the git log of results/)",
            machines.join("; ")
        ),
    }
}

/// Where and on what the results were made.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// `git describe`-like commit text.
    pub commit: String,
    /// The device the runs used.
    pub device: String,
    /// The processor and core count.
    pub machine: String,
    /// Today's date (UTC).
    pub date: String,
}

impl Provenance {
    /// Reads the commit, machine and date; `device` is described by the caller.
    pub fn here(device: String) -> Provenance {
        // The commit the binary was built from (build.rs).
        let commit = env!("RBD_COMMIT").to_string();
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Provenance {
            commit,
            device,
            machine: crate::machine::describe(),
            date,
        }
    }
}

/// Writes summary.csv, README.md and the plots into `out`.
pub fn write(
    out: &Path,
    manifest: &Manifest,
    results: &[EntryResult],
    prov: &Provenance,
    budget_note: Option<&str>,
) -> Result<()> {
    std::fs::create_dir_all(out)?;
    write_csv(out, results)?;
    let mut plots = Vec::new();
    for spec in &manifest.plots {
        plots.extend(draw(out, spec, results)?);
    }
    // Explanations of gaps are written by hand beside the generated files.
    let findings = std::fs::read_to_string(out.join("findings.md")).ok();
    let reference = match out.parent() {
        Some(dir) => super::reference::check(manifest, results, dir)?,
        None => None,
    };
    let mut md = markdown(
        manifest,
        results,
        prov,
        budget_note,
        &plots,
        findings.as_deref(),
    );
    if let Some(r) = reference {
        // After the table: what this short budget shows, before the notes and plots.
        let at = md.find("\n## Each run").map_or(md.len(), |i| i + 1);
        md.insert_str(at, &format!("{}\n", r.markdown()));
    }
    crate::train::run_dir::write_atomic(&out.join("README.md"), md.as_bytes())?;
    Ok(())
}

fn write_csv(out: &Path, results: &[EntryResult]) -> Result<()> {
    let mut csv = String::from(
        "id,row,column,epochs,seeds_finished,mean_val_accuracy,std_val_accuracy,paper,paper_std,difference,gap,mean_correlation,mean_seconds,diverged_seeds,lr\n",
    );
    let opt = |v: Option<f64>| v.map(crate::nonfinite::text).unwrap_or_default();
    for r in results {
        let acc = mean_std(&r.values(Metric::ValAccuracy));
        let gap = r.gap();
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
            r.entry.id,
            r.entry.row.clone().unwrap_or_default(),
            r.entry.column.clone().unwrap_or_default(),
            r.epochs,
            r.values(Metric::ValAccuracy).len(),
            opt(acc.map(|a| a.0)),
            opt(acc.map(|a| a.1)),
            opt(r.entry.paper),
            opt(r.entry.paper_std),
            opt(gap.map(|g| g.0)),
            gap.map(|g| if g.1 { "yes" } else { "no" })
                .unwrap_or_default(),
            opt(mean_std(&r.values(Metric::Correlation)).map(|a| a.0)),
            opt(mean_std(&r.values(Metric::Seconds)).map(|a| a.0)),
            r.diverged,
            r.lr.replace('"', "'")
        )?;
    }
    crate::train::run_dir::write_atomic(&out.join("summary.csv"), csv.as_bytes())
}

fn markdown(
    manifest: &Manifest,
    results: &[EntryResult],
    prov: &Provenance,
    budget_note: Option<&str>,
    plots: &[String],
    findings: Option<&str>,
) -> String {
    let mut md = format!("# {}\n\n", manifest.title);
    let epochs: Vec<u64> = results.iter().map(|r| r.epochs).collect();
    let (lo, hi) = (
        epochs.iter().min().copied().unwrap_or(0),
        epochs.iter().max().copied().unwrap_or(0),
    );
    let seeds = results.iter().map(|r| r.seeds.len()).max().unwrap_or(0);
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        md,
        "Budget: {} epochs, {} per run (the paper: {}, {}).{}\n",
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}–{hi}")
        },
        plural(seeds as u64, "seed"),
        plural(manifest.paper_epochs.unwrap_or(manifest.epochs), "epoch"),
        plural(manifest.paper_seeds.unwrap_or(manifest.seeds), "seed"),
        budget_note.map(|n| format!(" {n}")).unwrap_or_default()
    );
    let commits = unique(
        results
            .iter()
            .flat_map(|r| r.stretches.iter().map(|s| s.commit.as_str())),
    );
    let _ = writeln!(
        md,
        "Summarised by `rbd reproduce {}` at commit {} on {} ({}; device: {}). Runs trained by commit{} {}; {}. Validation accuracy in %, mean ± sample standard deviation over seeds.\n",
        manifest.name,
        prov.commit,
        prov.date,
        prov.machine,
        prov.device,
        if commits.len() == 1 { "" } else { "s" },
        if commits.is_empty() {
            "not recorded (runs from before provenance.jsonl existed; see the git log of results/)".to_string()
        } else {
            commits.join(", ")
        },
        trained_on_text(results)
    );
    // The paper's layout: rows × columns.
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for r in results {
        let row = r.entry.row.clone().unwrap_or_else(|| r.entry.id.clone());
        let col = r.entry.column.clone().unwrap_or_default();
        if !rows.contains(&row) {
            rows.push(row);
        }
        if !cols.contains(&col) {
            cols.push(col);
        }
    }
    let cell: BTreeMap<(String, String), &EntryResult> = results
        .iter()
        .map(|r| {
            (
                (
                    r.entry.row.clone().unwrap_or_else(|| r.entry.id.clone()),
                    r.entry.column.clone().unwrap_or_default(),
                ),
                r,
            )
        })
        .collect();
    let _ = writeln!(md, "| | {} |", cols.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(cols.len()));
    for row in &rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match cell.get(&(row.clone(), c.clone())) {
                Some(r) => {
                    let paper = r
                        .entry
                        .paper
                        .map(|p| match r.entry.paper_std {
                            Some(s) => format!("{p} ± {s}"),
                            None => format!("{p}"),
                        })
                        .unwrap_or_else(|| "–".into());
                    format!("{}<br>paper {paper}", r.ours())
                }
                None => String::new(),
            })
            .collect();
        let _ = writeln!(md, "| {row} | {} |", cells.join(" | "));
    }
    md.push_str("\n## Each run\n\n| run | ours | paper | difference | epochs | seeds | rate |\n|---|---|---|---|---|---|---|\n");
    for r in results {
        let paper = r
            .entry
            .paper
            .map(|p| {
                format!(
                    "{p}{}{}",
                    r.entry
                        .paper_std
                        .map(|s| format!(" ± {s}"))
                        .unwrap_or_default(),
                    r.entry
                        .paper_source
                        .as_ref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "–".into());
        let gap = match r.gap() {
            Some((d, true)) => format!("**{d:+.2}** (more than 1 point or 2σ)"),
            Some((d, false)) => format!("{d:+.2}"),
            None if r.entry.paper.is_some() && r.epochs < r.paper_epochs => format!(
                "not comparable: {} of the paper's {} epochs",
                r.epochs, r.paper_epochs
            ),
            None => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {paper} | {gap} | {} | {} | {} |",
            r.entry.id,
            r.ours(),
            r.epochs,
            r.values(Metric::ValAccuracy).len(),
            r.lr
        );
    }
    if let Some(f) = findings {
        md.push_str("\n## Findings (written by hand, from `findings.md`)\n\n");
        md.push_str(f.trim());
        md.push('\n');
    }
    if !manifest.notes.is_empty() {
        md.push_str("\n## Notes\n\n");
        for n in &manifest.notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    if !plots.is_empty() {
        md.push_str("\n## Plots\n\n");
        for p in plots {
            let _ = writeln!(md, "![{p}]({p})");
        }
    }
    md
}

/// (x, mean, low, high) of a band.
type BandPoint = (f64, f64, f64, f64);

/// Per-epoch (mean, min, max) over seeds that have that epoch.
fn band_over_epochs(seeds: &[Vec<EpochMetrics>]) -> Vec<(f64, f64, f64, f64)> {
    let longest = seeds.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .filter_map(|e| {
            let xs: Vec<f64> = seeds
                .iter()
                .filter_map(|s| s.get(e).map(|r| 100.0 * r.val_accuracy))
                .collect();
            let (m, _) = mean_std(&xs)?;
            let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            Some(((e + 1) as f64, m, lo, hi))
        })
        .collect()
}

/// Draws one plot spec; returns the files written.
fn draw(out: &Path, spec: &PlotSpec, results: &[EntryResult]) -> Result<Vec<String>> {
    let mut files = Vec::new();
    match spec.kind {
        PlotKind::Curves => {
            let mut by_row: Vec<(String, Vec<&EntryResult>)> = Vec::new();
            for r in results {
                let row = r.entry.row.clone().unwrap_or_else(|| r.entry.id.clone());
                match by_row.iter_mut().find(|(k, _)| *k == row) {
                    Some((_, v)) => v.push(r),
                    None => by_row.push((row, vec![r])),
                }
            }
            for (row, entries) in by_row {
                let bands: Vec<Band> = entries
                    .iter()
                    .map(|r| Band {
                        label: r.entry.column.clone().unwrap_or_else(|| r.entry.id.clone()),
                        points: band_over_epochs(&r.seeds),
                    })
                    .filter(|b| !b.points.is_empty())
                    .collect();
                if bands.is_empty() {
                    continue;
                }
                let slug: String = row
                    .to_lowercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                let file = format!("{}-{slug}.svg", spec.file);
                let title = format!("{} — {row} (band: min–max over seeds)", spec.title);
                band_chart(
                    &out.join(&file),
                    &title,
                    "epoch",
                    "validation accuracy (%)",
                    &bands,
                    false,
                )?;
                files.push(file);
            }
        }
        PlotKind::Versus => {
            let metric = spec.y.unwrap_or(Metric::ValAccuracy);
            let mut series: Vec<(String, Vec<BandPoint>)> = Vec::new();
            for r in results {
                let (Some(x), Some(name)) = (r.entry.x, r.entry.series.clone()) else {
                    continue;
                };
                let v = r.values(metric);
                let Some((m, _)) = mean_std(&v) else {
                    continue;
                };
                let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
                let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                match series.iter_mut().find(|(k, _)| *k == name) {
                    Some((_, pts)) => pts.push((x, m, lo, hi)),
                    None => series.push((name, vec![(x, m, lo, hi)])),
                }
            }
            let bands: Vec<Band> = series
                .into_iter()
                .map(|(label, mut points)| {
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Band { label, points }
                })
                .collect();
            if !bands.is_empty() {
                let y = match metric {
                    Metric::ValAccuracy => "validation accuracy (%)",
                    Metric::Correlation => "gradient correlation (whole vector)",
                    Metric::CorrelationPooled => "gradient correlation (per tensor, pooled)",
                    Metric::Seconds => "training seconds",
                };
                let x = spec.x_label.as_deref().unwrap_or("x");
                band_chart(&out.join(&spec.file), &spec.title, x, y, &bands, spec.log_x)?;
                files.push(spec.file.clone());
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_standard_deviation() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), Some((5.0, 0.0)));
        assert_eq!(mean_std(&[]), None);
    }

    #[test]
    fn a_gap_counts_past_1_point_or_past_2_paper_sigmas() {
        // Table 1's FC-MNIST RBD: σ = 0.024, so half a point needs explaining.
        assert!(needs_explaining(-0.48, Some(0.024)));
        // FC-FMNIST NES: σ = 6, but more than 1 point.
        assert!(needs_explaining(1.5, Some(6.0)));
        assert!(!needs_explaining(0.3, Some(0.2)));
        assert!(!needs_explaining(-0.9, None));
        assert!(needs_explaining(-1.1, None));
    }
}
