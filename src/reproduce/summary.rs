//! Summaries of an artefact's runs beside the paper's values: `summary.csv`, a Markdown
//! `README.md` (the table, the differences and claims the paper makes beside ours, each
//! run's row with its gap to the paper, the budget, commit and machine, the findings
//! with their numbers filled in from the runs) and the plots in the paper's form. All of
//! it is a function of the manifest and the runs on disk: each run is summarised at the
//! epochs its own configuration asks for, so regenerating gives the same bytes (less the
//! line that says when and where it was summarised, [`SUMMARISED_BY`]).

use super::manifest::{Manifest, Metric, PlanOptions, PlannedRun, PlotKind, PlotSpec, RunEntry};
use super::runner::{state, RunState};
use super::sources::Library;
use super::templates;
use crate::train::config::RunConfig;
use crate::train::metrics::{read_epochs_timed, EpochMetrics};
use crate::train::plot::{self, Band, Dots, Figure, Panel, PaperMark, Reference};
use crate::train::trainer::{Stretch, CONFIG};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub use super::stats::mean_std;

/// The start of the README line that names when and where it was summarised: the one
/// line that differs between two summaries of the same runs.
pub const SUMMARISED_BY: &str = "Summarised by ";

/// One manifest entry's result over its seeds.
#[derive(Clone, Debug)]
pub struct EntryResult {
    /// The entry.
    pub entry: RunEntry,
    /// The epochs its runs are configured for (the planned epochs where none exists).
    pub epochs: u64,
    /// Each seed's epoch rows (up to its configured epochs), for every seed on disk, with
    /// their training seconds from `provenance.jsonl` where the rows do not hold them.
    pub seeds: Vec<Vec<EpochMetrics>>,
    /// The seed of each of `seeds`.
    pub seed_ids: Vec<u64>,
    /// The first run's configuration on disk (the planned one where none exists).
    pub config: Option<RunConfig>,
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

/// Whether a difference from the paper is more than 1 point or more than 2 of the
/// paper's standard deviations (either one: a tiny published σ makes a small gap count).
pub fn needs_explaining(difference: f64, paper_std: Option<f64>) -> bool {
    difference.abs() > 1.0 || paper_std.is_some_and(|s| difference.abs() > 2.0 * s)
}

impl EntryResult {
    /// Seeds that reached the configured epochs.
    fn finished(&self) -> impl Iterator<Item = &Vec<EpochMetrics>> {
        self.seeds.iter().filter(|r| r.len() as u64 >= self.epochs)
    }

    /// The metric at the last epoch of each finished seed.
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

    /// Its table row's and column's names.
    fn row(&self) -> String {
        self.entry
            .row
            .clone()
            .unwrap_or_else(|| self.entry.id.clone())
    }

    fn column(&self) -> String {
        self.entry
            .column
            .clone()
            .unwrap_or_else(|| self.entry.id.clone())
    }
}

/// The configuration a run directory holds, if any.
fn config_on_disk(dir: &Path) -> Option<RunConfig> {
    let text = crate::train::record::text(dir, CONFIG).ok()??;
    serde_json::from_str(&text).ok()
}

/// Reads every entry's runs, each at the epochs its own configuration asks for.
pub fn collect(manifest: &Manifest, runs: &[PlannedRun]) -> Result<Vec<EntryResult>> {
    let mut out: Vec<EntryResult> = Vec::new();
    for entry in manifest.entries()? {
        let mine: Vec<&PlannedRun> = runs.iter().filter(|r| r.entry.id == entry.id).collect();
        let Some(first) = mine.first() else {
            continue;
        };
        let mut seeds = Vec::new();
        let mut seed_ids = Vec::new();
        let mut diverged = 0;
        let mut stretches = Vec::new();
        let mut config = None;
        let mut epochs = None;
        for r in &mine {
            let Some(cfg) = config_on_disk(&r.dir) else {
                continue; // A seed nobody ran.
            };
            if let RunState::Diverged(_) = state(r)? {
                diverged += 1;
            }
            stretches.extend(crate::train::trainer::stretches(&r.dir));
            let mut rows = read_epochs_timed(&r.dir)
                .with_context(|| format!("reading {}", r.dir.display()))?;
            rows.truncate(cfg.epochs as usize);
            epochs = Some(epochs.unwrap_or(0).max(cfg.epochs));
            config.get_or_insert(cfg);
            seeds.push(rows);
            seed_ids.push(r.seed);
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
            epochs: epochs.unwrap_or(first.cfg.epochs),
            seeds,
            seed_ids,
            config: config.or_else(|| Some(first.cfg.clone())),
            diverged,
            blocked: first.blocked.clone(),
            lr,
            stretches,
            paper_epochs: manifest.paper_epochs(),
        });
    }
    Ok(out)
}

