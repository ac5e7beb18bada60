//! An artefact that repeats another's runs on a shorter budget (`reference = "table1"` in
//! its manifest: `quick` repeats Table 1's FC-MNIST row for a few epochs) is checked
//! against it three ways:
//!
//! * bit for bit: each run's epoch rows must equal the committed reference run's rows at
//!   the same epochs (same configuration, same seed ⇒ the same trajectory on any machine);
//! * the paper's ordering at equal budget (`claim_order`, best first) and the margin of
//!   the first listed random-subspace method over the next;
//! * context: where the reference's full-budget runs end against the paper. The short
//!   run's own numbers are never set against the paper's full-budget values.

use super::manifest::{Manifest, Metric, PlanOptions};
use super::summary::{collect, mean_std, EntryResult};
use crate::train::metrics::{read_epochs, EpochMetrics};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One run's rows compared with its reference run's.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    /// Every compared epoch's numbers are equal, to the last bit.
    Identical {
        /// Epochs compared.
        epochs: usize,
    },
    /// An epoch differs: the first field that does, ours and theirs.
    Differs {
        /// Epoch (from 1).
        epoch: u64,
        /// The field.
        field: &'static str,
        /// Ours.
        ours: f64,
        /// The reference run's.
        theirs: f64,
    },
    /// Nothing to compare: why.
    Missing(String),
}

/// A run of ours against the reference's run of the same id and seed.
#[derive(Clone, Debug)]
pub struct RunMatch {
    /// `id seed S`.
    pub run: String,
    /// The outcome.
    pub outcome: Match,
}

/// Everything the check found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The reference artefact.
    pub reference: String,
    /// Per run.
    pub runs: Vec<RunMatch>,
    /// The columns in the paper's order and our mean at this budget (`None`: not run).
    pub order: Vec<(String, Option<f64>)>,
    /// The reference's cells at full budget: (row, column, ours, paper).
    pub context: Vec<(String, String, String, String)>,
    /// The reference's budget in epochs.
    pub reference_epochs: u64,
}

/// A compared field: its name and how to read it.
type Field = (&'static str, fn(&EpochMetrics) -> f64);

const FIELDS: [Field; 4] = [
    ("val_accuracy", |r| r.val_accuracy),
    ("val_loss", |r| r.val_loss),
    ("train_accuracy", |r| r.train_accuracy),
    ("train_loss", |r| r.train_loss),
];

/// Compares two runs' rows epoch by epoch (bit for bit; NaN equals NaN).
pub fn compare(ours: &[EpochMetrics], theirs: &[EpochMetrics]) -> Match {
    if ours.is_empty() {
        return Match::Missing("not run here yet".into());
    }
    if theirs.len() < ours.len() {
        return Match::Missing(format!(
            "the reference run has {} epochs, fewer than the {} run here",
            theirs.len(),
            ours.len()
        ));
    }
    for (a, b) in ours.iter().zip(theirs) {
        for (field, get) in FIELDS {
            let (x, y) = (get(a), get(b));
            if x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()) {
                return Match::Differs {
                    epoch: a.epoch,
                    field,
                    ours: x,
                    theirs: y,
                };
            }
        }
    }
    Match::Identical { epochs: ours.len() }
}

/// Where the reference artefact `refm`'s committed runs are: beside this artefact's
/// (under `results_dir`), or in the checkout's `results/` when this one was written
/// elsewhere (`--results runs`).
pub fn runs_dir(refm: &Manifest, results_dir: &Path) -> Result<PathBuf> {
    let all = PlanOptions {
        data_dir: PathBuf::new(),
        ..Default::default()
    };
    let committed = Path::new("results");
    Ok(
        if refm
            .plan(results_dir, &all)?
            .iter()
            .any(|q| crate::train::record::has(&q.dir, crate::train::trainer::CONFIG))
            || !committed.exists()
        {
            results_dir.to_path_buf()
        } else {
            committed.to_path_buf()
        },
    )
}

