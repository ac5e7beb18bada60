//! `rbd bench rbd`: random numbers per second of the fused project and expand passes
//! (both generators), and the time of one whole optimiser step on the CIFAR-10 CNN
//! (D = 122,570, batch 32): SGD against fused RBD at d = 250 and d = 10^4 and against
//! RBD with a materialised basis, on every backend; the Fastfood family's step at
//! d ∈ {10, 250, 10^4} and its project + expand time for every model's D; with
//! `--peer torch`, PyTorch's SGD and materialised-basis steps on the same network,
//! measured in the same run.

use super::peer::{self, PeerReport};
use super::{backends, measure, Backend, Timing};
use crate::cli::BenchArgs;
use anyhow::Result;
use rbd::train::oracle::TrainOracle;
use rbd_datasets::Batch;
use rbd_engine::basis::{Basis, BasisFamily};
use rbd_engine::fastfood::Fastfood;
use rbd_engine::{Device, Tensor};
use rbd_kernels::random_bases::{self as rb, Compartment, Distribution, Generator, Stream};
use rbd_optim::{MaterializedRbd, Optimizer, RandomBases, Sgd};
use serde::Serialize;

#[derive(Serialize)]
struct RateRow {
    backend: String,
    generator: String,
    distribution: String,
    d_total: usize,
    dims: usize,
    project_ms: f64,
    expand_ms: f64,
    project_numbers_per_s: f64,
    expand_numbers_per_s: f64,
    combined_numbers_per_s: f64,
}

#[derive(Serialize)]
struct StepRow {
    backend: String,
    optimizer: String,
    dims: Option<usize>,
    timing: Timing,
    vs_sgd: f64,
}

/// The Fastfood project + expand (one fused step of the op, no model) at one (D, d).
#[derive(Serialize)]
struct FastfoodRow {
    backend: String,
    model: String,
    d_total: usize,
    dims: usize,
    block: usize,
    timing: Timing,
    ns_per_parameter: f64,
}

#[derive(Serialize)]
struct Report {
    backends: Vec<(String, String)>,
    rates: Vec<RateRow>,
    steps: Vec<StepRow>,
    fastfood: Vec<FastfoodRow>,
    /// SGD training throughput of the CNN (32 / median step time), per backend.
    images_per_s: Vec<ImagesRow>,
    peer: PeerReport,
}

#[derive(Serialize)]
struct ImagesRow {
    backend: String,
    dataset: &'static str,
    images_per_s: f64,
}

