//! The records a sweep and a search leave behind: a run's `diverged.json` (read by
//! `state_of` beside the run's `config.json`) and `rbd tune`'s result file (read by
//! `tuned_rate` when a manifest says `lr = "tune"`). Both are generated as rbd writes
//! them, non-finite losses included (a diverged run has one by definition).

use super::config::random_config;
use super::{keep_valid, Case, Target, Verdict};
use crate::json;
use crate::rng::Rng;
use rbd::reproduce::manifest::{tuned_rate, tuned_rate_file};
use rbd::reproduce::runner::{state_of, DivergedRecord, RunState};
use rbd::reproduce::tune::{Trial, TuneResult};
use rbd::train::RunConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// `state_of` on a run directory holding a generated `diverged.json`.
pub struct Diverged;

/// `tuned_rate` on a generated `results/tune/*.json`.
pub struct TuneRecord;

fn loss(rng: &mut Rng) -> f64 {
    *rng.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e30, 3.5])
}

/// The configuration a case was generated for, kept with the case.
fn config_of(case: &Case) -> Option<RunConfig> {
    serde_json::from_slice(case.expected("config")?).ok()
}

impl Target for Diverged {
    fn name(&self) -> &'static str {
        "diverged"
    }

    fn about(&self) -> &'static str {
        "a run's diverged.json, beside its config.json (runner::state_of)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let cfg = random_config(rng);
        let record = DivergedRecord {
            epoch: rng.range(1, 100) as u64,
            step: rng.below(200_000) as u64,
            loss: loss(rng),
            parameter: rng.chance(1, 4).then(|| "fc1.weight[3] = NaN".to_string()),
        };
        let text = serde_json::to_string_pretty(&record).expect("a record serialises");
        let config = serde_json::to_string_pretty(&cfg).expect("a configuration serialises");
        let valid = keep_valid(rng);
        let (bytes, what) = if valid {
            (text.clone().into_bytes(), "valid".to_string())
        } else {
            json::mutate_text(rng, &text, true)
        };
        Case {
            files: vec![
                ("config.json".into(), config.clone().into_bytes()),
                ("diverged.json".into(), bytes),
            ],
            named: "diverged.json".into(),
            what,
            valid,
            expect: vec![
                ("config".into(), config.into_bytes()),
                ("record".into(), text.into_bytes()),
            ],
        }
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        let Some(cfg) = config_of(case) else {
            return Verdict::Wrong("the generated configuration does not read back".into());
        };
        Verdict::of(state_of(&cfg, dir), |state| match state {
            RunState::Diverged(d) => {
                let written = serde_json::to_string_pretty(&d).unwrap_or_default();
                let record = case.expected("record").unwrap_or_default();
                if case.valid && written.as_bytes() != record {
                    Verdict::Wrong(format!("a valid record read back as {written}"))
                } else {
                    Verdict::Accepted
                }
            }
            other => Verdict::Wrong(format!("a run with diverged.json is {other:?}")),
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        16 * input + (64 << 10)
    }
}

impl Target for TuneRecord {
    fn name(&self) -> &'static str {
        "tune"
    }

    fn about(&self) -> &'static str {
        "rbd tune's result file, results/tune/*.json (manifest::tuned_rate)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let cfg = random_config(rng);
        let trials: Vec<Trial> = (0..rng.range(1, 6))
            .map(|i| {
                let diverged = rng.chance(1, 3);
                Trial {
                    exponent: -(i as i32) * 2,
                    held_out_loss: if diverged {
                        f64::INFINITY
                    } else {
                        rng.f64().abs()
                    },
                    held_out_accuracy: if diverged {
                        0.0
                    } else {
                        rng.f64().abs().min(1.0)
                    },
                    diverged_at_epoch: diverged.then_some(1),
                }
            })
            .collect();
        let best = -(rng.below(10) as i32);
        let result = TuneResult {
            best_lr: 2f64.powi(best),
            best_exponent: best,
            published: BTreeMap::from([("paper (Table 4)".to_string(), -3)]),
            epochs: rng.range(1, 100) as u64,
            trials,
            protocol: "Table 4's protocol".into(),
            // Searches written before the command was recorded have none.
            command: (rng.below(2) == 0).then(|| "rbd tune --model fc".to_string()),
        };
        let text = serde_json::to_string_pretty(&result).expect("a result serialises");
        let config = serde_json::to_string(&cfg).expect("a configuration serialises");
        let file = tuned_rate_file(Path::new("results"), &cfg)
            .display()
            .to_string();
        let valid = keep_valid(rng);
        let (bytes, what) = if valid {
            (text.into_bytes(), "valid".to_string())
        } else {
            json::mutate_text(rng, &text, true)
        };
        Case {
            files: vec![(file.clone(), bytes)],
            named: file,
            what,
            valid,
            expect: vec![
                ("config".into(), config.into_bytes()),
                ("best_lr".into(), result.best_lr.to_le_bytes().to_vec()),
            ],
        }
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        let Some(cfg) = config_of(case) else {
            return Verdict::Wrong("the generated configuration does not read back".into());
        };
        Verdict::of(tuned_rate(&dir.join("results"), &cfg), |lr| match lr {
            None => Verdict::Wrong("a tune file that exists read as none".into()),
            Some(lr) if !(lr.is_finite() && lr > 0.0) => {
                Verdict::Wrong(format!("accepted the rate {lr}"))
            }
            Some(lr) => {
                let best = case
                    .expected("best_lr")
                    .and_then(|b| b.try_into().ok())
                    .map(f64::from_le_bytes);
                if case.valid && best != Some(lr) {
                    Verdict::Wrong(format!("a valid file read back the rate {lr}"))
                } else {
                    Verdict::Accepted
                }
            }
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        16 * input + (64 << 10)
    }
}
