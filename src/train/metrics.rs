//! Metrics of a run: one row per epoch (`metrics.csv`, `metrics.jsonl`) and one row
//! every N steps (`steps.csv`, `steps.jsonl`), assembled here from the trainer's
//! running sums. JSON floats are written and read back exactly (serde_json's
//! `float_roundtrip`), so a resumed run rewrites earlier rows bit for bit; non-finite
//! ones as the words of [`crate::nonfinite`]. Nothing measured by the clock is in these
//! files, so identical runs write identical bytes: an epoch's training time is an
//! [`EpochTiming`] line of `provenance.jsonl`.

use super::oracle::EpochSums;
use super::run_dir::RunDir;
use crate::nonfinite::{self, text};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// mean, std, min, max of a sample.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Mean.
    #[serde(with = "nonfinite::float")]
    pub mean: f64,
    /// Standard deviation.
    #[serde(with = "nonfinite::float")]
    pub std: f64,
    /// Minimum.
    #[serde(with = "nonfinite::float")]
    pub min: f64,
    /// Maximum.
    #[serde(with = "nonfinite::float")]
    pub max: f64,
}

impl Summary {
    /// Summarises `xs` (None if empty).
    pub fn of(xs: &[f64]) -> Option<Summary> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Some(Summary {
            mean,
            std: var.sqrt(),
            min: xs.iter().cloned().fold(f64::INFINITY, f64::min),
            max: xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// One epoch's row.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Optimiser steps so far.
    pub step: u64,
    /// Optimiser steps (updates) this epoch ran (absent in rows written before it was
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updates: Option<u64>,
    /// Optimiser of this epoch.
    pub optimizer: String,
    /// Its learning rate.
    #[serde(with = "nonfinite::float")]
    pub lr: f64,
    /// Mean training loss (on the augmented batches, during the epoch).
    #[serde(with = "nonfinite::float")]
    pub train_loss: f64,
    /// Training accuracy, likewise.
    #[serde(with = "nonfinite::float")]
    pub train_accuracy: f64,
    /// Validation loss.
    #[serde(with = "nonfinite::float")]
    pub val_loss: f64,
    /// Validation accuracy.
    #[serde(with = "nonfinite::float")]
    pub val_accuracy: f64,
    /// Test loss, with --eval-test.
    #[serde(default, with = "nonfinite::option")]
    pub test_loss: Option<f64>,
    /// Test accuracy, with --eval-test.
    #[serde(default, with = "nonfinite::option")]
    pub test_accuracy: Option<f64>,
    /// Wall-clock seconds of training in this epoch (evaluation excluded): only in rows
    /// written before the time moved to `provenance.jsonl` ([`EpochTiming`]);
    /// [`with_timings`] fills it in from there.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nonfinite::option"
    )]
    pub seconds: Option<f64>,
    /// Training images per second, likewise.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nonfinite::option"
    )]
    pub images_per_second: Option<f64>,
    /// Gradient correlation of the whole vector, with --correlation.
    pub correlation: Option<Summary>,
    /// Per parameter tensor, with --correlation.
    pub correlation_per_tensor: Option<Vec<(String, Summary)>>,
    /// The released code's measure: the per-tensor cosines pooled over tensors and
    /// steps, with --correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_pooled: Option<Summary>,
    /// Communication of a distributed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<super::team::CommStats>,
}

const HEADER: &str = "epoch,step,updates,optimizer,lr,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,seconds,images_per_second,corr_mean,corr_std,corr_min,corr_max";

const COMM_HEADER: &str = "ranks,bytes_per_step,comm_seconds,compute_seconds";

fn opt(v: Option<f64>) -> String {
    v.map(text).unwrap_or_default()
}

impl EpochMetrics {
    fn csv(&self) -> String {
        let c = self.correlation;
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.epoch,
            self.step,
            opt(self.updates.map(|u| u as f64)),
            self.optimizer,
            text(self.lr),
            text(self.train_loss),
            text(self.train_accuracy),
            text(self.val_loss),
            text(self.val_accuracy),
            opt(self.test_loss),
            opt(self.test_accuracy),
            self.seconds.map(|s| format!("{s:.3}")).unwrap_or_default(),
            self.images_per_second
                .map(|s| format!("{s:.1}"))
                .unwrap_or_default(),
            opt(c.map(|c| c.mean)),
            opt(c.map(|c| c.std)),
            opt(c.map(|c| c.min)),
            opt(c.map(|c| c.max)),
        )
    }
}

