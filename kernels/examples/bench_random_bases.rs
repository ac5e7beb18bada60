//! Random numbers per second of the fused random-bases passes (project: coords = Φᵀg;
//! expand: θ + α·Φc) on the native cpu backend and on the wgpu CPU adapter (llvmpipe),
//! for both generators and all three distributions, at the CIFAR-10 CNN's D = 122,570,
//! d = 250 (and d = 10^4 on the cpu backend). Median of several runs after a warm-up;
//! "per CPU-s" divides by the CPU time of all the process's threads instead of wall
//! time (what one core delivers, whatever else runs on the machine).
//!
//! `cargo run --release -p rbd-kernels --example bench_random_bases -- [--quick]
//! [--no-cpu] [--no-gpu] [--simd]` (`--simd`: every instruction-set level, one thread,
//! best of 8); `-- --one S L`: stream S (0..6) at level L, one thread, CPU ns per entry.

use rbd_kernels::gpu::{DeviceKind, GpuContext};
use rbd_kernels::random_bases::{
    bench_cpu, bench_gpu, expand_cpu_with, project_cpu_with, rbd_scale, Bases, BenchResult,
    Compartment, Distribution, Simd, Stream,
};
use std::time::Instant;

const D: usize = 122_570;

fn line(backend: &str, s: &Stream, r: &BenchResult) {
    println!(
        "{backend:<8} {:<16} {:<15} d={:<6} project {:>8.2} ms {:>5.0} M/s  expand {:>8.2} ms {:>5.0} M/s  both {:>5.0} M/s wall, {:>5.0} M/s per CPU-s",
        s.generator.name(),
        s.distribution.name(),
        r.dims,
        r.project_s * 1e3,
        r.project_rate() / 1e6,
        r.expand_s * 1e3,
        r.expand_rate() / 1e6,
        r.combined_rate() / 1e6,
        r.combined_rate_per_cpu() / 1e6
    );
}

fn streams() -> Vec<Stream> {
    let distributions = [
        Distribution::Gaussian,
        Distribution::Uniform,
        Distribution::Bernoulli { p: 0.5 },
    ];
    rbd_kernels::testing::streams(42, &distributions)
}

fn cpu_benches(quick: bool) {
    println!(
        "D = {D}; cpu backend: {} rayon threads, {:?}",
        rayon::current_num_threads(),
        Simd::detect()
    );
    for s in streams() {
        line("cpu", &s, &bench_cpu(&s, D, 250, if quick { 3 } else { 7 }));
    }
    if !quick {
        for s in streams() {
            line("cpu", &s, &bench_cpu(&s, D, 10_000, 3));
        }
    }
}

fn simd_benches() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let comps = Compartment::whole(D, 250);
    let g = vec![0.5f32; D];
    let scale = rbd_scale(D);
    for simd in Simd::available() {
        for s in streams() {
            let mut c = vec![0f32; 250];
            let mut out = vec![0f32; D];
            let mut best = [f64::MAX; 4];
            pool.install(|| {
                for i in 0..8 {
                    let (t, u) = (Instant::now(), thread_cpu_seconds());
                    project_cpu_with(simd, &Bases::new(s, i, &comps, scale), &g, &mut c);
                    let p = (t.elapsed().as_secs_f64(), thread_cpu_seconds() - u);
                    let (t, u) = (Instant::now(), thread_cpu_seconds());
                    expand_cpu_with(
                        simd,
                        &Bases::new(s, i, &comps, scale),
                        &c,
                        -1.0,
                        &g,
                        &mut out,
                    );
                    let e = (t.elapsed().as_secs_f64(), thread_cpu_seconds() - u);
                    for (b, x) in best.iter_mut().zip([p.0, e.0, p.1, e.1]) {
                        *b = b.min(x);
                    }
                }
            });
            let r = BenchResult {
                d_total: D,
                dims: 250,
                project_s: best[0],
                expand_s: best[1],
                project_cpu_s: best[2],
                expand_cpu_s: best[3],
                step_s: None,
            };
            line(&format!("{simd:?}/1"), &s, &r);
        }
    }
}

fn one(s: &Stream, simd: Simd) {
    let comps = Compartment::whole(D, 250);
    let g = vec![0.5f32; D];
    let (mut c, mut out) = (vec![0f32; 250], vec![0f32; D]);
    let entries = 250.0 * D as f64;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        for i in 0..20 {
            let u = thread_cpu_seconds();
            project_cpu_with(simd, &Bases::new(*s, i, &comps, 0.01), &g, &mut c);
            let p = thread_cpu_seconds() - u;
            let u = thread_cpu_seconds();
            expand_cpu_with(simd, &Bases::new(*s, i, &comps, 0.01), &c, -1.0, &g, &mut out);
            let e = thread_cpu_seconds() - u;
            if i % 5 == 4 {
                println!(
                    "{simd:?} {} {}: project {:.2} ns/entry, expand {:.2} ns/entry (thread CPU time)",
                    s.generator.name(),
                    s.distribution.name(),
                    p * 1e9 / entries,
                    e * 1e9 / entries
                );
            }
        }
    });
}

/// CPU time of the calling thread in seconds (0 without `/proc`).
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0) as f64
        * 1e-9
}

fn gpu_benches(quick: bool) {
    match GpuContext::new(DeviceKind::Cpu) {
        Ok(ctx) => {
            println!("{}", ctx.describe());
            for s in streams() {
                match bench_gpu(&ctx, &s, D, 250, if quick { 2 } else { 5 }) {
                    Ok(r) => line("wgpu", &s, &r),
                    Err(e) => println!("wgpu {}: {e}", s.generator.name()),
                }
            }
        }
        Err(e) => println!("no CPU wgpu adapter: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let quick = has("--quick");
    if let Some(i) = args.iter().position(|a| a == "--one") {
        // --one <stream 0..6> <level index into Simd::available()>: 20 single-thread
        // passes at d = 250, reporting thread CPU nanoseconds per entry (for profilers).
        let s = streams()[args[i + 1].parse::<usize>().unwrap()];
        let simd = Simd::available()[args[i + 2].parse::<usize>().unwrap()];
        one(&s, simd);
        return;
    }
    if !has("--no-cpu") {
        cpu_benches(quick);
    }
    if has("--simd") {
        simd_benches();
    }
    if !has("--no-gpu") {
        gpu_benches(quick);
    }
}
