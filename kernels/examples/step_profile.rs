//! Host-side cost of an SGD training step on wgpu: the runtime counters
//! (`rbd_kernels::gpu::counters`) and wall time per step of the paper's CNN on
//! CIFAR-10-shaped batches, after a warm-up. Counts and host µs per dispatch do not
//! depend on the adapter, so llvmpipe measures them as well as a GPU does.
//!
//! `cargo run --release -p rbd-kernels --example step_profile -- [--steps N]
//! [--warmup N] [--batch N] [--metrics readback|device|none] [--adapter cpu|gpu|INDEX]
//! [--kernels] [--optimizer sgd|rbd] [--dim D] [--compartments whole|layer]`
//! (`--kernels`: one more step with timestamp queries, printing each entry point's
//! dispatches and GPU time; `rbd`: random bases descent with `--dim` directions per
//! compartment, the paper's Gaussian Philox stream).
//!
//! `--metrics readback` accounts loss and accuracy as the trainer did (`loss.item()`
//! and `correct_count` every step: two blocking readbacks); `device` accumulates them
//! on the device (`MetricSums`) and reads once at the end; `none` skips them.
//! The inputs are deterministic pseudo-random pixels and labels: the step's work and
//! counts do not depend on the values.

use rbd_engine::random_bases as rb;
use rbd_engine::{Device, Labels, MetricSums, Tensor};
use rbd_kernels::gpu::{self, DeviceKind, GpuContext};
use rbd_models::Mode;
use std::time::Instant;