/// The seeds on disk: one more than the largest `-seedN` among `runs/` (directories
/// and packed runs alike).
fn seeds_on_disk(runs: &Path) -> u64 {
    crate::train::record::runs_in(runs)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().to_string();
            let (_, n) = name.rsplit_once("-seed")?;
            n.parse::<u64>().ok().map(|n| n + 1)
        })
        .max()
        .unwrap_or(0)
}

/// Every entry of `m` with every seed on disk under `results` (at least the manifest's
/// seeds), each at its configured epochs: what the summary shows, whoever asks.
pub fn collect_all(m: &Manifest, results: &Path) -> Result<Vec<EntryResult>> {
    let runs = results
        .join(m.runs_of.as_deref().unwrap_or(&m.name))
        .join("runs");
    let everything = PlanOptions {
        seeds: Some(m.seeds.max(seeds_on_disk(&runs))),
        ..PlanOptions::default()
    };
    collect(m, &m.plan(results, &everything)?)
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

/// The files of an artefact's summary: (name in its folder, contents).
pub type Files = Vec<(String, Vec<u8>)>;

/// summary.csv, README.md and the plots of `manifest`'s `results`, which live under
/// `results_dir` (findings and cross-artefact placeholders are read from there).
pub fn render(
    results_dir: &Path,
    manifest: &Manifest,
    results: &[EntryResult],
    prov: &Provenance,
) -> Result<Files> {
    let mut lib = Library::new(results_dir);
    lib.insert(manifest, results.to_vec());
    let mut files: Files = vec![("summary.csv".into(), csv(results)?)];
    let budget = Budget::of(manifest, results);
    let mut plots = Vec::new();
    for spec in &manifest.plots {
        for (file, fig) in figures(spec, manifest, results, &budget, &mut lib)? {
            files.push((file.clone(), plot::render(&fig)?.into_bytes()));
            plots.push(file);
        }
    }
    let findings_file = results_dir.join(&manifest.name).join("findings.md");
    let findings = match std::fs::read_to_string(&findings_file) {
        Ok(text) => Some(templates::expand(
            &text,
            &mut lib,
            &findings_file.display().to_string(),
        )?),
        Err(_) => None,
    };
    let mut md = markdown(
        manifest,
        results,
        prov,
        &budget,
        &plots,
        findings.as_deref(),
        &mut lib,
    )?;
    if let Some(r) = super::reference::check(manifest, results, results_dir)? {
        // After the table: what this short budget shows, before the runs and plots.
        let at = md.find("\n## Each run").map_or(md.len(), |i| i + 1);
        md.insert_str(at, &format!("{}\n", r.markdown()));
    }
    files.push(("README.md".into(), md.into_bytes()));
    Ok(files)
}

/// Writes summary.csv, README.md and the plots into `out` (`results_dir/NAME`).
pub fn write(
    out: &Path,
    manifest: &Manifest,
    results: &[EntryResult],
    prov: &Provenance,
) -> Result<()> {
    let results_dir = out.parent().unwrap_or(Path::new("."));
    let files = render(results_dir, manifest, results, prov)?;
    std::fs::create_dir_all(out)?;
    for (name, bytes) in files {
        crate::train::run_dir::write_atomic(&out.join(name), &bytes)?;
    }
    Ok(())
}

fn csv(results: &[EntryResult]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "row",
        "column",
        "epochs",
        "seeds_finished",
        "mean_val_accuracy",
        "std_val_accuracy",
        "paper",
        "paper_std",
        "difference",
        "gap",
        "mean_correlation",
        "mean_seconds",
        "diverged_seeds",
        "lr",
    ])?;
    let opt = |v: Option<f64>| v.map(crate::nonfinite::text).unwrap_or_default();
    for r in results {
        let acc = mean_std(&r.values(Metric::ValAccuracy));
        let gap = r.gap();
        w.write_record([
            r.entry.id.clone(),
            r.entry.row.clone().unwrap_or_default(),
            r.entry.column.clone().unwrap_or_default(),
            r.epochs.to_string(),
            r.values(Metric::ValAccuracy).len().to_string(),
            opt(acc.map(|a| a.0)),
            opt(acc.map(|a| a.1)),
            opt(r.entry.paper),
            opt(r.entry.paper_std),
            opt(gap.map(|g| g.0)),
            gap.map(|g| if g.1 { "yes" } else { "no" })
                .unwrap_or_default()
                .to_string(),
            opt(mean_std(&r.values(Metric::Correlation)).map(|a| a.0)),
            opt(mean_std(&r.values(Metric::Seconds)).map(|a| a.0)),
            r.diverged.to_string(),
            r.lr.clone(),
        ])?;
    }
    w.into_inner().context("writing summary.csv")
}

