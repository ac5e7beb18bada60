//! Per-step medians of the profiler's entries, as the report's tables.

use crate::measure::Timing;
use crate::train::oracle::phase::{BACKWARD, FORWARD};
use rbd_engine::profile::{Entry, Kind};
use serde::Serialize;
use std::collections::HashMap;

/// The scope the driver opens around each step.
pub const STEP: &str = "step";

/// One phase of the step (a scope directly inside the step, or the optimiser's update).
#[derive(Serialize, Debug)]
pub struct PhaseRow {
    pub phase: String,
    pub median_ms: f64,
    /// Median share of the profiled step.
    pub share: f64,
    /// Times per step the phase ran (NES evaluates several batches).
    pub calls_per_step: f64,
}

/// Forward and backward time of one layer (its scope in the model's forward pass and
/// the backward rules of the ops recorded inside it).
#[derive(Serialize, Debug)]
pub struct LayerRow {
    pub layer: String,
    pub forward_ms: f64,
    pub backward_ms: f64,
}

/// One op at one place of the scope tree.
#[derive(Serialize, Debug)]
pub struct OpRow {
    /// `step/forward/conv2d_1/conv2d`.
    pub path: String,
    pub op: String,
    pub calls_per_step: f64,
    pub median_ms: f64,
    pub share: f64,
}

/// One op summed over every place it runs.
#[derive(Serialize, Debug)]
pub struct OpTotalRow {
    pub op: String,
    pub calls_per_step: f64,
    pub median_ms: f64,
    pub share: f64,
}

/// Per-step medians of the profiled steps.
#[derive(Serialize, Debug)]
pub struct Breakdown {
    pub profiled_step_ms: Timing,
    pub phases: Vec<PhaseRow>,
    pub layers: Vec<LayerRow>,
    pub op_totals: Vec<OpTotalRow>,
    pub ops: Vec<OpRow>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Per-key values over the steps (0 where a step lacks the key), keys in first-seen order.
struct Series {
    keys: Vec<String>,
    values: HashMap<String, Vec<f64>>,
    steps: usize,
}

impl Series {
    fn new(steps: usize) -> Self {
        Series {
            keys: Vec::new(),
            values: HashMap::new(),
            steps,
        }
    }
    fn add(&mut self, step: usize, key: String, v: f64) {
        let slot = self.values.entry(key.clone()).or_insert_with(|| {
            self.keys.push(key);
            vec![0.0; self.steps]
        });
        slot[step] += v;
    }
    fn median(&self, key: &str) -> f64 {
        self.values
            .get(key)
            .map(|v| median(v.clone()))
            .unwrap_or(0.0)
    }
}

/// Backward rules of ops recorded outside any layer run in a bare `NAME.backward` scope.
fn is_layer(e: &Entry) -> bool {
    !e.name.ends_with(".backward")
}

fn ms(e: &Entry) -> f64 {
    e.seconds * 1e3
}

/// The breakdown of `steps`, each the entries of one profiled step.
pub fn breakdown(steps: &[Vec<Entry>]) -> Breakdown {
    let n = steps.len();
    let (mut phase, mut phase_calls) = (Series::new(n), Series::new(n));
    let (mut fwd, mut bwd) = (Series::new(n), Series::new(n));
    let (mut op, mut op_calls) = (Series::new(n), Series::new(n));
    let (mut total, mut total_calls) = (Series::new(n), Series::new(n));
    let mut step_ms = Vec::with_capacity(n);
    for (i, entries) in steps.iter().enumerate() {
        let step = entries
            .iter()
            .find(|e| e.kind == Kind::Scope && e.scopes.is_empty() && e.name == STEP)
            .map(ms)
            .unwrap_or(0.0);
        step_ms.push(step);
        let mut inside = 0.0;
        for e in entries {
            match (e.kind, e.scopes.as_slice()) {
                (Kind::Scope, [s]) if s == STEP => {
                    phase.add(i, e.name.clone(), ms(e));
                    phase_calls.add(i, e.name.clone(), e.calls as f64);
                    inside += ms(e);
                }
                (Kind::Scope, [s, p]) if s == STEP && p == FORWARD => {
                    fwd.add(i, e.name.clone(), ms(e))
                }
                (Kind::Scope, [s, p]) if s == STEP && p == BACKWARD && is_layer(e) => {
                    bwd.add(i, e.name.clone(), ms(e))
                }
                _ => {}
            }
            if e.kind == Kind::Op {
                op.add(i, e.path(), ms(e));
                op_calls.add(i, e.path(), e.calls as f64);
                total.add(i, e.name.clone(), ms(e));
                total_calls.add(i, e.name.clone(), e.calls as f64);
            }
        }
        // What the optimiser does outside the oracle's phases: its own update.
        phase.add(i, UPDATE.into(), step - inside);
        phase_calls.add(i, UPDATE.into(), 1.0);
        let layers: f64 = entries
            .iter()
            .filter(|e| e.kind == Kind::Scope && e.scopes == [STEP, FORWARD])
            .map(ms)
            .sum();
        let forward: f64 = entries
            .iter()
            .filter(|e| e.kind == Kind::Scope && e.scopes == [STEP] && e.name == FORWARD)
            .map(ms)
            .sum();
        fwd.add(i, OUTSIDE_LAYERS.into(), forward - layers);
        let layers: f64 = entries
            .iter()
            .filter(|e| e.kind == Kind::Scope && e.scopes == [STEP, BACKWARD] && is_layer(e))
            .map(ms)
            .sum();
        let backward: f64 = entries
            .iter()
            .filter(|e| e.kind == Kind::Scope && e.scopes == [STEP] && e.name == BACKWARD)
            .map(ms)
            .sum();
        bwd.add(i, OUTSIDE_LAYERS.into(), backward - layers);
    }
    let step_median = median(step_ms.clone());
    let share = |v: f64| {
        if step_median > 0.0 {
            v / step_median
        } else {
            0.0
        }
    };
    let phases = phase
        .keys
        .iter()
        .map(|k| PhaseRow {
            phase: k.clone(),
            median_ms: phase.median(k),
            share: share(phase.median(k)),
            calls_per_step: phase_calls.median(k),
        })
        .collect();
    let mut names: Vec<String> = fwd.keys.clone();
    for k in &bwd.keys {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    // "(outside layers)" last.
    names.sort_by_key(|k| k == OUTSIDE_LAYERS);
    let layers = names
        .iter()
        .map(|k| LayerRow {
            layer: k.clone(),
            forward_ms: fwd.median(k),
            backward_ms: bwd.median(k),
        })
        .collect();
    let mut ops: Vec<OpRow> = op
        .keys
        .iter()
        .map(|k| OpRow {
            path: k.clone(),
            op: k.rsplit('/').next().unwrap_or(k).to_string(),
            calls_per_step: op_calls.median(k),
            median_ms: op.median(k),
            share: share(op.median(k)),
        })
        .collect();
    ops.sort_by(|a, b| b.median_ms.total_cmp(&a.median_ms));
    let mut op_totals: Vec<OpTotalRow> = total
        .keys
        .iter()
        .map(|k| OpTotalRow {
            op: k.clone(),
            calls_per_step: total_calls.median(k),
            median_ms: total.median(k),
            share: share(total.median(k)),
        })
        .collect();
    op_totals.sort_by(|a, b| b.median_ms.total_cmp(&a.median_ms));
    Breakdown {
        profiled_step_ms: Timing::of(step_ms),
        phases,
        layers,
        op_totals,
        ops,
    }
}

/// The phase row of the optimiser's own work.
pub const UPDATE: &str = "update (optimiser)";
/// Time of a pass not inside any layer scope.
pub const OUTSIDE_LAYERS: &str = "(outside layers)";

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scopes: &[&str], name: &str, kind: Kind, ms: f64) -> Entry {
        Entry {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            name: name.into(),
            kind,
            calls: 1,
            seconds: ms / 1e3,
        }
    }

