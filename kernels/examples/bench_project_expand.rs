//! One RBD update on the cpu, generate-once (`project_expand_cpu`) against project then
//! expand, interleaved, on one thread, by thread CPU time (steady on a shared machine).
//! `cargo run --release -p rbd-kernels --example bench_project_expand [D] [d] [reps]`

use rbd_kernels::random_bases::*;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(122_570);
    let dims = args.get(1).copied().unwrap_or(250);
    let reps = args.get(2).copied().unwrap_or(5);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let s = Stream::new(1);
    let comps = Compartment::whole(n, dims);
    let g: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 48.0).collect();
    let base = vec![0.5f32; n];
    let scale = rbd_scale(n);
    let mut c = vec![0f32; dims];
    let mut out = vec![0f32; n];
    let cpu = process_cpu_seconds;
    let (mut two, mut once) = (Vec::new(), Vec::new());
    pool.install(|| {
        for _ in 0..reps + 1 {
            let t = cpu();
            project_cpu(&s, 1, &comps, scale, &g, &mut c);
            expand_cpu(&s, 1, &comps, scale, &c, -0.1, &base, &mut out);
            two.push(cpu() - t);
            let t = cpu();
            project_expand_cpu(&s, 1, &comps, scale, &g, -0.1, &base, &mut c, &mut out);
            once.push(cpu() - t);
        }
    });
    let med = |v: &mut Vec<f64>| {
        v.remove(0);
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (med(&mut two), med(&mut once));
    let e = (n * dims) as f64;
    println!(
        "D = {n}, d = {dims}, 1 thread, CPU ms: project+expand {:.1} ({:.2} ns/entry), generate-once {:.1} ({:.2} ns/entry), ratio {:.2}",
        a * 1e3,
        a * 1e9 / e,
        b * 1e3,
        b * 1e9 / e,
        a / b
    );
}
