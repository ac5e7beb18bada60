//! `rbd tune`: Table 4's protocol. Train on a random 75% of the training data, score
//! each rate by the loss on the other 25% after the budget, over powers of two in
//! [2^-19, 2^7]. Instead of training all 27 rates, a coarse walk in steps of 2^2 from
//! the published rate (or 2^0) goes downhill until the held-out loss rises or the
//! training diverges (a diverged rate stops at once), then the two odd neighbours of
//! the best are tried.

use super::manifest::tune_file;
use super::runner::{run_one, RunEnd};
use crate::lr::{format_lr, preset_exponent};
use crate::signals::StopFlag;
use crate::train::config::RunConfig;
use crate::train::kinds::PresetSource;
use crate::train::metrics::read_epochs;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The rates Table 4's protocol searches: 2^-19 … 2^7.
pub const RANGE: (i32, i32) = (-19, 7);

/// One rate's outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Trial {
    /// The rate's exponent.
    pub exponent: i32,
    /// Held-out loss after the budget (infinite when it diverged).
    #[serde(with = "crate::nonfinite::float")]
    pub held_out_loss: f64,
    /// Held-out accuracy after the budget.
    #[serde(with = "crate::nonfinite::float")]
    pub held_out_accuracy: f64,
    /// The epoch at which it diverged.
    pub diverged_at_epoch: Option<u64>,
}

/// What `rbd tune` writes (results/tune/MODEL-DATASET-OPTIMIZER-dD.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TuneResult {
    /// The chosen rate.
    #[serde(with = "crate::nonfinite::float")]
    pub best_lr: f64,
    /// Its exponent.
    pub best_exponent: i32,
    /// The published exponents (Table 4; released configuration) where they exist.
    pub published: BTreeMap<String, i32>,
    /// Epochs per trial.
    pub epochs: u64,
    /// Every rate tried, by exponent.
    pub trials: Vec<Trial>,
    /// The protocol, in words.
    pub protocol: String,
    /// The command that runs this search again (absent in searches written before it
    /// was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// A search: the configuration to tune (its rate is replaced) and its budget.
pub struct TuneRequest {
    /// Model, data, optimiser, d, ... with `tuning_split` set by the search.
    pub base: RunConfig,
    /// Where results go.
    pub results: PathBuf,
}

fn trial_dir(results: &Path, base: &RunConfig, e: i32) -> PathBuf {
    let file = tune_file(results, base);
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    results
        .join("tune")
        .join(stem)
        .join(format!("{}{e}", crate::train::record::LR_POWER))
}

/// Trains (or reads back) the trial at 2^`e`.
fn trial(req: &TuneRequest, e: i32, stop: &StopFlag) -> Result<Option<Trial>> {
    let mut cfg = req.base.clone();
    cfg.options.tuning_split = true;
    cfg.schedule[0].lr = 2f64.powi(e);
    cfg.schedule[0].lr_source = "rbd tune trial".into();
    let dir = trial_dir(&req.results, &req.base, e);
    let prefix = format!("[tune {} lr 2^{e}]", cfg.schedule[0].optimizer);
    match run_one(&cfg, &dir, &prefix, stop)? {
        RunEnd::Interrupted(_) => Ok(None),
        RunEnd::Diverged(d) => Ok(Some(Trial {
            exponent: e,
            held_out_loss: f64::INFINITY,
            held_out_accuracy: 0.0,
            diverged_at_epoch: Some(d.epoch),
        })),
        RunEnd::Done => {
            let rows = read_epochs(&dir)?;
            let last = rows
                .get(cfg.epochs as usize - 1)
                .or(rows.last())
                .ok_or_else(|| anyhow::anyhow!("{}: no metrics", dir.display()))?;
            let loss = if last.val_loss.is_finite() {
                last.val_loss
            } else {
                f64::INFINITY
            };
            Ok(Some(Trial {
                exponent: e,
                held_out_loss: loss,
                held_out_accuracy: last.val_accuracy,
                diverged_at_epoch: None,
            }))
        }
    }
}

