//! `rbd bench kernels`: GFLOP/s of square matmuls and of the paper CNN's conv layers
//! (CIFAR-10, batch 32; forward, backward-data, backward-weight), and GB/s of
//! memory-bound kernels, on every backend side by side.

use super::peak::{measure_cpu_peak, CpuPeak};
use super::BenchArgs;
use crate::measure::{backends, measure, Backend, Timing};
use anyhow::Result;
use rbd_kernels::conv::{self, Conv2dShape, Padding};
use rbd_kernels::elementwise::{self, Binary};
use rbd_kernels::matmul::{self, MatmulShape};
use rbd_kernels::reduce::{self, Reduction};
use serde::Serialize;

/// One measured kernel.
#[derive(Serialize)]
pub struct Row {
    /// Backend label.
    pub backend: String,
    /// Kernel and shape.
    pub kernel: String,
    /// Timing.
    pub timing: Timing,
    /// GFLOP/s (compute-bound kernels).
    pub gflops: Option<f64>,
    /// GB/s (memory-bound kernels).
    pub gbytes_per_s: Option<f64>,
    /// GFLOP/s as a percentage of the cpu peak measured in this run (kernels on the
    /// cpu backend or on a wgpu CPU adapter such as llvmpipe, which runs on the same
    /// cores; none on a GPU).
    pub percent_of_cpu_peak: Option<f64>,
    #[serde(skip)]
    on_cpu: bool,
}