/// The budget our runs had, against the paper's.
struct Budget {
    /// Fewest and most epochs of the entries.
    epochs: (u64, u64),
    /// Fewest and most seeds on disk of the entries that have runs.
    seeds: (usize, usize),
    /// "the paper: 100 epochs, 3 seeds".
    paper: String,
    /// The sentence that says this is less than the paper ran, if it is.
    reduced: Option<String>,
}

/// `n what`, with an `s` where `n` is not 1.
pub fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn span(lo: u64, hi: u64, what: &str) -> String {
    if lo == hi {
        plural(lo, what)
    } else {
        format!("{lo}–{hi} {what}s")
    }
}

impl Budget {
    fn of(m: &Manifest, results: &[EntryResult]) -> Budget {
        let epochs: Vec<u64> = results.iter().map(|r| r.epochs).collect();
        let seeds: Vec<usize> = results
            .iter()
            .map(|r| r.seeds.len())
            .filter(|n| *n > 0)
            .collect();
        let range = |xs: &[u64]| {
            (
                xs.iter().min().copied().unwrap_or(0),
                xs.iter().max().copied().unwrap_or(0),
            )
        };
        let epochs = range(&epochs);
        let seeds_u: Vec<u64> = seeds.iter().map(|s| *s as u64).collect();
        let seeds = range(&seeds_u);
        let paper = match &m.paper_budget {
            Some(text) => format!("the paper: {text}"),
            None => format!(
                "the paper: {}, {}",
                plural(m.paper_epochs(), "epoch"),
                plural(m.paper_seeds(), "seed")
            ),
        };
        let mut parts = Vec::new();
        if m.paper_budget.is_none() {
            if epochs.0 < m.paper_epochs() {
                parts.push(format!(
                    "{} instead of the paper's {}",
                    span(epochs.0, epochs.1, "epoch"),
                    m.paper_epochs()
                ));
            }
            if seeds.1 > 0 && seeds.0 < m.paper_seeds() {
                parts.push(format!(
                    "{} instead of {}",
                    span(seeds.0, seeds.1, "seed"),
                    m.paper_seeds()
                ));
            }
        }
        Budget {
            epochs,
            seeds: (seeds.0 as usize, seeds.1 as usize),
            paper,
            reduced: (!parts.is_empty())
                .then(|| format!("A reduced reproduction: {}.", parts.join("; "))),
        }
    }

    /// "100 epochs, 3 seeds per run".
    fn ours(&self) -> String {
        let seeds = if self.seeds.1 == 0 {
            "no runs yet".to_string()
        } else {
            format!(
                "{} per run",
                span(self.seeds.0 as u64, self.seeds.1 as u64, "seed")
            )
        };
        format!("{}, {seeds}", span(self.epochs.0, self.epochs.1, "epoch"))
    }
}

/// The paper's cell as text: `93.893 ± 0.024`.
fn paper_text(entry: &RunEntry) -> Option<String> {
    let p = entry.paper?;
    Some(match entry.paper_std {
        Some(s) => format!("{p} ± {s}"),
        None => format!("{p}"),
    })
}

