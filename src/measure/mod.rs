//! Measuring, in one place: `rbd profile` (`profile`: where one training step's time
//! goes), `rbd bench` (`bench`: kernels, the random-bases step, whole optimiser steps),
//! both running the one step harness (`step`: the trainer's oracle and the optimiser
//! factory), and the timing every one of them reports (`Timing`, `measure`: repeated
//! measurements with warm-up, median and spread, on a `Backend`).

pub mod bench;
pub mod profile;
pub mod step;

use anyhow::Result;
use rbd_kernels::GpuContext;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// Median and spread of repeated timings, in milliseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Timing {
    /// Median.
    pub median_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Timed repeats.
    pub repeats: usize,
    /// On wgpu with timestamp queries, `median_ms` is the summed kernel time; this is
    /// the median wall-clock of the same repeats (submission, host bookkeeping and
    /// waiting included, up to the final synchronize). None where `median_ms` is
    /// already wall-clock.
    pub wall_median_ms: Option<f64>,
}

impl Timing {
    /// Median and spread of `samples` (at least one).
    pub fn of(mut samples: Vec<f64>) -> Timing {
        samples.sort_by(|a, b| a.total_cmp(b));
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            0.5 * (samples[n / 2 - 1] + samples[n / 2])
        };
        Timing {
            median_ms: median,
            min_ms: samples[0],
            max_ms: samples[n - 1],
            repeats: n,
            wall_median_ms: None,
        }
    }

    /// The wall-clock median column: "-" where the timing is wall-clock itself.
    pub fn wall_column(&self, decimals: usize) -> String {
        self.wall_median_ms
            .map(|w| format!("{w:.decimals$}"))
            .unwrap_or_else(|| "-".into())
    }
}

/// A backend to measure on.
pub enum Backend {
    /// Native Rust.
    Cpu,
    /// A wgpu adapter.
    Wgpu(Arc<GpuContext>),
}

impl Backend {
    /// Short label for tables.
    pub fn label(&self) -> String {
        match self {
            Backend::Cpu => "cpu".into(),
            Backend::Wgpu(ctx) => format!("wgpu/{}", ctx.adapter.backend.to_lowercase()),
        }
    }
    /// Adapter line.
    pub fn describe(&self) -> String {
        match self {
            Backend::Cpu => rbd_engine::Device::Cpu.describe(),
            Backend::Wgpu(ctx) => ctx.describe(),
        }
    }
    /// How times are taken.
    pub fn timing_method(&self) -> &'static str {
        match self {
            Backend::Cpu => "wall-clock",
            Backend::Wgpu(ctx) if ctx.has_timestamps() => "gpu-timestamps",
            Backend::Wgpu(_) => {
                "wall-clock after synchronize (the adapter has no timestamp queries)"
            }
        }
    }
}

/// The backends named by `--backends`: all (cpu and every wgpu adapter), cpu, wgpu
/// (every adapter), gpu (every GPU, by the one rule of `rbd_kernels::gpu`'s adapter
/// module that `--device gpu` uses too) or wgpu-cpu (the first CPU adapter, e.g.
/// llvmpipe). A device seen through several backends is measured once.
pub fn backends(which: &str) -> Result<Vec<Backend>> {
    if !["all", "cpu", "wgpu", "gpu", "wgpu-cpu"].contains(&which) {
        anyhow::bail!("--backends: '{which}' (expected all, cpu, wgpu, gpu or wgpu-cpu)");
    }
    let mut out = Vec::new();
    if which == "all" || which == "cpu" {
        out.push(Backend::Cpu);
    }
    if which == "cpu" {
        return Ok(out);
    }
    let adapters = rbd_kernels::gpu::list_adapters();
    if adapters.is_empty() {
        eprintln!("note: no wgpu adapter (apt-get install -y mesa-vulkan-drivers for llvmpipe)");
    }
    let first_cpu = adapters.iter().position(|a| a.is_cpu);
    for (i, a) in adapters.iter().enumerate() {
        let wanted = match which {
            "gpu" => a.is_gpu(),
            "wgpu-cpu" => Some(i) == first_cpu,
            _ => true,
        };
        if !wanted {
            continue;
        }
        match GpuContext::with_adapter(i) {
            Ok(ctx) => out.push(Backend::Wgpu(ctx)),
            Err(e) => eprintln!("note: skipping adapter #{i}: {e}"),
        }
    }
    if out.is_empty() {
        anyhow::bail!("--backends {which}: no such adapter here (see `rbd devices`)");
    }
    Ok(out)
}

/// Times `f` on `backend`: `warmup` untimed runs, then `repeats` timed ones. On wgpu
/// the time is the GPU time of the dispatches (timestamp queries) where the adapter
/// has them, with the wall-clock (including a synchronize) beside it, else wall-clock.
pub fn measure(
    backend: &Backend,
    warmup: usize,
    repeats: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Timing> {
    for _ in 0..warmup {
        f()?;
        if let Backend::Wgpu(ctx) = backend {
            ctx.synchronize()?;
        }
    }
    let mut samples = Vec::with_capacity(repeats);
    let mut walls = Vec::with_capacity(repeats);
    let mut stamped = false;
    for _ in 0..repeats.max(1) {
        match backend {
            Backend::Cpu => {
                let t = Instant::now();
                f()?;
                samples.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Backend::Wgpu(ctx) => {
                let (ran, t) = ctx.time_kernels(|| Ok(f()))?;
                ran?;
                walls.push(t.wall_ns / 1e6);
                stamped |= t.kernel_ns.is_some();
                samples.push(t.kernel_ns.unwrap_or(t.wall_ns) / 1e6);
            }
        }
    }
    let mut t = Timing::of(samples);
    if stamped {
        t.wall_median_ms = Some(Timing::of(walls).median_ms);
    }
    Ok(t)
}