/// Checks `results` (this artefact's runs, under `results_dir`) against
/// `manifest.reference`'s committed runs: under `results_dir` if it holds them, else under
/// `results/` of the working directory (the checkout's committed results).
pub fn check(
    manifest: &Manifest,
    results: &[EntryResult],
    results_dir: &Path,
) -> Result<Option<Report>> {
    let Some(name) = &manifest.reference else {
        return Ok(None);
    };
    let refm = Manifest::load(name).with_context(|| format!("{}'s reference", manifest.name))?;
    let all = PlanOptions {
        data_dir: std::path::PathBuf::new(),
        ..Default::default()
    };
    let ref_runs = refm.plan(&runs_dir(&refm, results_dir)?, &all)?;
    let ours_plan = manifest.plan(
        results_dir,
        &PlanOptions {
            seeds: Some(manifest.seeds),
            ..all.clone()
        },
    )?;
    let mut runs = Vec::new();
    for r in &ours_plan {
        let label = format!("{} seed {}", r.entry.id, r.seed);
        let outcome = match ref_runs
            .iter()
            .find(|q| q.entry.id == r.entry.id && q.seed == r.seed)
        {
            None => Match::Missing(format!("{name} has no run {label}")),
            Some(q) if q.cfg.run_id() != r.cfg.run_id() => {
                Match::Missing(format!("{name}'s {label} is another configuration"))
            }
            Some(q) => {
                // No rows where a run is not there (open, sealed or packed).
                let mut mine = read_epochs(&r.dir)?;
                mine.truncate(r.cfg.epochs as usize);
                let theirs = read_epochs(&q.dir)?;
                compare(&mine, &theirs)
            }
        };
        runs.push(RunMatch {
            run: label,
            outcome,
        });
    }
    let order = manifest
        .claim_order
        .iter()
        .map(|col| {
            let v = results
                .iter()
                .filter(|e| e.entry.column.as_deref() == Some(col.as_str()))
                .flat_map(|e| e.values(Metric::ValAccuracy))
                .collect::<Vec<_>>();
            (col.clone(), mean_std(&v).map(|(m, _)| m))
        })
        .collect();
    let ref_results = collect(&refm, &ref_runs)?;
    let ours_ids: Vec<&str> = results.iter().map(|e| e.entry.id.as_str()).collect();
    let context = ref_results
        .iter()
        .filter(|e| ours_ids.contains(&e.entry.id.as_str()))
        .map(|e| {
            let paper = e
                .entry
                .paper
                .map(|p| match e.entry.paper_std {
                    Some(s) => format!("{p} ± {s}"),
                    None => format!("{p}"),
                })
                .unwrap_or_else(|| "–".into());
            (
                e.entry.row.clone().unwrap_or_default(),
                e.entry.column.clone().unwrap_or_else(|| e.entry.id.clone()),
                e.ours(),
                paper,
            )
        })
        .collect();
    Ok(Some(Report {
        reference: name.clone(),
        runs,
        order,
        context,
        reference_epochs: refm.epochs,
    }))
}

impl Report {
    /// Whether every run that was compared is identical and none is missing.
    pub fn all_identical(&self) -> bool {
        self.runs
            .iter()
            .all(|r| matches!(r.outcome, Match::Identical { .. }))
    }

    /// Whether the means follow the paper's order (every column run).
    pub fn order_holds(&self) -> Option<bool> {
        let v: Option<Vec<f64>> = self.order.iter().map(|(_, m)| *m).collect();
        let v = v?;
        Some(v.windows(2).all(|w| w[0] > w[1]))
    }

    /// One short line for a status table: the bit-for-bit check and the paper's order.
    pub fn verdict(&self) -> String {
        let same = self
            .runs
            .iter()
            .filter(|r| matches!(r.outcome, Match::Identical { .. }))
            .count();
        let mut v = format!(
            "{same} of {} runs equal `{}`'s bit for bit",
            self.runs.len(),
            self.reference
        );
        if !self.order.is_empty() {
            let names: Vec<&str> = self.order.iter().map(|(c, _)| c.as_str()).collect();
            let _ = write!(
                v,
                "; the paper's order {} {}",
                names.join(" > "),
                match self.order_holds() {
                    Some(true) => "holds",
                    Some(false) => "does not hold",
                    None => "cannot be checked yet",
                }
            );
        }
        v
    }

