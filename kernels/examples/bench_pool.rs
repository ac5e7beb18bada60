//! The CNN's fused bias + ReLU + 2×2 max pool on the cpu, forward and backward, at the
//! CIFAR-10 CNN's two pooled layers (batch 32), by wall-clock time (median of the reps
//! after 2 warm-ups), on every thread of the machine. Pause other jobs first. Run it
//! at two commits to compare builds.
//! `cargo run --release -p rbd-kernels --example bench_pool [reps]`

use rbd_kernels::bias_relu::{bias_relu_maxpool2x2_backward_cpu, bias_relu_maxpool2x2_cpu};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.drain(..2);
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(51)
        .max(3);
    for (n, c, h, w) in [(32, 32, 30, 30), (32, 64, 13, 13)] {
        let len = n * c * h * w;
        let pooled = n * c * (h / 2) * (w / 2);
        let x: Vec<f32> = (0..len)
            .map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 504.0)
            .collect();
        let bias: Vec<f32> = (0..c).map(|i| (i as f32 - 16.0) / 64.0).collect();
        let dy: Vec<f32> = (0..pooled).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
        let (mut y, mut am) = (vec![0f32; pooled], vec![0u32; pooled]);
        let (mut dx, mut db) = (vec![0f32; len], vec![0f32; c]);
        let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let t = Instant::now();
            bias_relu_maxpool2x2_cpu(n, c, h, w, &x, &bias, &mut y, &mut am);
            fwd.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            bias_relu_maxpool2x2_backward_cpu(n, c, h, w, &y, &dy, &am, &mut dx, &mut db);
            bwd.push(t.elapsed().as_secs_f64());
        }
        println!(
            "[{n}, {c}, {h}, {w}]: forward {:.3} ms, backward {:.3} ms ({} threads; checksum {:.3})",
            median(fwd) * 1e3,
            median(bwd) * 1e3,
            rayon::current_num_threads(),
            y.iter().sum::<f32>() + db.iter().sum::<f32>()
        );
    }
}