struct Args {
    steps: usize,
    warmup: usize,
    batch: usize,
    metrics: String,
    adapter: String,
    kernels: bool,
    optimizer: String,
    dim: usize,
    layers: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        steps: 20,
        warmup: 3,
        batch: 32,
        metrics: "readback".into(),
        adapter: "cpu".into(),
        kernels: false,
        optimizer: "sgd".into(),
        dim: 250,
        layers: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--steps" => a.steps = value()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--warmup" => a.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--metrics" => a.metrics = value()?,
            "--adapter" => a.adapter = value()?,
            "--kernels" => a.kernels = true,
            "--optimizer" => a.optimizer = value()?,
            "--dim" => a.dim = value()?.parse().map_err(|e| format!("--dim: {e}"))?,
            "--compartments" => {
                a.layers = match value()?.as_str() {
                    "layer" => true,
                    "whole" => false,
                    v => return Err(format!("--compartments: '{v}' (expected whole or layer)")),
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !["sgd", "rbd"].contains(&a.optimizer.as_str()) {
        return Err(format!(
            "--optimizer: '{}' (expected sgd or rbd)",
            a.optimizer
        ));
    }
    if !["readback", "device", "none"].contains(&a.metrics.as_str()) {
        return Err(format!(
            "--metrics: '{}' (expected readback, device or none)",
            a.metrics
        ));
    }
    Ok(a)
}

fn open(adapter: &str) -> Result<std::sync::Arc<GpuContext>, String> {
    let ctx = match adapter {
        "cpu" => GpuContext::new(DeviceKind::Cpu),
        "gpu" => GpuContext::new(DeviceKind::Gpu),
        i => GpuContext::with_adapter(
            i.parse()
                .map_err(|_| format!("--adapter: '{i}' (expected cpu, gpu or an index)"))?,
        ),
    };
    ctx.map_err(|e| e.to_string())
}

/// Deterministic pixels in [0, 1) and labels below 10 (an LCG; values do not matter).
fn batch(step: usize, n: usize) -> (Vec<f32>, Vec<u32>) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ step as u64;
    let mut next = || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (s >> 33) as u32
    };
    let x = (0..n * 3 * 32 * 32)
        .map(|_| (next() % 1024) as f32 / 1024.0)
        .collect();
    let y = (0..n).map(|_| next() % 10).collect();
    (x, y)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("step_profile: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("step_profile: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let ctx = open(&args.adapter)?;
    println!("{}", ctx.describe());
    let device = Device::Wgpu(ctx.clone());
    let model = rbd_models::build(rbd_models::ModelKind::Cnn, 3, 32, 32, &device)?;
    let layout = model.layout();
    let mut theta = Tensor::from_f32(&device, &layout.init(0), &[layout.total])?;
    let mut sums = MetricSums::new(&device)?;
    let (mut loss_sum, mut correct) = (0.0f64, 0u64);
    let lr = 2f64.powi(-6);
    let stream = rb::Stream::new(0);
    let scale = rb::rbd_scale(layout.total);
    let comps = if args.layers {
        let mut comps = Vec::new();
        for (i, (offset, len)) in layout.layer_ranges().into_iter().enumerate() {
            comps.push(rb::Compartment::new(i as u32, offset, len, args.dim));
        }
        comps
    } else {
        rb::Compartment::whole(layout.total, args.dim)
    };
    let mut before = gpu::counters();
    let mut started = Instant::now();
    let total = args.warmup + args.steps + usize::from(args.kernels);
    let mut measured = None;
    for step in 0..total {
        if step == args.warmup + args.steps {
            ctx.synchronize()?;
            measured = Some((
                gpu::counters().since(&before),
                started.elapsed().as_secs_f64(),
            ));
            ctx.start_profiling();
        }
        if step == args.warmup {
            ctx.synchronize()?;
            before = gpu::counters();
            started = Instant::now();
        }
        let (x, y) = batch(step, args.batch);
        let x = Tensor::from_f32(&device, &x, &[args.batch, 3, 32, 32])?;
        let labels = Labels::new(&device, y, 10)?;
        let views = layout.views(&theta)?;
        let logits = model.forward(&views, &x, Mode::Train)?;
        let loss = logits.softmax_cross_entropy(&labels)?;
        let grads = loss.backward()?;
        match args.metrics.as_str() {
            "readback" => {
                loss_sum += loss.item()? * args.batch as f64;
                correct += logits.detach().correct_count(&labels)? as u64;
            }
            "device" => sums.add(&loss, &logits.detach(), &labels)?,
            _ => {}
        }
        let g = layout.flat_grad(&grads, &views, &device)?;
        theta = if args.optimizer == "rbd" {
            let bases = rb::Bases::new(stream, step as u64, &comps, scale);
            let c = rb::project(&bases, &g)?;
            rb::expand(&bases, &c, -lr as f32, &theta)?
        } else {
            g.axpy(-lr, &theta)?
        };
        ctx.flush()?;
    }
    if args.metrics == "device" {
        let (l, c, _) = sums.read()?;
        loss_sum = l;
        correct = c;
    }
    ctx.synchronize()?;
    let (c, wall) = measured.unwrap_or_else(|| {
        (
            gpu::counters().since(&before),
            started.elapsed().as_secs_f64(),
        )
    });
    if args.kernels {
        let timings = ctx.stop_profiling()?;
        println!("one step with timestamp queries (per entry point):");
        for t in &timings {
            println!(
                "  {:<24} {:>3} dispatches {:>9.3} ms",
                t.kernel,
                t.dispatches,
                t.nanos / 1e6
            );
        }
    }
    let per = |v: u64| v as f64 / args.steps as f64;
    let opt = if args.optimizer == "rbd" {
        format!(
            "RBD (d = {} per compartment, {} compartments)",
            args.dim,
            comps.len()
        )
    } else {
        "SGD".to_string()
    };
    println!(
        "cnn {opt} step, batch {}, metrics {}, {} steps after {} warm-up",
        args.batch, args.metrics, args.steps, args.warmup
    );
    println!(
        "per step: {:.1} dispatches, {:.1} submits, {:.1} readbacks, {:.1} buffer creations, {:.1} bind-group creations, {:.1} compute passes, {:.0} uniform bytes, {:.0} upload bytes",
        per(c.dispatches),
        per(c.submits),
        per(c.readbacks),
        per(c.buffer_creations),
        per(c.bind_group_creations),
        per(c.compute_passes),
        per(c.uniform_bytes),
        per(c.upload_bytes)
    );
    println!(
        "host recording: {:.2} µs per dispatch ({:.3} ms per step); wall {:.1} ms per step",
        c.host_us_per_dispatch(),
        c.record_ns as f64 / 1e6 / args.steps as f64,
        wall * 1e3 / args.steps as f64
    );
    if args.metrics != "none" {
        let seen = total * args.batch;
        println!(
            "mean loss {:.6}, accuracy {:.4} over {seen} images",
            loss_sum / seen as f64,
            correct as f64 / seen as f64
        );
    }
    Ok(())
}