/// Training loss and accuracy over the steps since the previous row.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Optimiser steps so far.
    pub step: u64,
    /// Fraction of the run's epochs done (the x axis of the curves).
    #[serde(with = "nonfinite::float")]
    pub epoch_progress: f64,
    /// Mean training loss over the window.
    #[serde(with = "nonfinite::float")]
    pub train_loss: f64,
    /// Training accuracy over the window.
    #[serde(with = "nonfinite::float")]
    pub train_accuracy: f64,
    /// Images in the window.
    pub images: u64,
}

const STEP_HEADER: &str = "epoch,step,epoch_progress,train_loss,train_accuracy,images";

impl StepMetrics {
    /// The row of a window of running sums.
    pub fn of(epoch: u64, step: u64, epoch_progress: f64, window: &EpochSums) -> Self {
        StepMetrics {
            epoch: epoch + 1,
            step,
            epoch_progress,
            train_loss: window.mean_loss(),
            train_accuracy: window.accuracy(),
            images: window.seen,
        }
    }

    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{}",
            self.epoch,
            self.step,
            text(self.epoch_progress),
            text(self.train_loss),
            text(self.train_accuracy),
            self.images
        )
    }
}

/// What an epoch's row is made of, besides the evaluation.
pub struct EpochInputs<'a> {
    /// Epoch index (0-based).
    pub epoch: u64,
    /// Steps so far.
    pub step: u64,
    /// Steps this epoch ran.
    pub updates: u64,
    /// The segment's optimiser and rate.
    pub optimizer: String,
    /// Its rate.
    pub lr: f64,
    /// Training sums of the epoch.
    pub sums: EpochSums,
    /// Training seconds.
    pub seconds: f64,
    /// Correlation samples (whole vector first, then per tensor).
    pub correlations: &'a [Vec<f64>],
    /// Parameter tensor names, in θ order.
    pub tensor_names: Vec<String>,
}

/// Validation (and test) loss and accuracy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Validation (loss, accuracy).
    pub val: (f64, f64),
    /// Test (loss, accuracy), if asked for.
    pub test: Option<(f64, f64)>,
}

impl EpochMetrics {
    /// Assembles an epoch's row.
    pub fn assemble(input: EpochInputs<'_>, eval: Evaluation) -> Self {
        let correlation = Summary::of(&input.correlations.iter().map(|c| c[0]).collect::<Vec<_>>());
        let correlation_per_tensor = correlation.map(|_| {
            input
                .tensor_names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let xs: Vec<f64> = input
                        .correlations
                        .iter()
                        .filter_map(|c| c.get(i + 1).copied())
                        .collect();
                    (name.clone(), Summary::of(&xs).unwrap_or_default())
                })
                .collect()
        });
        let pooled: Vec<f64> = input
            .correlations
            .iter()
            .flat_map(|c| c.iter().skip(1).copied())
            .collect();
        EpochMetrics {
            correlation_pooled: correlation.and(Summary::of(&pooled)),
            epoch: input.epoch + 1,
            step: input.step,
            updates: Some(input.updates),
            optimizer: input.optimizer,
            lr: input.lr,
            train_loss: input.sums.mean_loss(),
            train_accuracy: input.sums.accuracy(),
            val_loss: eval.val.0,
            val_accuracy: eval.val.1,
            test_loss: eval.test.map(|t| t.0),
            test_accuracy: eval.test.map(|t| t.1),
            seconds: None,
            images_per_second: None,
            correlation,
            correlation_per_tensor,
            comm: None,
        }
    }

    /// The one-line summary printed after an epoch (its time from `timing`, or from
    /// the row where an older binary recorded it there).
    pub fn line(&self, timing: Option<&EpochTiming>, epochs: u64) -> String {
        let seconds = timing.map(|t| t.seconds).or(self.seconds);
        let rate = timing
            .map(|t| t.images_per_second)
            .or(self.images_per_second);
        format!(
            "epoch {}/{epochs}{}: train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}%{}{}{}",
            self.epoch,
            self.updates
                .map(|u| format!(" ({u} updates)"))
                .unwrap_or_default(),
            self.train_loss,
            100.0 * self.train_accuracy,
            self.val_loss,
            100.0 * self.val_accuracy,
            match (self.test_loss, self.test_accuracy) {
                (Some(l), Some(a)) => format!(" | test loss {l:.4} acc {:.2}%", 100.0 * a),
                _ => String::new(),
            },
            match (seconds, rate) {
                (Some(s), Some(r)) => format!(" | {s:.1} s, {r:.0} img/s"),
                _ => String::new(),
            },
            self.correlation
                .map(|c| format!(" | corr {:.4}±{:.4}", c.mean, c.std))
                .unwrap_or_default()
        ) + &self
            .comm
            .map(|c| {
                let comm = timing.and_then(|t| t.comm_seconds).or(c.comm_seconds);
                let compute = timing.and_then(|t| t.compute_seconds).or(c.compute_seconds);
                format!(
                    " | {} ranks, {:.0} B/step sent{}",
                    c.ranks,
                    c.bytes_per_step,
                    match (comm, compute) {
                        (Some(m), Some(p)) => format!(", comm {m:.2} s, compute {p:.2} s"),
                        _ => String::new(),
                    }
                )
            })
            .unwrap_or_default()
    }
}