    fn step(scale: f64) -> Vec<Entry> {
        vec![
            entry(&[STEP, FORWARD, "dense"], "matmul", Kind::Op, 2.0 * scale),
            entry(&[STEP, FORWARD], "dense", Kind::Scope, 3.0 * scale),
            entry(&[STEP], FORWARD, Kind::Scope, 4.0 * scale),
            entry(&[STEP, BACKWARD, "dense"], "matmul", Kind::Op, 5.0 * scale),
            entry(&[STEP, BACKWARD], "dense", Kind::Scope, 6.0 * scale),
            entry(&[STEP, BACKWARD], "add.backward", Kind::Scope, 0.25 * scale),
            entry(&[STEP], BACKWARD, Kind::Scope, 6.5 * scale),
            entry(&[STEP], "axpy", Kind::Op, 1.0 * scale),
            entry(&[], STEP, Kind::Scope, 12.0 * scale),
        ]
    }

    #[test]
    fn medians_phases_layers_and_the_update_remainder() {
        let b = breakdown(&[step(1.0), step(3.0), step(2.0)]);
        assert_eq!(b.profiled_step_ms.median_ms, 24.0);
        let phase = |name: &str| b.phases.iter().find(|p| p.phase == name).unwrap();
        assert_eq!(phase(FORWARD).median_ms, 8.0);
        // 24 − 8 − 13 = 3 ms outside the oracle's phases.
        assert!((phase(UPDATE).median_ms - 3.0).abs() < 1e-9);
        assert_eq!(b.layers[0].layer, "dense");
        assert_eq!(
            (b.layers[0].forward_ms, b.layers[0].backward_ms),
            (6.0, 12.0)
        );
        let outside = b.layers.last().unwrap();
        assert_eq!(outside.layer, OUTSIDE_LAYERS);
        assert!((outside.forward_ms - 2.0).abs() < 1e-9);
        // The bare `add.backward` is no layer: it counts as outside the layers.
        assert!((outside.backward_ms - 1.0).abs() < 1e-9);
        assert_eq!(b.layers.len(), 2);
        // matmul summed over both places, largest first.
        assert_eq!(b.op_totals[0].op, "matmul");
        assert!((b.op_totals[0].median_ms - 14.0).abs() < 1e-9);
        assert_eq!(b.op_totals[0].calls_per_step, 2.0);
        assert_eq!(b.ops[0].path, "step/backward/dense/matmul");
    }
}