/// Runs the search; `None` when a stop was requested (trials done so far are kept on
/// disk and reused next time).
pub fn tune(req: &TuneRequest, stop: &StopFlag) -> Result<Option<TuneResult>> {
    if req.base.schedule.len() != 1 {
        bail!("tune one optimizer at a time, not a schedule");
    }
    let seg = &req.base.schedule[0];
    let mut published = BTreeMap::new();
    for source in [PresetSource::Paper, PresetSource::Released] {
        if let Some((e, label)) = preset_exponent(
            req.base.model,
            req.base.dataset.preset_key(),
            seg.optimizer,
            req.base.settings.directions.distribution,
            source,
        ) {
            if !label.starts_with("no published") {
                published.insert(label.to_string(), e);
            }
        }
    }
    let start = published
        .values()
        .next()
        .copied()
        .unwrap_or(0)
        .clamp(RANGE.0, RANGE.1);
    let mut trials: BTreeMap<i32, Trial> = BTreeMap::new();
    let run = |e: i32, trials: &mut BTreeMap<i32, Trial>| -> Result<bool> {
        if trials.contains_key(&e) || !(RANGE.0..=RANGE.1).contains(&e) {
            return Ok(true);
        }
        match trial(req, e, stop)? {
            Some(t) => {
                println!(
                    "  2^{e}: held-out loss {}{}",
                    crate::nonfinite::text(t.held_out_loss),
                    t.diverged_at_epoch
                        .map(|d| format!(" (diverged at epoch {d})"))
                        .unwrap_or_default()
                );
                trials.insert(e, t);
                Ok(true)
            }
            None => Ok(false),
        }
    };
    // Coarse: the start and its neighbours two powers away, then downhill.
    for e in [start, start - 2, start + 2] {
        if !run(e, &mut trials)? {
            return Ok(None);
        }
    }
    loop {
        let current = best(&trials);
        let next = [current - 2, current + 2]
            .into_iter()
            .find(|e| !trials.contains_key(e) && (RANGE.0..=RANGE.1).contains(e));
        let Some(e) = next else { break };
        if !run(e, &mut trials)? {
            return Ok(None);
        }
        if best(&trials) == current {
            // The neighbour was worse: check the other side once, then stop.
            let other = if e < current {
                current + 2
            } else {
                current - 2
            };
            if !run(other, &mut trials)? {
                return Ok(None);
            }
            if best(&trials) == current {
                break;
            }
        }
    }
    // Fine: the odd neighbours of the best.
    let b = best(&trials);
    for e in [b - 1, b + 1] {
        if !run(e, &mut trials)? {
            return Ok(None);
        }
    }
    let b = best(&trials);
    if trials[&b].held_out_loss.is_infinite() {
        bail!(
            "every rate tried diverged: {:?}",
            trials.keys().collect::<Vec<_>>()
        );
    }
    let result = TuneResult {
        best_lr: 2f64.powi(b),
        best_exponent: b,
        published,
        epochs: req.base.epochs,
        trials: trials.into_values().collect(),
        protocol: format!(
            "Table 4's protocol: train on a random 75% of the training images (after the {}-image validation hold-out), score by the loss on the other 25% after {} epochs; powers of two in [2^{}, 2^{}], coarse steps of 2^2 downhill from the published rate, then the odd neighbours of the best",
            req.base.data.val_size, req.base.epochs, RANGE.0, RANGE.1
        ),
        command: Some(super::manifest::tune_command(
            &req.base,
            &req.results,
            &req.base.data_dir,
        )),
    };
    write(req, &result)?;
    Ok(Some(result))
}

fn best(trials: &BTreeMap<i32, Trial>) -> i32 {
    trials
        .values()
        .min_by(|a, b| a.held_out_loss.total_cmp(&b.held_out_loss))
        .map(|t| t.exponent)
        .unwrap_or(0)
}

fn write(req: &TuneRequest, r: &TuneResult) -> Result<()> {
    let file = tune_file(&req.results, &req.base);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::train::run_dir::write_atomic(&file, serde_json::to_string_pretty(r)?.as_bytes())?;
    let dir = req.results.join("tune");
    if let Some(md) = readme(&dir)? {
        crate::train::run_dir::write_atomic(&dir.join(README), md.as_bytes())?;
    }
    Ok(())
}

/// The report of every search in a tune folder, generated from the searches' files.
pub const README: &str = "README.md";

/// `results/tune/README.md`: every search of `dir` (its `NAME.json`, in name order)
/// with its chosen rate, the published ones and each trial; `None` without searches.
/// Written by `rbd tune` and checked by `rbd reproduce all --check` (one report in
/// place of one file per search).
pub fn readme(dir: &Path) -> Result<Option<String>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => return Ok(None),
    };
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let mut md = format!(
        "# Learning-rate searches by `rbd tune` (Table 4's protocol)\n\n{} searches, generated from each search's `NAME.json` by `rbd tune` and `rbd reproduce all --summarize`; a search's trial runs are in `NAME/{}`.\n",
        files.len(),
        crate::train::pack::PACK
    );
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let r: TuneResult = serde_json::from_str(&text)
            .with_context(|| format!("{}: not an rbd tune result", file.display()))?;
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = write!(
            md,
            "\n## {name}\n\n[`{name}.json`]({name}.json){}. {}.\n\nChosen: **2^{}** ({}).",
            r.command
                .as_ref()
                .map(|c| format!(", made by `{c}`"))
                .unwrap_or_default(),
            r.protocol,
            r.best_exponent,
            format_lr(r.best_lr)
        );
        if r.published.is_empty() {
            md.push_str(" No published rate to compare with.\n");
        } else {
            for (source, e) in &r.published {
                let verdict = if *e == r.best_exponent {
                    "confirmed"
                } else {
                    "not confirmed"
                };
                let _ = write!(md, " Published {source}: 2^{e}, {verdict}.");
            }
            md.push('\n');
        }
        md.push_str("\n| rate | held-out loss | held-out accuracy | note |\n|---|---|---|---|\n");
        for t in &r.trials {
            let _ = writeln!(
                md,
                "| 2^{} | {} | {:.2}% | {} |",
                t.exponent,
                if t.held_out_loss.is_finite() {
                    format!("{:.4}", t.held_out_loss)
                } else {
                    "∞".into()
                },
                100.0 * t.held_out_accuracy,
                t.diverged_at_epoch
                    .map(|e| format!("diverged at epoch {e}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(Some(md))
}