/// The clock's side of an epoch: one line of `provenance.jsonl` per epoch (the last
/// line of an epoch counts when a resumed run trained it again).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EpochTiming {
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Wall-clock seconds of training in the epoch (evaluation excluded).
    #[serde(with = "nonfinite::float")]
    pub seconds: f64,
    /// Training images per second.
    #[serde(with = "nonfinite::float")]
    pub images_per_second: f64,
    /// Seconds in the optimiser's collectives (distributed runs).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nonfinite::option"
    )]
    pub comm_seconds: Option<f64>,
    /// The rest of the training seconds (distributed runs).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nonfinite::option"
    )]
    pub compute_seconds: Option<f64>,
}

impl EpochTiming {
    /// The timing of the epoch `input` describes.
    pub fn of(input: &EpochInputs<'_>) -> Self {
        EpochTiming {
            epoch: input.epoch + 1,
            seconds: input.seconds,
            images_per_second: input.sums.seen as f64 / input.seconds.max(1e-9),
            comm_seconds: None,
            compute_seconds: None,
        }
    }
}

/// The rows of `dir`'s `metrics.jsonl`, each with its epoch's training time: the
/// row's own (older rows) or its line in `provenance.jsonl`.
pub fn read_epochs_timed(dir: &Path) -> Result<Vec<EpochMetrics>> {
    Ok(with_timings(
        read_epochs(dir)?,
        &super::trainer::timings(dir)?,
    ))
}

/// `rows` with the seconds of every row that lacks them taken from `timings` (by
/// epoch), as summaries want them.
pub fn with_timings(
    mut rows: Vec<EpochMetrics>,
    timings: &BTreeMap<u64, EpochTiming>,
) -> Vec<EpochMetrics> {
    for r in &mut rows {
        if let (None, Some(t)) = (r.seconds, timings.get(&r.epoch)) {
            r.seconds = Some(t.seconds);
            r.images_per_second = Some(t.images_per_second);
        }
    }
    rows
}

fn csv_text<T>(header: &str, rows: &[T], csv: impl Fn(&T) -> String) -> String {
    let mut text = String::from(header);
    text.push('\n');
    for r in rows {
        text.push_str(&csv(r));
        text.push('\n');
    }
    text
}

fn jsonl_text<T: Serialize>(rows: &[T]) -> Result<String> {
    let mut jsonl = String::new();
    for r in rows {
        jsonl.push_str(&serde_json::to_string(r)?);
        jsonl.push('\n');
    }
    Ok(jsonl)
}

/// `metrics.csv` for `rows`: the same columns as the JSON rows, derived from them.
pub fn metrics_csv(rows: &[EpochMetrics]) -> String {
    if rows.iter().any(|r| r.comm.is_some()) {
        // Distributed runs: communication columns at the end.
        let header = format!("{HEADER},{COMM_HEADER}");
        csv_text(&header, rows, |r| {
            let c = r.comm.unwrap_or_default();
            let secs = |s: Option<f64>| s.map(|s| format!("{s:.3}")).unwrap_or_default();
            format!(
                "{},{},{},{},{}",
                r.csv(),
                c.ranks,
                text(c.bytes_per_step),
                secs(c.comm_seconds),
                secs(c.compute_seconds)
            )
        })
    } else {
        csv_text(HEADER, rows, EpochMetrics::csv)
    }
}

/// `steps.csv` for `steps`.
pub fn steps_csv(steps: &[StepMetrics]) -> String {
    csv_text(STEP_HEADER, steps, StepMetrics::csv)
}

