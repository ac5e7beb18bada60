//! One RBD update on the cpu, generate-once (`project_expand_cpu`) against project then
//! expand, interleaved rep by rep, on 1 thread and on every thread of the machine, by
//! wall-clock time (median of the reps after 2 warm-ups). Pause other jobs first: a
//! shared core shows up here. Run it at two commits to compare builds.
//! `cargo run --release -p rbd-kernels --example bench_project_expand [D] [d] [reps]`

use rbd_kernels::random_bases::*;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.drain(..2);
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(122_570);
    let dims = args.get(1).copied().unwrap_or(250);
    let reps = args.get(2).copied().unwrap_or(15).max(1);
    let s = Stream::new(1);
    let comps = Compartment::whole(n, dims);
    let g: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 48.0).collect();
    let base = vec![0.5f32; n];
    let scale = rbd_scale(n);
    let mut c = vec![0f32; dims];
    let mut out = vec![0f32; n];
    let e = (n * dims) as f64;
    println!(
        "D = {n}, d = {dims}, Threefry Gaussian, {:?}; wall-clock medians of {reps} reps",
        Simd::detect()
    );
    for threads in [
        1,
        std::thread::available_parallelism().map_or(1, |t| t.get()),
    ] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (mut two, mut once) = (Vec::new(), Vec::new());
        pool.install(|| {
            for _ in 0..reps + 2 {
                let t = Instant::now();
                let bases = Bases::new(s, 1, &comps, scale);
                project_cpu(&bases, &g, &mut c);
                expand_cpu(&bases, &c, -0.1, &base, &mut out);
                two.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                c = project_expand_cpu(&bases, &g, -0.1, &base, &mut out, None);
                once.push(t.elapsed().as_secs_f64());
            }
        });
        let (a, b) = (median(two), median(once));
        println!(
            "{threads} thread(s): project+expand {:.2} ms ({:.3} ns/entry), generate-once {:.2} ms ({:.3} ns/entry), ratio {:.2}",
            a * 1e3,
            a * 1e9 / e,
            b * 1e3,
            b * 1e9 / e,
            a / b
        );
    }
}
