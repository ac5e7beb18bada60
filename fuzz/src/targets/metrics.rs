//! A run's metric rows: `metrics.jsonl` (one row per epoch) and `steps.jsonl` (one row
//! every N steps), written as rbd writes them (one `serde_json` line per row, training
//! values that may be non-finite), then mutated line by line or structure-aware inside
//! a row. The readers are `read_epochs` and `read_steps`; a valid file reads back the
//! rows that were written.

use super::{keep_valid, Case, Target, Verdict};
use crate::json::Json;
use crate::mutate;
use crate::rng::Rng;
use rbd::train::metrics::{read_epochs, read_steps, EpochMetrics, StepMetrics, Summary};
use rbd::train::team::CommStats;
use std::path::Path;

/// `read_epochs` / `read_steps` on a generated file.
pub struct MetricsJsonl;

/// A training value: mostly finite, now and then what a diverging run records.
fn value(rng: &mut Rng) -> f64 {
    if rng.chance(1, 30) {
        *rng.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY])
    } else {
        rng.f64().abs()
    }
}

fn summary(rng: &mut Rng) -> Summary {
    Summary {
        mean: rng.f64(),
        std: rng.f64().abs(),
        min: -rng.f64().abs(),
        max: rng.f64().abs(),
    }
}

fn epoch_row(rng: &mut Rng, epoch: u64) -> EpochMetrics {
    let corr = rng.chance(1, 3);
    EpochMetrics {
        epoch,
        step: epoch * 1875,
        updates: rng.chance(3, 4).then_some(1875),
        optimizer: rng.pick(&["rbd", "sgd", "nes"]).to_string(),
        lr: 2f64.powi(-(rng.below(12) as i32)),
        train_loss: value(rng),
        train_accuracy: rng.f64().abs().min(1.0),
        val_loss: value(rng),
        val_accuracy: rng.f64().abs().min(1.0),
        test_loss: rng.chance(1, 3).then(|| value(rng)),
        test_accuracy: rng.chance(1, 3).then(|| rng.f64().abs().min(1.0)),
        seconds: rng.chance(1, 2).then(|| rng.f64().abs()),
        images_per_second: rng.chance(1, 2).then(|| rng.f64().abs()),
        correlation: corr.then(|| summary(rng)),
        correlation_per_tensor: corr.then(|| vec![("fc1.weight".into(), summary(rng))]),
        correlation_pooled: corr.then(|| summary(rng)),
        comm: rng.chance(1, 5).then(|| CommStats {
            ranks: 2,
            bytes_per_step: rng.f64().abs(),
            comm_seconds: rng.chance(1, 2).then(|| rng.f64().abs()),
            compute_seconds: rng.chance(1, 2).then(|| rng.f64().abs()),
        }),
    }
}

fn step_row(rng: &mut Rng, i: u64) -> StepMetrics {
    StepMetrics {
        epoch: 1 + i / 10,
        step: 100 * (i + 1),
        epoch_progress: (i + 1) as f64 / 10.0,
        train_loss: value(rng),
        train_accuracy: rng.f64().abs().min(1.0),
        images: 3200,
    }
}

/// Line edits of a JSON Lines file: a row repeated, dropped, cut, or mutated inside.
pub(super) fn mutate_lines(rng: &mut Rng, text: &str) -> (Vec<u8>, String) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() || rng.chance(1, 5) {
        let mut b = text.as_bytes().to_vec();
        let what = mutate::bytes(rng, &mut b);
        return (b, what);
    }
    let i = rng.below(lines.len());
    let what = match rng.below(8) {
        0 => {
            lines.insert(i, lines[i].clone());
            format!("repeat row {}", i + 1)
        }
        1 => {
            lines.remove(i);
            format!("drop row {}", i + 1)
        }
        2 => {
            let cut = rng.below(lines[i].len());
            lines[i].truncate(cut);
            format!("cut row {} at {cut}", i + 1)
        }
        3 => {
            lines.insert(
                i,
                rng.pick(&["{}", "[]", "null", "\u{feff}", "x"]).to_string(),
            );
            format!("insert a junk row before row {}", i + 1)
        }
        _ => {
            let mut row = Json::parse(&lines[i]);
            let what = row.mutate(rng);
            lines[i] = row.write(false);
            format!("row {}: {what}", i + 1)
        }
    };
    let sep = if rng.chance(1, 10) { "\r\n" } else { "\n" };
    (format!("{}{sep}", lines.join(sep)).into_bytes(), what)
}

impl Target for MetricsJsonl {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn about(&self) -> &'static str {
        "metrics.jsonl and steps.jsonl (read_epochs, read_steps)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let epochs = rng.chance(1, 2);
        let rows = rng.below(6) as u64;
        let text: String = (0..rows)
            .map(|i| {
                let line = if epochs {
                    serde_json::to_string(&epoch_row(rng, i + 1))
                } else {
                    serde_json::to_string(&step_row(rng, i))
                };
                line.expect("a row serialises") + "\n"
            })
            .collect();
        let name = if epochs {
            "metrics.jsonl"
        } else {
            "steps.jsonl"
        };
        if keep_valid(rng) {
            let mut case = Case::one(name, text.clone().into_bytes(), "valid".into(), true);
            case.expect.push(("rows".into(), text.into_bytes()));
            return case;
        }
        let (bytes, what) = mutate_lines(rng, &text);
        Case::one(name, bytes, what, false)
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        let rows = case.expected("rows").map(String::from_utf8_lossy);
        // A valid file reads back the rows that were written, as rbd would write them.
        let same = |written: String| match &rows {
            Some(r) if *r != written => Verdict::Wrong("a valid file read back other rows".into()),
            _ => Verdict::Accepted,
        };
        let lines = |texts: Vec<serde_json::Result<String>>| {
            texts
                .into_iter()
                .map(|t| t.map(|l| l + "\n"))
                .collect::<serde_json::Result<String>>()
                .unwrap_or_default()
        };
        if case.named == "metrics.jsonl" {
            Verdict::of(read_epochs(dir), |r| {
                same(lines(r.iter().map(serde_json::to_string).collect()))
            })
        } else {
            Verdict::of(read_steps(dir), |r| {
                same(lines(r.iter().map(serde_json::to_string).collect()))
            })
        }
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // The text, and rows of a few hundred bytes for lines of at least ~20.
        32 * input + (64 << 10)
    }
}