/// Rewrites the metric files with `rows` and `steps` (a resumed run never keeps rows
/// of the epochs or steps it repeats).
pub fn write_all(dir: &RunDir, rows: &[EpochMetrics], steps: &[StepMetrics]) -> Result<()> {
    dir.write("metrics.csv", metrics_csv(rows).as_bytes())?;
    dir.write("metrics.jsonl", jsonl_text(rows)?.as_bytes())?;
    dir.write("steps.csv", steps_csv(steps).as_bytes())?;
    dir.write("steps.jsonl", jsonl_text(steps)?.as_bytes())
}

fn read_rows<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<Vec<T>> {
    let Some(text) = super::record::text(dir, name)? else {
        return Ok(Vec::new());
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}: line {}", super::record::describe(dir, name), i + 1))
        })
        .collect()
}

/// Reads the metrics rows (`metrics.jsonl`) of a run directory, sealed or not.
pub fn read_epochs(dir: &Path) -> Result<Vec<EpochMetrics>> {
    read_rows(dir, "metrics.jsonl")
}

/// Reads the step rows (`steps.jsonl`) of a run directory, sealed or not.
pub fn read_steps(dir: &Path) -> Result<Vec<StepMetrics>> {
    read_rows(dir, "steps.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_correlation_averages_every_tensor_and_step() {
        // Two steps: whole-vector cosine first, then two tensors.
        let correlations = vec![vec![0.9, 0.1, 0.3], vec![0.7, 0.5, 0.7]];
        let row = EpochMetrics::assemble(
            EpochInputs {
                epoch: 0,
                step: 2,
                updates: 2,
                optimizer: "rbd".into(),
                lr: 1.0,
                sums: EpochSums::default(),
                seconds: 1.0,
                correlations: &correlations,
                tensor_names: vec!["a".into(), "b".into()],
            },
            Evaluation {
                val: (0.0, 0.0),
                test: None,
            },
        );
        assert!((row.correlation.unwrap().mean - 0.8).abs() < 1e-12);
        let pooled = row.correlation_pooled.unwrap();
        assert!((pooled.mean - 0.4).abs() < 1e-12, "{pooled:?}");
        assert_eq!((pooled.min, pooled.max), (0.1, 0.7));
        let per = row.correlation_per_tensor.unwrap();
        assert!((per[0].1.mean - 0.3).abs() < 1e-12 && (per[1].1.mean - 0.5).abs() < 1e-12);
    }

    #[test]
    fn rows_round_trip_bit_for_bit() {
        let row = EpochMetrics {
            epoch: 3,
            train_loss: 0.1 + 0.2,
            val_accuracy: 1.0 / 3.0,
            seconds: Some(12.345678901234567),
            ..EpochMetrics::default()
        };
        let text = serde_json::to_string(&row).unwrap();
        let back: EpochMetrics = serde_json::from_str(&text).unwrap();
        assert_eq!(back.train_loss.to_bits(), row.train_loss.to_bits());
        assert_eq!(
            back.seconds.unwrap().to_bits(),
            row.seconds.unwrap().to_bits()
        );
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    #[test]
    fn non_finite_rows_round_trip_through_both_files() {
        let row = EpochMetrics {
            epoch: 1,
            train_loss: 2.5,
            val_loss: f64::INFINITY,
            test_loss: Some(f64::NAN),
            correlation: Some(Summary {
                mean: f64::NEG_INFINITY,
                ..Summary::default()
            }),
            ..EpochMetrics::default()
        };
        let text = serde_json::to_string(&row).unwrap();
        assert!(text.contains(r#""val_loss":"Infinity""#), "{text}");
        assert!(!text.contains("seconds"), "{text}");
        let back: EpochMetrics = serde_json::from_str(&text).unwrap();
        assert_eq!(back.val_loss, f64::INFINITY);
        assert!(back.test_loss.unwrap().is_nan());
        assert_eq!(back.correlation.unwrap().mean, f64::NEG_INFINITY);
        assert!(row.csv().contains(",Infinity,"), "{}", row.csv());
        // A row an older binary wrote for a diverged evaluation.
        let old = r#"{"epoch":1,"step":4,"optimizer":"nes","lr":0.5,"train_loss":2.3,"train_accuracy":0.1,"val_loss":null,"val_accuracy":0.1,"test_loss":null,"test_accuracy":null,"seconds":1.5,"images_per_second":20.0,"correlation":null,"correlation_per_tensor":null}"#;
        let back: EpochMetrics = serde_json::from_str(old).unwrap();
        assert!(back.val_loss.is_nan() && back.test_loss.is_none());
        assert_eq!(back.seconds, Some(1.5));
    }
}
