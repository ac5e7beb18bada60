//! Throughput measurement of project, expand and (cpu) the whole step in the bases
//! (used by `rbd bench rbd` and `examples/bench_random_bases`).

use super::{
    expand_cpu, expand_gpu, project_cpu, project_expand_cpu, project_expand_cpu_phases,
    project_expand_cpu_traffic, project_expand_cpu_with, project_expand_stored, project_gpu, Bases,
    Compartment, CpuPlan, StepPhases, StepStrategy, StoredBasis,
};
use crate::gpu::GpuContext;
use crate::rng::Stream;
use crate::GpuError;
use std::time::Instant;

/// Median timings of one configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// Parameters.
    pub d_total: usize,
    /// Directions.
    pub dims: usize,
    /// Median seconds of one project pass.
    pub project_s: f64,
    /// Median seconds of one expand pass.
    pub expand_s: f64,
    /// Median CPU seconds (all threads of this process, driver threads included) of one
    /// project pass; 0 where `/proc` is unavailable.
    pub project_cpu_s: f64,
    /// Same for expand.
    pub expand_cpu_s: f64,
    /// cpu: median seconds of one step in the bases ([`super::project_expand_cpu`]
    /// under the plan in force); None on wgpu.
    pub step_s: Option<f64>,
}

impl BenchResult {
    /// Direction entries generated per pass (`dims·d_total`).
    pub fn entries(&self) -> f64 {
        self.dims as f64 * self.d_total as f64
    }
    /// Random numbers per second of the project pass.
    pub fn project_rate(&self) -> f64 {
        self.entries() / self.project_s
    }
    /// Random numbers per second of the expand pass.
    pub fn expand_rate(&self) -> f64 {
        self.entries() / self.expand_s
    }
    /// Entries of both passes over their summed time.
    pub fn combined_rate(&self) -> f64 {
        2.0 * self.entries() / (self.project_s + self.expand_s)
    }
    /// Entries of both passes per CPU-second: what one core delivers, insensitive to
    /// other processes competing for the cores.
    pub fn combined_rate_per_cpu(&self) -> f64 {
        2.0 * self.entries() / (self.project_cpu_s + self.expand_cpu_s)
    }
}

/// CPU time consumed so far by every thread of this process (from
/// `/proc/self/task/*/schedstat`), in seconds; 0 if unavailable. Threads that already
/// exited are not counted, so take differences over intervals where none exits.
pub fn process_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ns = 0u64;
    for t in dir.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 * 1e-9
}

struct Sample(Instant, f64);

impl Sample {
    fn start() -> Sample {
        Sample(Instant::now(), process_cpu_seconds())
    }
    fn stop(self) -> (f64, f64) {
        (
            self.0.elapsed().as_secs_f64(),
            process_cpu_seconds() - self.1,
        )
    }
}

#[derive(Default)]
struct Timings {
    p: Vec<(f64, f64)>,
    e: Vec<(f64, f64)>,
    s: Vec<f64>,
}

impl Timings {
    fn push(&mut self, p: (f64, f64), e: (f64, f64)) {
        self.p.push(p);
        self.e.push(e);
    }
    fn result(self, d_total: usize, dims: usize) -> BenchResult {
        let m = |v: &[(f64, f64)], cpu: bool| {
            median(v.iter().map(|x| if cpu { x.1 } else { x.0 }).collect())
        };
        BenchResult {
            d_total,
            dims,
            project_s: m(&self.p, false),
            expand_s: m(&self.e, false),
            project_cpu_s: m(&self.p, true),
            expand_cpu_s: m(&self.e, true),
            step_s: (!self.s.is_empty()).then(|| median(self.s)),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn test_vector(n: usize, salt: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32 ^ salt).wrapping_mul(0x9E37_79B9) >> 8;
            h as f32 / 16_777_216.0 - 0.5
        })
        .collect()
}

