//! `rbd bench rbd`'s phase table: where the cpu RBD step's time goes on the CIFAR-10
//! CNN. The gradient alone (an optimiser that only asks the oracle for it), the SGD
//! step, the RBD step, the Fastfood step and the packed-sign step are timed
//! interleaved, round by round (the order reversed every other round), so a change of
//! load hits them alike; then the step in the bases alone: project alone,
//! expand alone, the fused step under the plan in force with its phases (set-up, block
//! passes with the threads' busy time, coordinates, finish), and the fused step with
//! the expansion skipped (alpha = 0), and the same passes with a counter for values
//! (the kept blocks' memory traffic alone), and the step on a kept basis (FPD's fixed
//! one, read from memory instead of generated). The FPD step is interleaved with the
//! others. Printed, never asserted.

use crate::measure::step::{synthetic_batch, StepHarness};
use crate::train::optimizers::{self, SegmentOptimizer};
use anyhow::Result;
use rbd_engine::random_bases::DistributionKind;
use rbd_engine::{Device, Tensor};
use rbd_kernels::random_bases::{self as rb, CpuPlan, Stream};
use rbd_models::{Model, ModelKind};
use rbd_optim::{BasesKind, Optimizer, OptimizerKind, Oracle, Settings, StepInfo};
use serde::Serialize;
use std::time::Instant;

/// The table's figures, milliseconds (medians).
#[derive(Serialize, Clone, Debug)]
pub struct PhaseTable {
    pub d_total: usize,
    pub dims: usize,
    pub generator: String,
    pub plan: String,
    /// Interleaved whole steps: the gradient alone (forward + backward as the trainer's
    /// oracle computes it), SGD, RBD with Gaussian directions, RBD with Fastfood bases,
    /// RBD with packed signs.
    pub gradient_ms: f64,
    pub sgd_ms: f64,
    pub rbd_ms: f64,
    pub fastfood_ms: f64,
    /// RBD with packed-sign directions (the issue-25 target's step, interleaved too).
    pub rademacher_ms: f64,
    /// FPD with Gaussian directions: its fixed basis kept in memory (interleaved too).
    pub fpd_ms: f64,
    /// The step in the bases alone (kernels, no engine tensors).
    pub project_ms: f64,
    pub expand_ms: f64,
    pub fused_ms: f64,
    pub fused_no_expand_ms: f64,
    /// The generate-once step with counter bits for values: the kept blocks' memory
    /// traffic and the passes' bookkeeping without generating (0 under a two-pass plan).
    pub traffic_ms: f64,
    /// The step on a kept basis (FPD's: every entry read from memory), and its MB.
    pub kept_ms: f64,
    pub kept_mb: f64,
    pub setup_ms: f64,
    pub passes_ms: f64,
    pub passes: usize,
    pub busy_ms: f64,
    pub coords_ms: f64,
    pub finish_ms: f64,
}

/// Asks the oracle for the gradient and leaves θ where it is: a step's gradient time.
struct GradientOnly;

impl Optimizer for GradientOnly {
    fn step(
        &mut self,
        _step: u64,
        theta: &Tensor,
        oracle: &mut dyn Oracle,
    ) -> rbd_engine::Result<StepInfo> {
        std::hint::black_box(oracle.gradient(theta)?);
        Ok(StepInfo {
            theta: theta.clone(),
            correlation: None,
        })
    }
}

/// One row of the interleaved steps: what the harness runs.
enum Who {
    Gradient,
    Optimizer(OptimizerKind, Settings),
}

fn settings(dims: usize, bases: BasesKind, distribution: DistributionKind) -> Settings {
    let mut s = Settings::default();
    s.directions.dim = dims;
    s.directions.distribution = distribution;
    s.directions.bases = bases;
    s
}