fn batch(seed: u32, (c, h, w): (usize, usize, usize)) -> Batch {
    let n = 32 * c * h * w;
    let images = (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    Batch {
        images,
        labels: (0..32).map(|i| (i * 7 % 10) as u32).collect(),
        epoch: 0,
        index: 0,
        shape: [32, c, h, w],
    }
}

fn step_time(
    b: &Backend,
    device: &Device,
    opt: &mut dyn Optimizer,
    repeats: usize,
) -> Result<Timing> {
    step_time_on(b, device, opt, repeats, (3, 32, 32))
}

/// One optimiser step of the CNN on `image`-shaped (c, h, w) synthetic batches.
fn step_time_on(
    b: &Backend,
    device: &Device,
    opt: &mut dyn Optimizer,
    repeats: usize,
    image: (usize, usize, usize),
) -> Result<Timing> {
    let model = rbd_models::build("cnn", image.0, image.1, image.2, device)?;
    let layout = model.layout();
    let mut theta = Tensor::from_f32(device, &layout.init(0), &[layout.total])?;
    let mut step = 0u64;
    // The images are synthesised once, outside the timed steps (the peer's are one
    // tensor made before timing); each step still takes its batch by value and
    // uploads it, as the trainer does.
    let images = batch(1, image);
    let batches = std::iter::repeat_with(move || images.clone());
    let mut batches: Box<dyn Iterator<Item = Batch>> = Box::new(batches);
    measure(b, 1, repeats, || {
        let mut oracle = TrainOracle::new(
            model.as_ref(),
            device.clone(),
            Box::new(batches.by_ref()),
            10,
            Default::default(),
            Default::default(),
        )?;
        theta = opt.step(step, &theta, &mut oracle)?.theta;
        step += 1;
        Ok(())
    })
}

/// The networks whose D the Fastfood table covers: (name, model, image shape).
const MODELS: [(&str, &str, (usize, usize, usize)); 5] = [
    ("fc-mnist", "fc", (1, 28, 28)),
    ("cnn-mnist", "cnn", (1, 28, 28)),
    ("cnn-cifar10", "cnn", (3, 32, 32)),
    ("resnet8-cifar10", "resnet8", (3, 32, 32)),
    ("resnet32-cifar10", "resnet32", (3, 32, 32)),
];

/// Fastfood's fused project + expand alone, for d ∈ {10, 250, 10^4} and each model's D.
fn fastfood_table(b: &Backend, device: &Device, repeats: usize) -> Result<Vec<FastfoodRow>> {
    let stream = Stream::new(0);
    let mut rows = Vec::new();
    for (name, model, (c, h, w)) in MODELS {
        let d_total = rbd_models::build(model, c, h, w, &Device::Cpu)?
            .layout()
            .total;
        let values: Vec<f32> = (0..d_total)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let g = Tensor::from_f32(device, &values, &[d_total])?;
        let theta = Tensor::from_f32(device, &values, &[d_total])?;
        for dims in [10usize, 250, 10_000] {
            let comps = Compartment::whole(d_total, dims);
            let ff = Fastfood::for_compartments(&comps);
            let basis = Basis {
                family: BasisFamily::Fastfood(ff),
                stream: &stream,
                step: 0,
                comps: &comps,
                scale: rb::rbd_scale(d_total),
            };
            let mut step = 0;
            let timing = measure(b, 1, repeats, || {
                let basis = Basis { step, ..basis };
                step += 1;
                basis.project_expand(&g, -0.01, &theta)?;
                Ok(())
            })?;
            rows.push(FastfoodRow {
                backend: b.label(),
                model: name.into(),
                d_total,
                dims,
                block: ff.block(),
                ns_per_parameter: timing.median_ms * 1e6 / d_total as f64,
                timing,
            });
        }
    }
    Ok(rows)
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> Result<()> {
    let peer_choice = peer::parse(args)?;
    let backends = backends(&args.backends)?;
    let d_total = 122_570;
    let mut rates = Vec::new();
    let mut steps = Vec::new();
    let mut images = Vec::new();
    let mut fastfood = Vec::new();
    for b in &backends {
        if !args.json {
            eprintln!("measuring {} ({})", b.label(), b.describe());
        }
        let big_d = matches!(b, Backend::Cpu) || !args.quick;
        for generator in [Generator::Philox, Generator::Threefry] {
            for dims in [250usize, 10_000] {
                if dims > 250 && !big_d {
                    continue;
                }
                let stream = Stream {
                    generator,
                    distribution: Distribution::Gaussian,
                    seed: 0,
                };
                let r = match b {
                    Backend::Cpu => rb::bench_cpu(&stream, d_total, dims, args.repeats),
                    Backend::Wgpu(ctx) => rb::bench_gpu(ctx, &stream, d_total, dims, args.repeats)?,
                };
                rates.push(RateRow {
                    backend: b.label(),
                    generator: generator.name().into(),
                    distribution: "gaussian".into(),
                    d_total,
                    dims,
                    project_ms: r.project_s * 1e3,
                    expand_ms: r.expand_s * 1e3,
                    project_numbers_per_s: r.project_rate(),
                    expand_numbers_per_s: r.expand_rate(),
                    combined_numbers_per_s: r.combined_rate(),
                });
            }
        }
        let device = match b {
            Backend::Cpu => Device::Cpu,
            Backend::Wgpu(ctx) => Device::Wgpu(ctx.clone()),
        };
        let stream = Stream {
            generator: Generator::default(),
            distribution: Distribution::Gaussian,
            seed: 0,
        };
        let reps = if matches!(b, Backend::Cpu) {
            args.repeats.max(5)
        } else {
            args.repeats
        };
        let sgd = step_time(b, &device, &mut Sgd { lr: 0.01 }, reps)?;
        let mut push = |name: &str, dims: Option<usize>, t: Timing| {
            steps.push(StepRow {
                backend: b.label(),
                optimizer: name.into(),
                dims,
                timing: t,
                vs_sgd: t.median_ms / sgd.median_ms,
            })
        };
        push("sgd", None, sgd);
        let mnist_sgd = step_time_on(b, &device, &mut Sgd { lr: 0.01 }, reps, (1, 28, 28))?;
        for (dataset, t) in [("mnist", mnist_sgd), ("cifar10", sgd)] {
            images.push(ImagesRow {
                backend: b.label(),
                dataset,
                images_per_s: 32.0 / (t.median_ms / 1e3),
            });
        }
        for dims in [250usize, 10_000] {
            if dims > 250 && !big_d {
                continue;
            }
            let mut rbd = RandomBases::new(
                0.01,
                stream,
                Compartment::whole(d_total, dims),
                d_total,
                false,
            );
            push(
                "rbd (fused)",
                Some(dims),
                step_time(b, &device, &mut rbd, reps)?,
            );
        }
        for dims in [10usize, 250, 10_000] {
            if dims > 250 && !big_d {
                continue;
            }
            let comps = Compartment::whole(d_total, dims);
            let family = BasisFamily::Fastfood(Fastfood::for_compartments(&comps));
            let mut ff = RandomBases::new(0.01, stream, comps, d_total, false).with_family(family);
            push(
                "rbd fastfood (fused)",
                Some(dims),
                step_time(b, &device, &mut ff, reps)?,
            );
        }
        fastfood.extend(fastfood_table(b, &device, reps)?);
        let mut mat = MaterializedRbd {
            lr: 0.01,
            stream,
            dims: 250,
            family: rbd_engine::basis::BasisFamily::Iid,
        };
        match rbd_optim::materialized::check_fits(&device, 250, d_total) {
            Ok(_) => push(
                "rbd (materialised)",
                Some(250),
                step_time(b, &device, &mut mat, reps.min(3))?,
            ),
            Err(e) => eprintln!("note: {e}"),
        }
    }
    // The peer runs after rbd's measurements, never beside them.
    let peer = peer::measure(&peer_choice, args, &figures(&steps, &images));
    let report = Report {
        backends: backends.iter().map(|b| (b.label(), b.describe())).collect(),
        rates,
        steps,
        fastfood,
        images_per_s: images,
        peer,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for (label, adapter) in &report.backends {
        println!("{label}: {adapter}");
    }
    println!(
        "\nfused random bases, D = {d_total}, Gaussian directions (numbers/s = direction entries generated per second)"
    );
    println!(
        "{:<14} {:<16} {:>6} {:>11} {:>11} {:>14} {:>14} {:>14}",
        "backend",
        "generator",
        "d",
        "project ms",
        "expand ms",
        "project n/s",
        "expand n/s",
        "both n/s"
    );
    for r in &report.rates {
        println!(
            "{:<14} {:<16} {:>6} {:>11.2} {:>11.2} {:>14.3e} {:>14.3e} {:>14.3e}",
            r.backend,
            r.generator,
            r.dims,
            r.project_ms,
            r.expand_ms,
            r.project_numbers_per_s,
            r.expand_numbers_per_s,
            r.combined_numbers_per_s
        );
    }
    println!("\none optimiser step, CIFAR-10 CNN (D = {d_total}), batch 32");
    println!(
        "{:<14} {:<20} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "backend", "optimizer", "d", "median ms", "min ms", "max ms", "wall ms", "× SGD"
    );
    for s in &report.steps {
        println!(
            "{:<14} {:<20} {:>6} {:>10.2} {:>10.2} {:>10.2} {:>10} {:>8.2}",
            s.backend,
            s.optimizer,
            s.dims.map(|d| d.to_string()).unwrap_or_default(),
            s.timing.median_ms,
            s.timing.min_ms,
            s.timing.max_ms,
            s.timing.wall_column(2),
            s.vs_sgd,
        );
    }
    if report
        .steps
        .iter()
        .any(|s| s.timing.wall_median_ms.is_some())
    {
        println!("wall ms: on wgpu with timestamp queries, median/min/max are summed kernel time; wall ms is the median wall-clock of the same steps (host bookkeeping, submission and the final synchronize included).");
    }
    println!(
        "\nfastfood bases: one fused project + expand (the op alone), Threefry Gaussian, L = next power of two ≥ d"
    );
    println!(
        "{:<14} {:<18} {:>8} {:>6} {:>6} {:>10} {:>10} {:>10}",
        "backend", "model", "D", "d", "L", "median ms", "min ms", "ns/param"
    );
    for r in &report.fastfood {
        println!(
            "{:<14} {:<18} {:>8} {:>6} {:>6} {:>10.3} {:>10.3} {:>10.2}",
            r.backend,
            r.model,
            r.d_total,
            r.dims,
            r.block,
            r.timing.median_ms,
            r.timing.min_ms,
            r.ns_per_parameter
        );
    }
    println!("\nSGD training throughput of the CNN, batch 32 (32 / median step)");
    println!("{:<14} {:<10} {:>12}", "backend", "dataset", "images/s");
    for r in &report.images_per_s {
        println!(
            "{:<14} {:<10} {:>12.0}",
            r.backend, r.dataset, r.images_per_s
        );
    }
    println!();
    peer::print(&report.peer);
    Ok(())
}

fn cpu_median(steps: &[StepRow], optimizer: &str, dims: Option<usize>) -> Option<f64> {
    steps
        .iter()
        .find(|s| s.backend == "cpu" && s.optimizer == optimizer && s.dims == dims)
        .map(|s| s.timing.median_ms)
}

/// rbd's cpu figures the peer is compared with (PyTorch runs on the cpu): SGD and
/// fused RBD at d = 250 step times, SGD images/s.
fn figures(steps: &[StepRow], images: &[ImagesRow]) -> peer::RbdFigures {
    peer::RbdFigures {
        sgd_ms: cpu_median(steps, "sgd", None),
        rbd_ms: cpu_median(steps, "rbd (fused)", Some(250)),
        images_per_s: images
            .iter()
            .filter(|r| r.backend == "cpu")
            .map(|r| (r.dataset.to_string(), r.images_per_s))
            .collect(),
    }
}
