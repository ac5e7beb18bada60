//! `rbd profile`: where the time of one training step goes, per phase (data, views,
//! forward, backward, metrics, gradient concatenation, the optimiser's update), per
//! layer (forward and backward) and per engine op, on any backend. It runs the
//! trainer's own step (`super::step`), whose phases are the oracle's profiler scopes
//! (`train::oracle::phase`). A few warm-up
//! steps, then `--steps` unprofiled steps (the honest step time) and `--steps`
//! profiled ones; every figure is a median over steps. On wgpu, also every dispatch of
//! one step with its workgroups and an estimate of its time on a big GPU
//! (`parallelism`), and per-kernel GPU time from timestamp queries where the adapter
//! has them.

mod parallelism;
mod report;

use super::step::StepHarness;
use crate::measure::Timing;
use crate::train::kinds::DatasetSpec;
use crate::train::optimizers::SegmentOptimizer;
use anyhow::{bail, Context, Result};
use clap::Args;
use rbd_datasets::{Dataset, DatasetKind, Preprocess, Split, TrainConfig, TrainLoader};
use rbd_engine::{profile, Device, DeviceChoice};
use rbd_models::ModelKind;
use rbd_optim::{OptimizerKind, Settings};
use report::Breakdown;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Options of `rbd profile`.
#[derive(Args, Debug, Clone)]
pub struct ProfileArgs {
    /// Model: fc, cnn, resnet8, resnet32.
    #[arg(long, default_value = "cnn")]
    pub model: ModelKind,
    /// Data set: mnist, fmnist, cifar10, or idx:DIR.
    #[arg(long, default_value = "cifar10")]
    pub dataset: DatasetSpec,
    /// Random bytes shaped like the data set instead of its images (no download; the
    /// loader, preprocessing and augmentation run as usual).
    #[arg(long)]
    pub synthetic: bool,
    /// Optimizer: sgd, rbd, rbd-materialized, fpd, nes.
    #[arg(long, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// The optimisers' settings, as `rbd train` takes them.
    #[command(flatten)]
    pub settings: Settings,
    /// auto, gpu, cpu, or wgpu-cpu (llvmpipe).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Training batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Untimed steps first (pipelines, buffer pool, caches). Three, because the update
    /// alternates θ between two device buffers: the third step is the first to find every
    /// bind group cached.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps, unprofiled and profiled each.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Learning rate (the profile does not depend on it).
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Seed of θ₀, the data order and the directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where data sets are kept (default: $RBD_DATA or the user cache directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// GPU time per kernel entry point from timestamp queries, per step.
#[derive(Serialize, Debug)]
struct KernelRow {
    kernel: String,
    dispatches_per_step: f64,
    ms_per_step: f64,
}

#[derive(Serialize, Debug)]
struct GpuTimestamps {
    /// Sum over kernels: device time per step, without host gaps.
    total_ms_per_step: f64,
    kernels: Vec<KernelRow>,
}

#[derive(Serialize, Debug)]
struct Report {
    model: String,
    dataset: String,
    data: String,
    optimizer: String,
    dims: Option<usize>,
    compartments: String,
    batch_size: usize,
    parameters: usize,
    device: String,
    backend: &'static str,
    /// How op times were taken.
    timing: &'static str,
    warmup: usize,
    steps: usize,
    /// Unprofiled step, wall-clock (after a device synchronize on wgpu).
    step_ms: Timing,
    /// Profiled step time over unprofiled step time.
    profiler_overhead: f64,
    #[serde(flatten)]
    breakdown: Breakdown,
    gpu_timestamps: Option<GpuTimestamps>,
    /// Why there are no timestamps, when there are none.
    gpu_timestamps_note: Option<String>,
    /// Every dispatch of the first unprofiled step: workgroups, threads, work, and the
    /// estimate on a reference GPU (null on the cpu backend).
    parallelism: Option<parallelism::Parallelism>,
    /// Per-step GPU runtime counters (dispatches, submits, readbacks, buffer and
    /// bind-group creations, host µs per dispatch); null on the cpu backend.
    gpu_counters: Option<serde_json::Value>,
    /// The cpu random-bases plan in force (instruction set, step strategy, block size)
    /// and why.
    cpu_plan: String,
    cpu_plan_why: String,
    /// How the cpu computes convolutions and their weight gradients.
    conv_path: String,
}

/// The wgpu runtime's counters over the unprofiled steps, per step.
struct CounterWindow(rbd_kernels::gpu::Counters);

impl CounterWindow {
    fn start() -> Self {
        CounterWindow(rbd_kernels::gpu::counters())
    }

    fn per_step(&self, steps: usize) -> Option<serde_json::Value> {
        let c = rbd_kernels::gpu::counters().since(&self.0);
        let n = steps.max(1) as f64;
        Some(serde_json::json!({
            "dispatches": c.dispatches as f64 / n,
            "submits": c.submits as f64 / n,
            "readbacks": c.readbacks as f64 / n,
            "buffer_creations": c.buffer_creations as f64 / n,
            "bind_group_creations": c.bind_group_creations as f64 / n,
            "compute_passes": c.compute_passes as f64 / n,
            "uniform_bytes": c.uniform_bytes as f64 / n,
            "upload_bytes": c.upload_bytes as f64 / n,
            "host_us_per_dispatch": c.host_us_per_dispatch(),
            "host_record_ms": c.record_ns as f64 / 1e6 / n,
        }))
    }
}

/// Images of a data set's shape from a fixed integer hash (no download).
fn synthetic(kind: DatasetKind, n: usize) -> Result<Dataset> {
    let (c, h, w) = kind.shape();
    let images = (0..n * c * h * w)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let labels = (0..n).map(|i| (i * 7 % 10) as u8).collect();
    Ok(Dataset::new(images, labels, c, h, w)?)
}

fn data(args: &ProfileArgs, images: usize) -> Result<(Dataset, String, TrainConfig)> {
    let batch = |kind: Option<DatasetKind>, pre: Preprocess| {
        let mut cfg = match kind {
            Some(k) => TrainConfig::for_kind(k, args.seed),
            None => TrainConfig::for_kind(DatasetKind::Mnist, args.seed),
        };
        cfg.batch_size = args.batch_size;
        cfg.preprocess = pre;
        cfg
    };
    let kind = match &args.dataset {
        DatasetSpec::Known(kind) => *kind,
        DatasetSpec::Idx(dir) => {
            if args.synthetic {
                bail!("--synthetic needs a named data set (mnist, fmnist, cifar10), not idx:DIR");
            }
            return crate::train::data::load_idx_train(dir)
                .map(|train| (train, "real".into(), batch(None, Preprocess::SCALE_ONLY)));
        }
    };
    let pre = Preprocess::for_kind(kind);
    if args.synthetic {
        let what = "synthetic: random bytes of the data set's shape (not its images)";
        return Ok((
            synthetic(kind, images)?,
            what.into(),
            batch(Some(kind), pre),
        ));
    }
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => rbd_datasets::default_data_dir()?,
    };
    let train = rbd_datasets::load(kind, Split::Train, &dir, &mut |m| eprintln!("{m}"))
        .with_context(|| format!("--dataset {kind} (or use --synthetic)"))?;
    Ok((train, "real".into(), batch(Some(kind), pre)))
}

/// Runs `rbd profile`.
pub fn run(args: &ProfileArgs) -> Result<()> {
    let report = measure(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
    }
    Ok(())
}

fn measure(args: &ProfileArgs) -> Result<Report> {
    if args.steps == 0 || args.batch_size == 0 {
        bail!("--steps and --batch-size must be at least 1");
    }
    let device = Device::open(args.device)?;
    let batches_per_step = args.optimizer.batches_per_step(&args.settings);
    let total_steps = args.warmup + 3 * args.steps;
    let images = args.batch_size * batches_per_step * total_steps;
    let (train, data_note, cfg) = data(args, images)?;
    let (n, c, h, w) = (train.n, train.c, train.h, train.w);
    let loader = TrainLoader::new(Arc::new(train), rbd_datasets::all_indices(n), cfg)?;
    let model = rbd_models::build(args.model, c, h, w, &device)?;
    let layout = model.layout();
    args.settings
        .validate()
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.message))?;
    // Batches cycle through epochs so any --steps has data.
    let loader = &loader;
    let batches = Box::new((0u64..).flat_map(move |e| loader.epoch(e, 0)));
    let segment = SegmentOptimizer {
        kind: args.optimizer,
        lr: args.lr,
        settings: &args.settings,
    };
    let mut harness = StepHarness::single(model.as_ref(), &device, args.seed, batches, segment)?;
    for _ in 0..args.warmup {
        harness.step()?;
    }
    device.synchronize()?;
    // Between the measured windows, as the trainer between log windows: the losses
    // recorded on the device are read back (and checked).
    harness.settle()?;
    let mut plain = Vec::with_capacity(args.steps);
    let counters = CounterWindow::start();
    let mut dispatch_log = None;
    for i in 0..args.steps {
        // The first step's dispatches are logged (a push per dispatch).
        let logged = device.gpu().filter(|_| i == 0);
        if let Some(ctx) = logged {
            ctx.start_dispatch_log();
        }
        let t = Instant::now();
        harness.step()?;
        device.synchronize()?;
        plain.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some(ctx) = logged {
            dispatch_log = Some(ctx.take_dispatch_log());
        }
    }
    let gpu_counters = device.gpu().and(counters.per_step(args.steps));
    harness.settle()?;
    let mut profiled = Vec::with_capacity(args.steps);
    profile::start(Some(&device));
    for _ in 0..args.steps {
        {
            let _s = profile::scope(report::STEP);
            harness.step()?;
        }
        profiled.push(profile::take());
    }
    profile::stop();
    harness.settle()?;
    let (gpu_timestamps, gpu_timestamps_note) = match device.gpu() {
        None => (None, Some("cpu backend: no device timestamps".to_string())),
        Some(ctx) if ctx.start_profiling() => {
            for _ in 0..args.steps {
                harness.step()?;
            }
            let kernels = ctx.stop_profiling()?;
            let per = args.steps as f64;
            let mut rows: Vec<KernelRow> = kernels
                .iter()
                .map(|k| KernelRow {
                    kernel: k.kernel.to_string(),
                    dispatches_per_step: k.dispatches as f64 / per,
                    ms_per_step: k.nanos / 1e6 / per,
                })
                .collect();
            rows.sort_by(|a, b| b.ms_per_step.total_cmp(&a.ms_per_step));
            let total = rows.iter().map(|r| r.ms_per_step).sum();
            (
                Some(GpuTimestamps {
                    total_ms_per_step: total,
                    kernels: rows,
                }),
                None,
            )
        }
        Some(_) => (
            None,
            Some("the adapter has no timestamp queries (TIMESTAMP_QUERY)".to_string()),
        ),
    };
    let breakdown = report::breakdown(&profiled);
    let step_ms = Timing::of(plain);
    let is_gpu = device.gpu().is_some();
    let directions = &args.settings.directions;
    let report = Report {
        model: args.model.to_string(),
        dataset: args.dataset.to_string(),
        data: data_note,
        optimizer: args.optimizer.to_string(),
        dims: args.optimizer.uses_directions().then_some(directions.dim),
        compartments: directions.compartments.to_string(),
        batch_size: args.batch_size,
        parameters: layout.total,
        device: device.describe(),
        backend: if is_gpu { "wgpu" } else { "cpu" },
        timing: if is_gpu {
            "wall-clock, synchronised per op"
        } else {
            "wall-clock"
        },
        warmup: args.warmup,
        steps: args.steps,
        profiler_overhead: breakdown.profiled_step_ms.median_ms / step_ms.median_ms,
        step_ms,
        breakdown,
        gpu_timestamps,
        gpu_timestamps_note,
        parallelism: dispatch_log.as_deref().map(parallelism::of),
        gpu_counters,
        cpu_plan: rbd_kernels::random_bases::CpuPlan::current()
            .plan
            .describe(),
        cpu_plan_why: rbd_kernels::random_bases::CpuPlan::current().why.clone(),
        conv_path: rbd_kernels::conv::ConvPath::detect().describe(),
    };
    Ok(report)
}