/// The phase table at `dims` directions (cpu), `repeats` rounds after one warm-up.
pub fn measure(dims: usize, repeats: usize) -> Result<PhaseTable> {
    let device = Device::Cpu;
    let image = (3, 32, 32);
    let gaussian = DistributionKind::Gaussian;
    let who = [
        Who::Gradient,
        Who::Optimizer(OptimizerKind::Sgd, Settings::default()),
        Who::Optimizer(OptimizerKind::Rbd, settings(dims, BasesKind::Iid, gaussian)),
        Who::Optimizer(
            OptimizerKind::Rbd,
            settings(dims, BasesKind::Fastfood, gaussian),
        ),
        Who::Optimizer(
            OptimizerKind::Rbd,
            settings(dims, BasesKind::Iid, DistributionKind::Rademacher),
        ),
        Who::Optimizer(OptimizerKind::Fpd, settings(dims, BasesKind::Iid, gaussian)),
    ];
    let models: Vec<Box<dyn Model>> = who
        .iter()
        .map(|_| rbd_models::build(ModelKind::Cnn, image.0, image.1, image.2, &device))
        .collect::<Result<_, _>>()?;
    let d_total = models[0].layout().total;
    let images = synthetic_batch(32, image, 1);
    let mut harnesses = Vec::new();
    for (w, model) in who.iter().zip(&models) {
        let images = images.clone();
        let batches = Box::new(std::iter::repeat_with(move || images.clone()));
        let layout = model.layout();
        let harness = match w {
            Who::Gradient => StepHarness::new(
                model.as_ref(),
                &device,
                0,
                batches,
                Box::new(|_| Ok(Box::new(GradientOnly) as Box<dyn Optimizer>)),
            )?,
            Who::Optimizer(kind, s) => {
                let segment = SegmentOptimizer {
                    kind: *kind,
                    lr: 0.01,
                    settings: s,
                };
                StepHarness::new(
                    model.as_ref(),
                    &device,
                    0,
                    batches,
                    Box::new(move |theta| optimizers::single(&segment, 0, layout, theta)),
                )?
            }
        };
        harnesses.push(harness);
    }
    // Rounds alternate the order (gradient, SGD, RBD, Fastfood, packed signs, FPD, then
    // the reverse), so no step always follows the same one (what a step leaves in the
    // caches, the allocator and the thread pool is then shared out alike).
    let mut times = vec![Vec::new(); harnesses.len()];
    for round in 0..=repeats.max(1) {
        let mut order: Vec<usize> = (0..harnesses.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let s = Instant::now();
            harnesses[i].step()?;
            if round > 0 {
                times[i].push(s.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    for h in &mut harnesses {
        h.settle()?;
    }
    let step_ms: Vec<f64> = times.into_iter().map(median).collect();
    let plan = CpuPlan::current().plan;
    let stream = Stream::new(0);
    let k = rb::bench_cpu_phases(&stream, d_total, dims, &plan, repeats.max(5));
    let ms = |s: f64| s * 1e3;
    Ok(PhaseTable {
        d_total,
        dims,
        generator: stream.generator.name().into(),
        plan: plan.describe(),
        gradient_ms: step_ms[0],
        sgd_ms: step_ms[1],
        rbd_ms: step_ms[2],
        fastfood_ms: step_ms[3],
        rademacher_ms: step_ms[4],
        fpd_ms: step_ms[5],
        project_ms: ms(k.project_s),
        expand_ms: ms(k.expand_s),
        fused_ms: ms(k.step_s),
        fused_no_expand_ms: ms(k.no_expand_s),
        traffic_ms: k.traffic_s.map_or(0.0, ms),
        kept_ms: k.kept_s.map_or(0.0, ms),
        kept_mb: k.kept_bytes as f64 / 1e6,
        setup_ms: ms(k.phases.setup_s),
        passes_ms: ms(k.phases.passes_s),
        passes: k.phases.passes,
        busy_ms: ms(k.phases.busy_s),
        coords_ms: ms(k.phases.coords_s),
        finish_ms: ms(k.phases.finish_s),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

impl PhaseTable {
    /// Megabytes the generate-once step stores and reads back: every d·D entry once
    /// each way, plus the accumulator's D floats loaded and stored every pass.
    pub fn kept_mb(&self) -> f64 {
        let entries = (self.dims * self.d_total) as f64;
        let acc = (self.passes * self.d_total) as f64;
        (2.0 * entries + 2.0 * acc) * 4.0 / 1e6
    }
}

/// The table as `rbd bench rbd` prints it.
pub fn print(t: &PhaseTable) {
    println!(
        "\nwhere the cpu RBD step's time goes: CIFAR-10 CNN (D = {}), batch 32, d = {}, {} Gaussian; medians, the six steps interleaved round by round (order reversed every other round)",
        t.d_total, t.dims, t.generator
    );
    let row = |what: &str, ms: f64| println!("  {what:<72} {ms:>8.2} ms");
    row(
        "gradient alone (forward + backward, the trainer's oracle)",
        t.gradient_ms,
    );
    row("SGD step", t.sgd_ms);
    row(
        "  of which the update θ − lr·g and its bookkeeping (SGD − gradient)",
        t.sgd_ms - t.gradient_ms,
    );
    row("Fastfood RBD step", t.fastfood_ms);
    row(
        "  of which the step in the Fastfood bases (Fastfood − gradient)",
        t.fastfood_ms - t.gradient_ms,
    );
    row("packed-sign RBD step", t.rademacher_ms);
    row(
        "  of which the step in the packed-sign bases (packed signs − gradient)",
        t.rademacher_ms - t.gradient_ms,
    );
    row("Gaussian RBD step", t.rbd_ms);
    row(
        "  of which the step in the bases (RBD − gradient)",
        t.rbd_ms - t.gradient_ms,
    );
    row(
        "Gaussian FPD step (its fixed basis generated once, kept)",
        t.fpd_ms,
    );
    row(
        "  of which the step in the kept bases (FPD − gradient)",
        t.fpd_ms - t.gradient_ms,
    );
    println!(
        "  the step in the bases alone (kernels on slices, plan: {}):",
        t.plan
    );
    row(
        "    project alone (each d·D entry generated once, dot products with g)",
        t.project_ms,
    );
    row(
        "    expand alone (each entry generated once, axpys into the update)",
        t.expand_ms,
    );
    row("    fused project_expand under the plan", t.fused_ms);
    if t.passes > 0 {
        row(
            "      set-up (θ copied to the output, g into batch layout)",
            t.setup_ms,
        );
        row(
            &format!("      {} block passes (wall)", t.passes),
            t.passes_ms,
        );
        row(
            "        the chunk tasks' time / threads (generate, dot, keep, axpy)",
            t.busy_ms,
        );
        row(
            "        threads waiting at the passes' joins (wall − busy)",
            t.passes_ms - t.busy_ms,
        );
        row(
            "      coordinates between passes (chunk sums, one thread)",
            t.coords_ms,
        );
        row("      finish (out = θ + accumulated update)", t.finish_ms);
        row(
            "    fused with the expansion skipped (alpha = 0: generate, dot, keep)",
            t.fused_no_expand_ms,
        );
        row(
            "      → adding the kept blocks' weighted directions (fused − skipped)",
            t.fused_ms - t.fused_no_expand_ms,
        );
        row(
            "      → the fused step over one generation (fused − project alone)",
            t.fused_ms - t.project_ms,
        );
        row(
            &format!(
                "    the same passes, a counter for values ({:.0} MB stored and loaded)",
                t.kept_mb()
            ),
            t.traffic_ms,
        );
    } else {
        println!("      (a two-pass plan: the fused step is project then expand)");
    }
    if t.kept_ms > 0.0 {
        row(
            &format!(
                "    the fused step on a kept basis (FPD's: each entry read, {:.0} MB)",
                t.kept_mb
            ),
            t.kept_ms,
        );
    }
    row(
        "  the engine around the kernels (RBD − gradient − fused)",
        t.rbd_ms - t.gradient_ms - t.fused_ms,
    );
}