/// Times project, expand and the step (project_expand) on the cpu backend: one
/// warm-up, then the median of `repeats` runs of each.
pub fn bench_cpu(stream: &Stream, d_total: usize, dims: usize, repeats: usize) -> BenchResult {
    let comps = Compartment::whole(d_total, dims);
    let g = test_vector(d_total, 1);
    let theta = test_vector(d_total, 2);
    let scale = super::rbd_scale(d_total);
    let mut coords = vec![0f32; dims];
    let mut out = vec![0f32; d_total];
    let mut t = Timings::default();
    for i in 0..=repeats.max(1) {
        let bases = Bases::new(*stream, i as u64, &comps, scale);
        let s = Sample::start();
        project_cpu(&bases, &g, &mut coords);
        let p = s.stop();
        let s = Sample::start();
        expand_cpu(&bases, &coords, -0.1, &theta, &mut out);
        let e = s.stop();
        let s = Sample::start();
        std::hint::black_box(project_expand_cpu(&bases, &g, -0.1, &theta, &mut out, None));
        let step = s.stop().0;
        if i > 0 {
            t.push(p, e);
            t.s.push(step);
        }
    }
    std::hint::black_box(&out);
    t.result(d_total, dims)
}

/// Times project and expand through wgpu on `ctx` (wall time of submit + wait per
/// pass, after a warm-up that compiles the pipelines).
pub fn bench_gpu(
    ctx: &GpuContext,
    stream: &Stream,
    d_total: usize,
    dims: usize,
    repeats: usize,
) -> Result<BenchResult, GpuError> {
    let comps = Compartment::whole(d_total, dims);
    let g = ctx.upload(bytemuck::cast_slice(&test_vector(d_total, 1)))?;
    let theta = ctx.upload(bytemuck::cast_slice(&test_vector(d_total, 2)))?;
    let scale = super::rbd_scale(d_total);
    let mut t = Timings::default();
    ctx.synchronize()?;
    for i in 0..=repeats.max(1) {
        let bases = Bases::new(*stream, i as u64, &comps, scale);
        let s = Sample::start();
        let coords = project_gpu(ctx, &bases, &g)?;
        ctx.synchronize()?;
        let p = s.stop();
        let s = Sample::start();
        let out = expand_gpu(ctx, &bases, &coords, -0.1, &theta)?;
        ctx.synchronize()?;
        let e = s.stop();
        drop(out);
        if i > 0 {
            t.push(p, e);
        }
    }
    Ok(t.result(d_total, dims))
}

/// The cpu step (project_expand) under each of `plans`, one compartment of `d_total`
/// entries and `dims` directions: one warm-up, then `repeats` rounds that run every
/// plan once in turn (so a change of load hits them alike); the median wall seconds
/// of each plan, in the order given.
pub fn bench_cpu_plans(
    stream: &Stream,
    d_total: usize,
    dims: usize,
    plans: &[CpuPlan],
    repeats: usize,
) -> Vec<f64> {
    let comps = Compartment::whole(d_total, dims);
    let g = test_vector(d_total, 1);
    let theta = test_vector(d_total, 2);
    let scale = super::rbd_scale(d_total);
    let mut out = vec![0f32; d_total];
    let mut times = vec![Vec::new(); plans.len()];
    for i in 0..=repeats.max(1) {
        let bases = Bases::new(*stream, i as u64, &comps, scale);
        for (plan, t) in plans.iter().zip(&mut times) {
            let s = Instant::now();
            std::hint::black_box(project_expand_cpu_with(
                plan, &bases, &g, -0.1, &theta, &mut out, None,
            ));
            if i > 0 {
                t.push(s.elapsed().as_secs_f64());
            }
        }
    }
    std::hint::black_box(&out);
    times.into_iter().map(median).collect()
}