    /// The lines printed at the end of a run of the artefact.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let same = self
            .runs
            .iter()
            .filter(|r| matches!(r.outcome, Match::Identical { .. }))
            .count();
        if self.all_identical() {
            out.push(format!(
                "reproduced bit for bit: all {} runs match {}'s committed runs at every epoch run here (validation and training accuracy and loss)",
                self.runs.len(),
                self.reference
            ));
        } else {
            out.push(format!(
                "{same} of {} runs match {}'s committed runs bit for bit; the others:",
                self.runs.len(),
                self.reference
            ));
            for r in &self.runs {
                match &r.outcome {
                    Match::Identical { .. } => {}
                    Match::Differs {
                        epoch,
                        field,
                        ours,
                        theirs,
                    } => out.push(format!(
                        "  {}: DIFFERS at epoch {epoch}: {field} {ours} here, {theirs} committed",
                        r.run
                    )),
                    Match::Missing(why) => out.push(format!("  {}: not compared ({why})", r.run)),
                }
            }
        }
        if !self.order.is_empty() {
            let names: Vec<&str> = self.order.iter().map(|(c, _)| c.as_str()).collect();
            let values: Vec<String> = self
                .order
                .iter()
                .map(|(c, m)| match m {
                    Some(m) => format!("{c} {m:.2}"),
                    None => format!("{c} not run"),
                })
                .collect();
            let verdict = match self.order_holds() {
                Some(true) => "holds",
                Some(false) => "does NOT hold",
                None => "cannot be checked yet",
            };
            out.push(format!(
                "the paper's ordering at equal budget, {}: {verdict} here ({})",
                names.join(" > "),
                values.join(", ")
            ));
            if let [_, (a, Some(x)), (b, Some(y)), ..] = self.order.as_slice() {
                out.push(format!(
                    "{a}'s margin over {b}: {:+.2} points at this budget",
                    x - y
                ));
            }
        }
        out
    }

    /// The README section.
    pub fn markdown(&self) -> String {
        let mut md = format!("## Checked against `{}`\n\n", self.reference);
        for l in self.lines() {
            let _ = writeln!(md, "- {}", l.trim_start());
        }
        let _ = writeln!(
            md,
            "\nFor context, not as this budget's gap: where `{}`'s committed runs end after {} epochs, against the paper.\n\n| row | method | {} epochs | paper |\n|---|---|---|---|",
            self.reference, self.reference_epochs, self.reference_epochs
        );
        for (row, col, ours, paper) in &self.context {
            let _ = writeln!(md, "| {row} | {col} | {ours} | {paper} |");
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: u64, acc: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            val_accuracy: acc,
            val_loss: 1.0 / acc,
            train_accuracy: acc,
            train_loss: 0.5,
            ..Default::default()
        }
    }

    #[test]
    fn rows_must_match_to_the_last_bit() {
        let theirs = vec![row(1, 0.5), row(2, 0.6), row(3, 0.7)];
        assert_eq!(
            compare(&theirs[..2], &theirs),
            Match::Identical { epochs: 2 }
        );
        let mut ours = theirs[..2].to_vec();
        ours[1].val_loss = f64::from_bits(ours[1].val_loss.to_bits() + 1);
        match compare(&ours, &theirs) {
            Match::Differs {
                epoch: 2,
                field: "val_loss",
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(compare(&[], &theirs), Match::Missing(_)));
        assert!(matches!(compare(&theirs, &theirs[..1]), Match::Missing(_)));
    }

    #[test]
    fn the_order_is_checked_best_first() {
        let mut r = Report {
            reference: "t".into(),
            runs: vec![],
            order: vec![
                ("SGD".into(), Some(94.0)),
                ("RBD".into(), Some(66.0)),
                ("FPD".into(), Some(50.0)),
            ],
            context: vec![],
            reference_epochs: 100,
        };
        assert_eq!(r.order_holds(), Some(true));
        assert!(r
            .lines()
            .iter()
            .any(|l| l.contains("RBD's margin over FPD: +16.00")));
        r.runs = vec![
            RunMatch {
                run: "a seed 0".into(),
                outcome: Match::Identical { epochs: 1 },
            },
            RunMatch {
                run: "b seed 0".into(),
                outcome: Match::Missing("not run here yet".into()),
            },
        ];
        assert_eq!(
            r.verdict(),
            "1 of 2 runs equal `t`'s bit for bit; the paper's order SGD > RBD > FPD holds"
        );
        r.order[2].1 = Some(70.0);
        assert_eq!(r.order_holds(), Some(false));
        assert!(r.verdict().ends_with("SGD > RBD > FPD does not hold"));
        r.order[2].1 = None;
        assert_eq!(r.order_holds(), None);
    }
}