fn print_tables(r: &Report) {
    println!(
        "{} on {} ({}), {}{}, batch {}, D = {}",
        r.model,
        r.dataset,
        r.data,
        r.optimizer,
        r.dims.map(|d| format!(" d = {d}")).unwrap_or_default(),
        r.batch_size,
        r.parameters
    );
    println!("device: {}", r.device);
    if r.backend == "cpu" {
        println!("cpu plan: {} ({})", r.cpu_plan, r.cpu_plan_why);
        println!("convolutions (cpu): {}", r.conv_path);
    }
    println!(
        "step: {:.2} ms median unprofiled (min {:.2}, max {:.2}, {} steps after {} warm-up); profiled {:.2} ms ({:.2}×), op times {}",
        r.step_ms.median_ms,
        r.step_ms.min_ms,
        r.step_ms.max_ms,
        r.steps,
        r.warmup,
        r.breakdown.profiled_step_ms.median_ms,
        r.profiler_overhead,
        r.timing
    );
    println!(
        "\n{:<24} {:>10} {:>7} {:>7}",
        "phase", "median ms", "share", "calls"
    );
    for p in &r.breakdown.phases {
        println!(
            "{:<24} {:>10.3} {:>6.1}% {:>7}",
            p.phase,
            p.median_ms,
            100.0 * p.share,
            p.calls_per_step
        );
    }
    println!(
        "\n{:<24} {:>12} {:>12}",
        "layer", "forward ms", "backward ms"
    );
    for l in &r.breakdown.layers {
        println!(
            "{:<24} {:>12.3} {:>12.3}",
            l.layer, l.forward_ms, l.backward_ms
        );
    }
    println!(
        "\n{:<28} {:>7} {:>10} {:>7}",
        "op (all places)", "calls", "median ms", "share"
    );
    for o in r.breakdown.op_totals.iter().take(20) {
        println!(
            "{:<28} {:>7} {:>10.3} {:>6.1}%",
            o.op,
            o.calls_per_step,
            o.median_ms,
            100.0 * o.share
        );
    }
    println!(
        "\n{:<66} {:>6} {:>10} {:>7}",
        "op by place (largest 25; all in --json)", "calls", "median ms", "share"
    );
    for o in r.breakdown.ops.iter().take(25) {
        println!(
            "{:<66} {:>6} {:>10.3} {:>6.1}%",
            o.path,
            o.calls_per_step,
            o.median_ms,
            100.0 * o.share
        );
    }
    match (&r.gpu_timestamps, &r.gpu_timestamps_note) {
        (Some(t), _) => {
            println!(
                "\nGPU timestamps (separate unsynchronised steps): {:.3} ms of kernels per step",
                t.total_ms_per_step
            );
            println!("{:<36} {:>12} {:>10}", "kernel", "dispatches", "ms/step");
            for k in t.kernels.iter().take(20) {
                println!(
                    "{:<36} {:>12} {:>10.3}",
                    k.kernel, k.dispatches_per_step, k.ms_per_step
                );
            }
        }
        (None, Some(note)) => println!("\nGPU timestamps: n/a ({note})"),
        (None, None) => println!("\nGPU timestamps: n/a"),
    }
    if let Some(p) = &r.parallelism {
        println!(
            "\ndispatches of one step: workgroups, and time estimated on {} (target: at least {} workgroups unless under {} µs)",
            p.reference, p.target_workgroups, p.max_us_below_target
        );
        println!(
            "{:<34} {:>14} {:>8} {:>10} {:>10} {:>9}",
            "kernel", "workgroups", "threads", "MFLOP", "MB", "est µs"
        );
        for d in &p.dispatches {
            println!(
                "{:<34} {:>14} {:>8} {:>10.2} {:>10.3} {:>9.2}{}",
                d.kernel,
                d.total_workgroups,
                d.threads_per_workgroup,
                d.flops / 1e6,
                d.bytes / 1e6,
                d.est_us,
                if d.misses_target { "  < target" } else { "" }
            );
        }
        println!(
            "estimated step on the reference: {:.1} µs; target {}",
            p.est_step_us,
            if p.meets_target {
                "met by every dispatch".to_string()
            } else {
                format!("missed by {}", p.misses.join(", "))
            }
        );
    }
    match &r.gpu_counters {
        Some(c) => {
            let v = |key: &str| c[key].as_f64().unwrap_or(0.0);
            println!(
                "GPU counters per step: {:.1} dispatches, {:.1} submits, {:.1} readbacks, {:.1} buffer creations, {:.1} bind-group creations, {:.1} compute passes, {:.0} uniform bytes, {:.0} upload bytes",
                v("dispatches"),
                v("submits"),
                v("readbacks"),
                v("buffer_creations"),
                v("bind_group_creations"),
                v("compute_passes"),
                v("uniform_bytes"),
                v("upload_bytes")
            );
            println!(
                "host recording: {:.2} µs per dispatch, {:.3} ms per step",
                v("host_us_per_dispatch"),
                v("host_record_ms")
            );
        }
        None => println!("GPU counters per step: n/a"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProfileArgs,
    }

    fn args(line: &str) -> ProfileArgs {
        Cli::parse_from(std::iter::once("profile").chain(line.split_whitespace())).args
    }

    #[test]
    fn one_rbd_step_on_the_cpu_is_broken_down_completely() {
        let a = args(
            "--model fc --dataset mnist --synthetic --optimizer rbd --dim 8 --device cpu --warmup 1 --steps 1",
        );
        let r = measure(&a).unwrap();
        assert_eq!((r.parameters, r.dims, r.backend), (101_770, Some(8), "cpu"));
        assert!(r.gpu_counters.is_none() && r.gpu_timestamps.is_none());
        assert!(r.parallelism.is_none());
        let b = &r.breakdown;
        // One step: the phases add up to the step exactly (the update is the rest).
        let sum: f64 = b.phases.iter().map(|p| p.median_ms).sum();
        assert!((sum - b.profiled_step_ms.median_ms).abs() < 1e-6, "{b:#?}");
        // The phases are the trainer's oracle's own (its profiler scopes), then the
        // optimiser's update.
        let names: Vec<&str> = b.phases.iter().map(|p| p.phase.as_str()).collect();
        use crate::train::oracle::phase as p;
        let oracle = [
            p::DATA,
            p::VIEWS,
            p::FORWARD,
            p::BACKWARD,
            p::METRICS,
            p::GRADIENT,
        ];
        assert_eq!(names, [&oracle[..], &[report::UPDATE]].concat());
        let phase = |n: &str| b.phases.iter().find(|p| p.phase == n).unwrap().median_ms;
        // The optimiser's own ops sit in its update, outside the oracle's phases.
        let op = |path: &str| b.ops.iter().find(|o| o.path == path).unwrap();
        // On the cpu one fused op generates each direction once (project + expand).
        let fused = op("step/project_expand");
        assert_eq!(fused.calls_per_step, 1.0);
        assert!(fused.median_ms <= phase(report::UPDATE));
        assert!(phase("forward") > 0.0 && phase("backward") > 0.0);
        let layers: Vec<&str> = b.layers.iter().map(|l| l.layer.as_str()).collect();
        assert_eq!(
            layers,
            ["dense_1", "dense_2", "loss", report::OUTSIDE_LAYERS]
        );
        // dense_1's backward is one matmul (the input needs no gradient) and the fused
        // bias + ReLU backward, which sums the bias gradient itself.
        let d1 = b
            .ops
            .iter()
            .filter(|o| o.path.starts_with("step/backward/dense_1/"))
            .map(|o| o.op.as_str())
            .collect::<Vec<_>>();
        assert!(
            d1.contains(&"matmul")
                && d1.contains(&"bias_relu_backward")
                && !d1.contains(&"sum_to_axis1"),
            "{d1:?}"
        );
    }

    #[test]
    fn bad_flags_are_named() {
        let e = Cli::try_parse_from(["profile", "--optimizer", "adam"])
            .err()
            .expect("adam is no optimizer");
        assert!(e.to_string().contains("--optimizer"), "{e}");
        let e = measure(&args("--device cpu --dataset idx:/x --synthetic")).unwrap_err();
        assert!(e.to_string().contains("--synthetic"), "{e}");
        let e = measure(&args("--device cpu --synthetic --steps 0")).unwrap_err();
        assert!(e.to_string().contains("--steps"), "{e}");
    }
}