/// Where the cpu step in the bases spends its time, one compartment of `d_total`
/// entries and `dims` directions (medians of `repeats` interleaved rounds after one
/// warm-up, wall seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseBench {
    /// Project alone: every entry generated once, dot products with g.
    pub project_s: f64,
    /// Expand alone: every entry generated once, axpys into the update.
    pub expand_s: f64,
    /// The step (project_expand) under `plan`, timed by phase.
    pub step_s: f64,
    /// The same step with alpha = 0: every weight is 0, so the pass that adds the
    /// kept block's weighted directions skips them (it still generates, projects and
    /// keeps each block); `step_s − no_expand_s` is the expansion from the kept blocks.
    pub no_expand_s: f64,
    /// The generate-once step with counter bits for values
    /// ([`super::project_expand_cpu_traffic`]): its memory traffic and bookkeeping
    /// alone. `None` under a two-pass plan (nothing is kept).
    pub traffic_s: Option<f64>,
    /// The step on a kept basis ([`super::project_expand_stored`], FPD's: the same
    /// directions every round, kept before the rounds): every entry read from memory
    /// once. `None` where the stream's bases are not kept (packed signs).
    pub kept_s: Option<f64>,
    /// Bytes of that kept basis.
    pub kept_bytes: usize,
    /// The step's phases (each field the median over rounds).
    pub phases: StepPhases,
}

/// Times project, expand, the step under `plan` with its phases, and the step with
/// the expansion skipped, interleaved round by round (so a change of load hits them
/// alike).
pub fn bench_cpu_phases(
    stream: &Stream,
    d_total: usize,
    dims: usize,
    plan: &CpuPlan,
    repeats: usize,
) -> PhaseBench {
    let comps = Compartment::whole(d_total, dims);
    let g = test_vector(d_total, 1);
    let theta = test_vector(d_total, 2);
    let scale = super::rbd_scale(d_total);
    let mut coords = vec![0f32; dims];
    let mut out = vec![0f32; d_total];
    let mut t: [Vec<f64>; 6] = Default::default();
    let mut ph: Vec<StepPhases> = Vec::new();
    let once = plan.strategy(stream.distribution) == StepStrategy::GenerateOnce;
    let fixed = Bases::new(*stream, 0, &comps, scale);
    let kept = StoredBasis::generate(plan.simd, &fixed);
    for i in 0..=repeats.max(1) {
        let bases = Bases::new(*stream, i as u64, &comps, scale);
        let s = Instant::now();
        project_cpu(&bases, &g, &mut coords);
        let p = s.elapsed().as_secs_f64();
        let s = Instant::now();
        expand_cpu(&bases, &coords, -0.1, &theta, &mut out);
        let e = s.elapsed().as_secs_f64();
        let s = Instant::now();
        let (c, phases) = project_expand_cpu_phases(plan, &bases, &g, -0.1, &theta, &mut out);
        let step = s.elapsed().as_secs_f64();
        std::hint::black_box(c);
        let s = Instant::now();
        std::hint::black_box(project_expand_cpu_with(
            plan, &bases, &g, 0.0, &theta, &mut out, None,
        ));
        let skip = s.elapsed().as_secs_f64();
        let s = Instant::now();
        if once {
            project_expand_cpu_traffic(plan, &bases, &g, -0.1, &theta, &mut out);
        }
        let traffic = s.elapsed().as_secs_f64();
        let s = Instant::now();
        if let Some(k) = &kept {
            let step = (&fixed, &g[..], -0.1);
            std::hint::black_box(project_expand_stored(plan, k, step, &theta, &mut out, None));
        }
        let on_kept = s.elapsed().as_secs_f64();
        if i > 0 {
            for (v, x) in t.iter_mut().zip([p, e, step, skip, traffic, on_kept]) {
                v.push(x);
            }
            ph.push(phases);
        }
    }
    std::hint::black_box(&out);
    let field = |f: fn(&StepPhases) -> f64| median(ph.iter().map(f).collect());
    let [p, e, step, skip, traffic, on_kept] = t;
    PhaseBench {
        project_s: median(p),
        expand_s: median(e),
        step_s: median(step),
        no_expand_s: median(skip),
        traffic_s: once.then(|| median(traffic)),
        kept_s: kept.as_ref().map(|_| median(on_kept)),
        kept_bytes: kept.as_ref().map_or(0, StoredBasis::bytes),
        phases: StepPhases {
            setup_s: field(|p| p.setup_s),
            passes_s: field(|p| p.passes_s),
            passes: ph.first().map_or(0, |p| p.passes),
            busy_s: field(|p| p.busy_s),
            coords_s: field(|p| p.coords_s),
            finish_s: field(|p| p.finish_s),
        },
    }
}