#[derive(Serialize)]
struct Report {
    backends: Vec<BackendInfo>,
    /// Measured in this run when a backend runs on the cpu.
    cpu_peak: Option<CpuPeak>,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct BackendInfo {
    label: String,
    adapter: String,
    timing: String,
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// The CIFAR-10 CNN's conv layers at batch 32 (`quick`: batch 8).
pub fn cnn_convs(batch: usize) -> Vec<(String, Conv2dShape)> {
    [(3, 32, 32, 32), (32, 15, 15, 64), (64, 6, 6, 64)]
        .iter()
        .enumerate()
        .map(|(i, &(c, h, w, o))| {
            (
                format!("conv{} {c}→{o} {h}×{w} b{batch}", i + 1),
                Conv2dShape::new(batch, c, h, w, o, 3, 3, 1, Padding::Valid).expect("valid shape"),
            )
        })
        .collect()
}

fn conv_flops(s: &Conv2dShape) -> f64 {
    2.0 * (s.n * s.o * s.oh * s.ow * s.c * s.kh * s.kw) as f64
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> Result<()> {
    if !args.peer.is_empty() || args.python.is_some() {
        anyhow::bail!("--peer and --python apply to `rbd bench rbd`, not `bench kernels`");
    }
    let backends = backends(&args.backends)?;
    let sizes: &[usize] = if args.quick {
        &[128, 256]
    } else {
        &[256, 512, 1024]
    };
    let batch = if args.quick { 8 } else { 32 };
    let elems = if args.quick { 1 << 20 } else { 1 << 22 };
    let mut rows = Vec::new();
    for b in &backends {
        if !args.json {
            eprintln!("measuring {} ({})", b.label(), b.describe());
        }
        // A real GPU also gets the large squares its peak is quoted at.
        let big: &[usize] = match b {
            Backend::Wgpu(ctx) if !ctx.adapter.is_cpu && !args.quick => &[2048, 4096],
            _ => &[],
        };
        for &n in sizes.iter().chain(big) {
            let s = MatmulShape::new(n, n, n);
            let (a, bm) = (values(n * n, 1), values(n * n, 2));
            let t = match b {
                Backend::Cpu => {
                    let mut c = vec![0f32; n * n];
                    measure(b, 1, args.repeats, || {
                        matmul::matmul_cpu(&s, &a, &bm, &mut c);
                        Ok(())
                    })?
                }
                Backend::Wgpu(ctx) => {
                    let ga = ctx.upload(bytemuck::cast_slice(&a))?;
                    let gb = ctx.upload(bytemuck::cast_slice(&bm))?;
                    measure(b, 1, args.repeats, || {
                        matmul::matmul_gpu(ctx, &s, &ga, &gb)?;
                        Ok(())
                    })?
                }
            };
            rows.push(row(
                b,
                format!("matmul {n}×{n}×{n} f32"),
                t,
                Some(s.flops()),
                None,
            ));
            if let Backend::Wgpu(ctx) = b {
                if ctx.has_f16() {
                    let ga = ctx.upload(bytemuck::cast_slice(&a))?;
                    let gb = ctx.upload(bytemuck::cast_slice(&bm))?;
                    let ha = matmul::cast_f32_to_f16_gpu(ctx, &ga, n * n)?;
                    let hb = matmul::cast_f32_to_f16_gpu(ctx, &gb, n * n)?;
                    let t = measure(b, 1, args.repeats, || {
                        matmul::matmul_f16_gpu(ctx, &s, &ha, &hb)?;
                        Ok(())
                    })?;
                    rows.push(row(
                        b,
                        format!("matmul {n}×{n}×{n} f16 storage"),
                        t,
                        Some(s.flops()),
                        None,
                    ));
                }
            }
        }
        for (name, s) in cnn_convs(batch) {
            let (x, w, dy) = (
                values(s.x_len(), 3),
                values(s.w_len(), 4),
                values(s.y_len(), 5),
            );
            let flops = Some(conv_flops(&s));
            let passes: [(&str, u8); 3] =
                [("forward", 0), ("backward-data", 1), ("backward-weight", 2)];
            for (pass, which) in passes {
                let t = match b {
                    Backend::Cpu => {
                        let mut out = vec![0f32; s.x_len().max(s.y_len()).max(s.w_len())];
                        measure(b, 1, args.repeats, || {
                            match which {
                                0 => conv::conv2d_cpu(&s, &x, &w, &mut out[..s.y_len()]),
                                1 => conv::conv2d_backward_data_cpu(
                                    &s,
                                    &dy,
                                    &w,
                                    &mut out[..s.x_len()],
                                ),
                                _ => conv::conv2d_backward_weight_cpu(
                                    &s,
                                    &x,
                                    &dy,
                                    &mut out[..s.w_len()],
                                ),
                            }
                            Ok(())
                        })?
                    }
                    Backend::Wgpu(ctx) => {
                        let (gx, gw, gdy) = (
                            ctx.upload(bytemuck::cast_slice(&x))?,
                            ctx.upload(bytemuck::cast_slice(&w))?,
                            ctx.upload(bytemuck::cast_slice(&dy))?,
                        );
                        measure(b, 1, args.repeats, || {
                            match which {
                                0 => drop(conv::conv2d_gpu(ctx, &s, &gx, &gw)?),
                                1 => drop(conv::conv2d_backward_data_gpu(ctx, &s, &gdy, &gw)?),
                                _ => drop(conv::conv2d_backward_weight_gpu(ctx, &s, &gx, &gdy)?),
                            }
                            Ok(())
                        })?
                    }
                };
                rows.push(row(b, format!("{name} {pass}"), t, flops, None));
            }
        }
        // Memory-bound: add (3 × 4 bytes per element) and sum (4 bytes per element).
        let (x, y) = (values(elems, 6), values(elems, 7));
        let (t_add, t_sum) = match b {
            Backend::Cpu => {
                let mut out = vec![0f32; elems];
                let t_add = measure(b, 1, args.repeats, || {
                    elementwise::binary_cpu(Binary::Add, &x, &y, &mut out);
                    Ok(())
                })?;
                let t_sum = measure(b, 1, args.repeats, || {
                    std::hint::black_box(reduce::reduce_cpu(Reduction::Sum, &x));
                    Ok(())
                })?;
                (t_add, t_sum)
            }
            Backend::Wgpu(ctx) => {
                let (gx, gy) = (
                    ctx.upload(bytemuck::cast_slice(&x))?,
                    ctx.upload(bytemuck::cast_slice(&y))?,
                );
                let t_add = measure(b, 1, args.repeats, || {
                    elementwise::binary_gpu(ctx, Binary::Add, &gx, &gy, elems)?;
                    Ok(())
                })?;
                let t_sum = measure(b, 1, args.repeats, || {
                    reduce::reduce_gpu(ctx, Reduction::Sum, &gx, elems)?;
                    Ok(())
                })?;
                (t_add, t_sum)
            }
        };
        rows.push(row(
            b,
            format!("add {elems}"),
            t_add,
            None,
            Some(12.0 * elems as f64),
        ));
        rows.push(row(
            b,
            format!("sum {elems}"),
            t_sum,
            None,
            Some(4.0 * elems as f64),
        ));
    }
    // The peak after the kernels, measured the same way on the same (now warm) cores.
    let cpu_peak = rows.iter().any(|r| r.on_cpu).then(measure_cpu_peak);
    if let Some(p) = &cpu_peak {
        for r in rows.iter_mut().filter(|r| r.on_cpu) {
            r.percent_of_cpu_peak = r.gflops.map(|g| 100.0 * g / p.gflops);
        }
    }
    let report = Report {
        backends: backends
            .iter()
            .map(|b| BackendInfo {
                label: b.label(),
                adapter: b.describe(),
                timing: b.timing_method().into(),
            })
            .collect(),
        cpu_peak,
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for b in &report.backends {
        println!("{}: {} (timing: {})", b.label, b.adapter, b.timing);
    }
    println!(
        "\n{:<14} {:<44} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "backend", "kernel", "median ms", "min ms", "max ms", "wall ms", "GFLOP/s", "% peak"
    );
    for r in &report.rows {
        let rate = match (r.gflops, r.gbytes_per_s) {
            (Some(g), _) => format!("{g:.2}"),
            (_, Some(gb)) => format!("{gb:.2} GB/s"),
            _ => String::new(),
        };
        let peak = r
            .percent_of_cpu_peak
            .map(|p| format!("{p:.1}%"))
            .unwrap_or_default();
        println!(
            "{:<14} {:<44} {:>10.3} {:>10.3} {:>10.3} {:>10} {:>10} {:>8}",
            r.backend,
            r.kernel,
            r.timing.median_ms,
            r.timing.min_ms,
            r.timing.max_ms,
            r.timing.wall_column(3),
            rate,
            peak
        );
    }
    println!("\nwall ms: on wgpu with timestamp queries the median/min/max columns (and GFLOP/s) are summed kernel time; wall ms is the median wall-clock of the same repeats, submission and synchronize included.");
    if let Some(p) = &report.cpu_peak {
        println!(
            "% peak: against this cpu's f32 peak measured in this run, {:.1} GFLOP/s ({} threads at once, independent {} chains in registers); cpu backend and llvmpipe rows only (llvmpipe runs on the same cores).",
            p.gflops, p.threads, p.isa
        );
    }
    Ok(())
}

fn row(b: &Backend, kernel: String, t: Timing, flops: Option<f64>, bytes: Option<f64>) -> Row {
    let secs = t.median_ms / 1e3;
    Row {
        backend: b.label(),
        kernel,
        timing: t,
        gflops: flops.map(|f| f / secs / 1e9),
        gbytes_per_s: bytes.map(|by| by / secs / 1e9),
        percent_of_cpu_peak: None,
        on_cpu: match b {
            Backend::Cpu => true,
            Backend::Wgpu(ctx) => ctx.adapter.is_cpu,
        },
    }
}