fn markdown(
    manifest: &Manifest,
    results: &[EntryResult],
    prov: &Provenance,
    budget: &Budget,
    plots: &[String],
    findings: Option<&str>,
    lib: &mut Library,
) -> Result<String> {
    let mut md = format!("# {}\n\n", manifest.title);
    let _ = writeln!(
        md,
        "Budget: {} ({}).{}\n",
        budget.ours(),
        budget.paper,
        budget
            .reduced
            .as_ref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "{SUMMARISED_BY}`rbd reproduce {}` at commit {} on {} ({}; device: {}).\n",
        manifest.name, prov.commit, prov.date, prov.machine, prov.device,
    );
    let commits = unique(
        results
            .iter()
            .flat_map(|r| r.stretches.iter().map(|s| s.commit.as_str())),
    );
    let _ = writeln!(
        md,
        "Runs trained by commit{} {}; {}. Validation accuracy in %, mean ± sample standard deviation over seeds.\n",
        if commits.len() == 1 { "" } else { "s" },
        if commits.is_empty() {
            "not recorded (runs from before provenance.jsonl existed; see the git log of results/)".to_string()
        } else {
            commits.join(", ")
        },
        trained_on_text(results)
    );
    // The paper's layout: rows × columns.
    let rows = unique(
        results
            .iter()
            .map(|r| r.entry.row.as_deref().unwrap_or(&r.entry.id)),
    );
    let cols = unique(
        results
            .iter()
            .map(|r| r.entry.column.as_deref().unwrap_or("")),
    );
    let cell: BTreeMap<(String, String), &EntryResult> = results
        .iter()
        .map(|r| ((r.row(), r.entry.column.clone().unwrap_or_default()), r))
        .collect();
    let _ = writeln!(md, "| | {} |", cols.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(cols.len()));
    for row in &rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match cell.get(&(row.to_string(), c.to_string())) {
                Some(r) => format!(
                    "{}<br>paper {}",
                    r.ours(),
                    paper_text(&r.entry).unwrap_or_else(|| "–".into())
                ),
                None => String::new(),
            })
            .collect();
        let _ = writeln!(md, "| {row} | {} |", cells.join(" | "));
    }
    if !manifest.differences.is_empty() {
        md.push_str("\n## The differences the paper reports\n\n| difference | ours | paper |\n|---|---|---|\n");
        for d in &manifest.differences {
            let ours = templates::expand(
                &format!(
                    "{{{{{name}/{of} paired-minus {name}/{minus}}}}}",
                    name = manifest.name,
                    of = d.of,
                    minus = d.minus
                ),
                lib,
                &format!("{}: difference '{}'", manifest.name, d.label),
            )?;
            let _ = writeln!(
                md,
                "| {} | {ours} | {}{} ({}) |",
                d.label,
                d.paper,
                d.paper_std.map(|s| format!(" ± {s}")).unwrap_or_default(),
                d.paper_source
            );
        }
        md.push_str(
            "\nOurs: the mean ± std over seeds of each seed's difference (seeds run for both).\n",
        );
    }
    if !manifest.claims.is_empty() {
        md.push_str("\n## The paper's claims beside ours\n\n| the paper | ours |\n|---|---|\n");
        for (i, c) in manifest.claims.iter().enumerate() {
            let ours =
                templates::expand(&c.ours, lib, &format!("{}: claim {}", manifest.name, i + 1))?;
            let _ = writeln!(md, "| {} | {} |", c.paper, ours);
        }
    }
    md.push_str("\n## Each run\n\n| run | ours | paper | difference | epochs | seeds | rate |\n|---|---|---|---|---|---|---|\n");
    for r in results {
        let paper = paper_text(&r.entry)
            .map(|p| {
                format!(
                    "{p}{}",
                    r.entry
                        .paper_source
                        .as_ref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "–".into());
        let gap = match r.gap() {
            // A gap to the paper counts only at the paper's budget.
            Some((d, _)) if r.epochs != r.paper_epochs => {
                format!(
                    "{d:+.2} (at {} of the paper's {} epochs)",
                    r.epochs, r.paper_epochs
                )
            }
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
        md.push_str("\n## Findings (from `findings.md`, its numbers filled in from the runs)\n\n");
        md.push_str(f.trim());
        md.push('\n');
    }
    if !manifest.notes.is_empty() {
        md.push_str("\n## Notes\n\n");
        for (i, n) in manifest.notes.iter().enumerate() {
            let n = templates::expand(n, lib, &format!("{}: note {}", manifest.name, i + 1))?;
            let _ = writeln!(md, "- {n}");
        }
    }
    if !plots.is_empty() {
        md.push_str("\n## Plots\n\n");
        for p in plots {
            let _ = writeln!(md, "![{p}]({p})");
        }
    }
    Ok(md)
}

/// (x, mean, low, high) of a band.
type BandPoint = (f64, f64, f64, f64);

/// Per-epoch (mean, min, max) over seeds that have that epoch.
fn band_over_epochs(seeds: &[Vec<EpochMetrics>]) -> Vec<BandPoint> {
    let longest = seeds.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .filter_map(|e| {
            let xs: Vec<f64> = seeds
                .iter()
                .filter_map(|s| s.get(e).map(|r| 100.0 * r.val_accuracy))
                .collect();
            let (m, _) = mean_std(&xs)?;
            let (lo, hi) = min_max(&xs);
            Some(((e + 1) as f64, m, lo, hi))
        })
        .collect()
}

/// Per-epoch mean over the seeds of `cell` that have that epoch (a line, no band).
fn mean_over_epochs(cell: &super::sources::Cell) -> Vec<BandPoint> {
    let longest = cell.seeds.iter().map(|s| s.rows.len()).max().unwrap_or(0);
    (0..longest)
        .filter_map(|e| {
            let xs: Vec<f64> = cell
                .seeds
                .iter()
                .filter_map(|s| s.rows.get(e).map(|r| r.val))
                .collect();
            let (m, _) = mean_std(&xs)?;
            Some(((e + 1) as f64, m, m, m))
        })
        .collect()
}

fn min_max(xs: &[f64]) -> (f64, f64) {
    (
        xs.iter().cloned().fold(f64::INFINITY, f64::min),
        xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// `text` as a file name part: lower case, `-` for anything else.
fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The entries of each table row, rows in order.
fn by_row(results: &[EntryResult]) -> Vec<(String, Vec<&EntryResult>)> {
    let mut rows: Vec<(String, Vec<&EntryResult>)> = Vec::new();
    for r in results {
        let row = r.row();
        match rows.iter_mut().find(|(k, _)| *k == row) {
            Some((_, v)) => v.push(r),
            None => rows.push((row, vec![r])),
        }
    }
    rows
}

/// The paper's mark for `r` at `x`: labelled by the method it is a value of where the
/// label names one (`paper NES`), with the value itself where `with_value`.
fn paper_mark(
    r: &EntryResult,
    label: &str,
    x: f64,
    across: bool,
    with_value: bool,
    colour: plotters::style::RGBColor,
) -> Option<PaperMark> {
    let text = paper_text(&r.entry)?;
    let name = plot::method_of(label).map_or(label, |m| m.0);
    Some(PaperMark {
        label: if with_value {
            format!("the paper, {name}: {text}")
        } else {
            format!("the paper, {name}: mean ± std")
        },
        mean: r.entry.paper?,
        std: r.entry.paper_std,
        x,
        across,
        colour,
    })
}

/// `marks` without repeats of one value of the paper (variants of a cell share it).
fn distinct(marks: Vec<PaperMark>) -> Vec<PaperMark> {
    let mut out: Vec<PaperMark> = Vec::new();
    for m in marks {
        if !out
            .iter()
            .any(|o| o.mean == m.mean && o.std == m.std && o.x == m.x)
        {
            out.push(m);
        }
    }
    out
}

/// The reference lines a plot asks for: `CELL=LABEL` at CELL's final mean.
fn references(spec: &PlotSpec, lib: &mut Library) -> Result<Vec<Reference>> {
    let mut out = Vec::new();
    for r in &spec.references {
        let (name, label) = r.split_once('=').unwrap_or((r.as_str(), r.as_str()));
        let cell = lib
            .cell(name)
            .with_context(|| format!("plot '{}': reference '{r}'", spec.file))?;
        if let Some((m, _)) = mean_std(&cell.values()) {
            out.push(Reference {
                label: format!("{label}: {m:.2}"),
                y: m,
                colour: plot::method_colour(label).unwrap_or(plot::OKABE_ITO[0]),
            });
        }
    }
    Ok(out)
}

/// The figures of one plot spec: (file name, figure).
fn figures(
    spec: &PlotSpec,
    manifest: &Manifest,
    results: &[EntryResult],
    budget: &Budget,
    lib: &mut Library,
) -> Result<Vec<(String, Figure)>> {
    // A versus plot colours its series; the others their columns.
    let labels: Vec<String> = unique(results.iter().map(|r| {
        let column = r.entry.column.as_deref();
        let series = r.entry.series.as_deref();
        match spec.kind {
            PlotKind::Versus => series.or(column),
            _ => column.or(series),
        }
        .unwrap_or(&r.entry.id)
    }))
    .into_iter()
    .map(str::to_string)
    .collect();
    let palette = plot::colours(&labels);
    let colour_of = |label: &str| {
        labels
            .iter()
            .position(|l| l == label)
            .map_or(plot::OKABE_ITO[0], |i| palette[i])
    };
    let refs = references(spec, lib)?;
    // The runs a short artefact repeats, wherever they are committed.
    let mut repeated = match &manifest.reference {
        Some(name) => {
            let refm = Manifest::load(name)?;
            let dir = super::reference::runs_dir(&refm, lib.results())?;
            Some((name.clone(), Library::new(&dir)))
        }
        None => None,
    };
    let subtitle = |what: &str| format!("ours: {}, {what}; {}", budget.ours(), budget.paper);
    let notes: Vec<String> = manifest
        .differences
        .iter()
        .map(|d| {
            let ours = templates::expand(
                &format!(
                    "{{{{{name}/{of} minus {name}/{minus} .1}}}}",
                    name = manifest.name,
                    of = d.of,
                    minus = d.minus
                ),
                lib,
                &format!("{}: difference '{}'", manifest.name, d.label),
            )?;
            Ok(format!(
                "{}: ours {ours}, the paper {}{} ({})",
                d.label,
                d.paper,
                d.paper_std.map(|s| format!(" ± {s}")).unwrap_or_default(),
                d.paper_source
            ))
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    match spec.kind {
        PlotKind::Curves => {
            let mut panels = Vec::new();
            for (row, entries) in by_row(results) {
                let mut panel = Panel {
                    title: row.clone(),
                    x_label: "epoch".into(),
                    y_label: "validation accuracy (%)".into(),
                    references: refs.clone(),
                    ..Panel::default()
                };
                for r in &entries {
                    let label = r.column();
                    let colour = colour_of(&label);
                    let points = band_over_epochs(&r.seeds);
                    if points.is_empty() {
                        continue;
                    }
                    // A hybrid's switch: a rule in its colour (Figure B.12's form).
                    if let Some(switch) = r
                        .config
                        .as_ref()
                        .and_then(|c| c.schedule.first()?.until_epoch)
                    {
                        panel.rules.push((switch as f64, colour));
                    }
                    panel.bands.push(Band {
                        label: format!("{label} ({})", seeds_text(r.seeds.len())),
                        points,
                        colour,
                    });
                    if let Some((name, runs)) = &mut repeated {
                        // The runs this one repeats, to where they end.
                        let cell = runs.cell(&format!("{name}/{}", r.entry.id))?;
                        let points = mean_over_epochs(&cell);
                        if !points.is_empty() {
                            panel.context.push(Band {
                                label: format!(
                                    "{label}: {name}, {} ({})",
                                    plural(cell.epochs, "epoch"),
                                    seeds_text(cell.seeds.len())
                                ),
                                points,
                                colour,
                            });
                        }
                    }
                    panel.paper.extend(paper_mark(
                        r,
                        &label,
                        manifest.paper_epochs() as f64,
                        true,
                        !spec.grid,
                        colour,
                    ));
                }
                panel.paper = distinct(std::mem::take(&mut panel.paper));
                if !panel.bands.is_empty() {
                    panels.push((row, panel));
                }
            }
            let what = "validation accuracy after each epoch; band: min–max over seeds";
            if spec.grid && !panels.is_empty() {
                out.push((
                    format!("{}.svg", spec.file),
                    Figure {
                        title: spec.title.clone(),
                        subtitle: subtitle(what),
                        columns: if panels.len() > 2 { 3 } else { panels.len() },
                        panels: panels.into_iter().map(|p| p.1).collect(),
                        notes: notes.clone(),
                    },
                ));
            } else {
                for (row, panel) in panels {
                    out.push((
                        format!("{}-{}.svg", spec.file, slug(&row)),
                        Figure {
                            title: format!("{} — {row}", spec.title),
                            subtitle: subtitle(what),
                            panels: vec![panel],
                            columns: 1,
                            notes: notes.clone(),
                        },
                    ));
                }
            }
        }
        PlotKind::Versus => {
            let metric = spec.y.unwrap_or(Metric::ValAccuracy);
            let scale = if metric == Metric::Seconds {
                1.0 / 3600.0
            } else {
                1.0
            };
            let mut panel = Panel {
                x_label: format!(
                    "{}{}",
                    spec.x_label.as_deref().unwrap_or("x"),
                    if spec.log_x { " (log scale)" } else { "" }
                ),
                y_label: match metric {
                    Metric::ValAccuracy => "validation accuracy after the last epoch (%)",
                    Metric::Correlation => "cosine of the update with the gradient (last epoch)",
                    Metric::CorrelationPooled => "cosine per tensor, pooled (last epoch)",
                    Metric::Seconds => "training time (hours, this machine)",
                }
                .into(),
                log_x: spec.log_x,
                references: if metric == Metric::ValAccuracy {
                    refs.clone()
                } else {
                    Vec::new()
                },
                ..Panel::default()
            };
            let mut series: Vec<(String, Vec<BandPoint>)> = Vec::new();
            for r in results {
                let (Some(x), Some(name)) = (r.entry.x, r.entry.series.clone()) else {
                    continue;
                };
                let v: Vec<f64> = r.values(metric).iter().map(|v| v * scale).collect();
                if metric == Metric::ValAccuracy {
                    panel.paper.extend(paper_mark(
                        r,
                        &format!("{name} at {x}"),
                        x,
                        false,
                        true,
                        colour_of(&name),
                    ));
                }
                let Some((m, _)) = mean_std(&v) else {
                    continue;
                };
                let (lo, hi) = min_max(&v);
                match series.iter_mut().find(|(k, _)| *k == name) {
                    Some((_, pts)) => pts.push((x, m, lo, hi)),
                    None => series.push((name, vec![(x, m, lo, hi)])),
                }
            }
            for (label, mut points) in series {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                panel.bands.push(Band {
                    colour: colour_of(&label),
                    label,
                    points,
                });
            }
            if !panel.bands.is_empty() || !panel.paper.is_empty() {
                out.push((
                    spec.file.clone(),
                    Figure {
                        title: spec.title.clone(),
                        subtitle: subtitle("after the last epoch; bars: min–max over seeds"),
                        panels: vec![panel],
                        columns: 1,
                        notes: notes.clone(),
                    },
                ));
            }
        }
        PlotKind::Cells => {
            let mut panels = Vec::new();
            for (row, entries) in by_row(results) {
                let categories: Vec<String> = entries.iter().map(|r| r.column()).collect();
                let mut panel = Panel {
                    title: row,
                    x_label: String::new(),
                    y_label: "validation accuracy, last epoch (%)".into(),
                    categories,
                    ..Panel::default()
                };
                for (i, r) in entries.iter().enumerate() {
                    let label = r.column();
                    let colour = colour_of(&label);
                    panel
                        .paper
                        .extend(paper_mark(r, &label, i as f64, false, false, colour));
                    let values = r.values(Metric::ValAccuracy);
                    if !values.is_empty() {
                        panel.dots.push(Dots {
                            label: format!("ours, {label}: each seed (○), mean (—)"),
                            x: i as f64,
                            values,
                            colour,
                        });
                    }
                }
                if !panel.dots.is_empty() || !panel.paper.is_empty() {
                    panels.push(panel);
                }
            }
            if !panels.is_empty() {
                out.push((
                    format!("{}.svg", spec.file),
                    Figure {
                        title: spec.title.clone(),
                        subtitle: subtitle("finished seeds after the last epoch"),
                        columns: if panels.len() > 2 { 3 } else { panels.len() },
                        panels,
                        notes: notes.clone(),
                    },
                ));
            }
        }
    }
    Ok(out)
}

fn seeds_text(n: usize) -> String {
    plural(n as u64, "seed")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes runs of `manifest` under a fresh results folder: `seeds` seeds of
    /// `epochs` epochs each, validation accuracy `acc(id, seed, epoch)`.
    fn fixture(
        manifest: &str,
        epochs: u64,
        seeds: u64,
        acc: impl Fn(&str, u64, u64) -> f64,
    ) -> (std::path::PathBuf, Manifest) {
        let m = Manifest::load(manifest).unwrap();
        let results = std::env::temp_dir().join(format!(
            "rbd-summary-{manifest}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&results);
        let opts = PlanOptions {
            epochs: Some(epochs),
            seeds: Some(seeds),
            ..PlanOptions::default()
        };
        for r in m.plan(&results, &opts).unwrap() {
            std::fs::create_dir_all(&r.dir).unwrap();
            std::fs::write(
                r.dir.join(CONFIG),
                serde_json::to_string_pretty(&r.cfg).unwrap(),
            )
            .unwrap();
            let rows: Vec<String> = (1..=epochs)
                .map(|e| {
                    let v = acc(&r.entry.id, r.seed, e);
                    serde_json::to_string(&EpochMetrics {
                        epoch: e,
                        step: e * 10,
                        optimizer: "rbd".into(),
                        val_accuracy: v,
                        train_accuracy: v,
                        ..EpochMetrics::default()
                    })
                    .unwrap()
                })
                .collect();
            std::fs::write(r.dir.join("metrics.jsonl"), rows.join("\n") + "\n").unwrap();
        }
        (results, m)
    }

    fn rendered(results: &Path, m: &Manifest) -> BTreeMap<String, String> {
        let prov = Provenance {
            commit: "c".into(),
            device: "cpu".into(),
            machine: "m".into(),
            date: "d".into(),
        };
        let r = collect_all(m, results).unwrap();
        render(results, m, &r, &prov)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn figure_1_draws_the_four_methods_and_sets_the_differences_beside_the_papers() {
        let level = |id: &str| match id {
            "resnet8-rbd" => 0.6,
            "resnet8-fpd" => 0.4,
            "resnet8-nes" => 0.2,
            _ => 0.8,
        };
        let (results, m) = fixture("fig1", 3, 2, |id, seed, e| {
            level(id) + 0.01 * seed as f64 + 0.001 * e as f64
        });
        let files = rendered(&results, &m);
        let readme = &files["README.md"];
        assert!(
            readme.contains("## The differences the paper reports"),
            "{readme}"
        );
        // The same per-seed offsets cancel: +20 points at both seeds.
        assert!(
            readme.contains("| RBD − FPD | +20.00 ± 0.00 (2 seeds) | 20.5 (Figure 1) |"),
            "{readme}"
        );
        assert!(readme.contains("| RBD − NES | +40.00 ± 0.00 (2 seeds) | 39.6 (Figure 1) |"));
        // A short budget is stated, and its gaps are not flagged against the paper's.
        assert!(readme.contains(
            "A reduced reproduction: 3 epochs instead of the paper's 100; 2 seeds instead of 3."
        ));
        let svg = files
            .iter()
            .find(|(k, _)| k.starts_with("curves-") && k.ends_with(".svg"))
            .map(|(_, v)| v)
            .expect("Figure 1's curves");
        assert!(
            // (Wrapped beside the legend.)
            svg.contains("RBD − FPD: ours +20.0, the paper 20.5"),
            "note missing"
        );
        for (method, colour) in [
            ("RBD", "#0072B2"),
            ("FPD", "#D55E00"),
            ("NES", "#009E73"),
            ("SGD", "#000000"),
        ] {
            assert!(
                svg.contains(&format!("{method} (2 seeds)")),
                "{method} missing"
            );
            assert!(svg.contains(colour), "{method}'s colour missing");
        }
        assert!(
            svg.contains("3 epochs, 2 seeds per run"),
            "budget missing from the title"
        );
        let _ = std::fs::remove_dir_all(&results);
    }

    #[test]
    fn b10s_gains_are_paired_by_seed_and_set_beside_the_papers() {
        let (results, m) = fixture("b10", 2, 3, |id, seed, _| {
            let base = if id.ends_with("layer") { 0.9 } else { 0.88 };
            base + 0.01 * seed as f64
        });
        let readme = &rendered(&results, &m)["README.md"];
        assert!(
            readme.contains(
                "| layer − one base, CNN-CIFAR10 | +2.00 ± 0.00 (3 seeds) | 3.85 ± 0.64 (§B.4.2) |"
            ),
            "{readme}"
        );
        let _ = std::fs::remove_dir_all(&results);
    }

    #[test]
    fn claims_quote_other_artefacts_and_say_when_those_have_not_run() {
        let (results, m) = fixture("b7", 1, 1, |id, _, _| match id {
            "d10000" => 0.7,
            _ => 0.5,
        });
        let readme = &rendered(&results, &m)["README.md"];
        assert!(
            readme.contains("## The paper's claims beside ours"),
            "{readme}"
        );
        assert!(readme.contains("d = 10^4: 70.00 (1 seed)"), "{readme}");
        // Table 1's SGD cell has no run in this folder: the claim says so, no number.
        assert!(readme.contains("(n/a: not run — "), "{readme}");
        let _ = std::fs::remove_dir_all(&results);
    }

    #[test]
    fn table_style_plots_mark_every_papers_value_in_its_methods_colour() {
        let (results, m) = fixture("table1", 2, 1, |_, _, e| 0.3 * e as f64);
        let files = rendered(&results, &m);
        let svg = &files["cells.svg"];
        for method in ["NES", "FPD", "RBD", "SGD"] {
            assert!(
                svg.contains(&format!("the paper, {method}: mean ± std")),
                "{method}"
            );
        }
        let readme = &files["README.md"];
        // 2 of the paper's 100 epochs: no difference, no flag.
        assert!(
            readme.contains("| not comparable: 2 of the paper's 100 epochs |"),
            "{readme}"
        );
        assert!(!readme.contains("(more than 1 point or 2σ)"), "{readme}");
        let _ = std::fs::remove_dir_all(&results);
    }

    #[test]
    fn a_comma_in_a_column_stays_in_its_csv_field() {
        let (results, m) = fixture("table1-table4", 1, 1, |_, _, _| 0.5);
        let csv = &rendered(&results, &m)["summary.csv"];
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header = reader.headers().unwrap().len();
        for record in reader.records() {
            assert_eq!(record.unwrap().len(), header, "{csv}");
        }
        assert!(
            csv.contains("\"RBD (Table 4's rate, no augmentation)\""),
            "{csv}"
        );
        let _ = std::fs::remove_dir_all(&results);
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

    #[test]
    fn a_short_repeat_draws_the_runs_it_repeats_and_is_checked_against_them() {
        let acc = |_: &str, _: u64, e: u64| 0.2 * e as f64;
        let (results, _) = fixture("table1", 3, 1, acc);
        let (elsewhere, quick) = fixture("quick", 1, 1, acc);
        std::fs::rename(elsewhere.join("quick"), results.join("quick")).unwrap();
        let files = rendered(&results, &quick);
        let svg = &files["curves-fc-mnist.svg"];
        for method in ["NES", "FPD", "RBD", "SGD"] {
            assert!(
                svg.contains(&format!("{method}: table1, 3 epochs (1 seed)")),
                "{method}: {svg}"
            );
        }
        let readme = &files["README.md"];
        let check = readme.find("## Checked against `table1`").expect(readme);
        assert!(check < readme.find("## Each run").unwrap(), "{readme}");
        assert!(
            readme.contains("reproduced bit for bit: all 4 runs match table1's committed runs"),
            "{readme}"
        );
        let _ = std::fs::remove_dir_all(&results);
        let _ = std::fs::remove_dir_all(&elsewhere);
    }

    #[test]
    fn budgets_name_the_papers_seeds_and_say_when_ours_are_fewer() {
        let m = Manifest::load("table1-plain").unwrap();
        let b = Budget::of(&m, &[]);
        assert_eq!(b.paper, "the paper: 100 epochs, 3 seeds");
        let m = Manifest::load("quick").unwrap();
        let b = Budget {
            epochs: (2, 2),
            seeds: (1, 1),
            ..Budget::of(&m, &[])
        };
        assert_eq!(b.ours(), "2 epochs, 1 seed per run");
        assert_eq!(span(1, 3, "seed"), "1–3 seeds");
    }
}
