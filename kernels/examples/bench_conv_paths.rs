//! The cpu convolution paths side by side on ResNet-8's and the CIFAR-10 CNN's layers
//! (batch 32): forward and weight gradient, im2col + GEMM against the direct FMA tiles,
//! timed interleaved in one process (every path gives the same bits; this measures
//! speed only). `cargo run --release -p rbd-kernels --example bench_conv_paths [ROUNDS]`.

use rbd_kernels::conv::*;
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let layers = [
        ("resnet8 conv 3→16, 32×32", (3, 32, 32, 16, 3, 1)),
        ("resnet8 conv 16→16, 32×32", (16, 32, 32, 16, 3, 1)),
        ("resnet8 conv 16→32 /2", (16, 32, 32, 32, 3, 2)),
        ("resnet8 conv 32→32, 16×16", (32, 16, 16, 32, 3, 1)),
        ("resnet8 1×1 16→32 /2", (16, 32, 32, 32, 1, 2)),
        ("resnet8 conv 32→64 /2", (32, 16, 16, 64, 3, 2)),
        ("resnet8 conv 64→64, 8×8", (64, 8, 8, 64, 3, 1)),
    ];
    // The CIFAR-10 CNN: 3×3 valid convolutions, a 2×2 pool after the first two.
    let cnn = [
        ("cnn conv 3→32, 32×32", (3, 32, 32, 32, 3, 1)),
        ("cnn conv 32→64, 15×15", (32, 15, 15, 64, 3, 1)),
        ("cnn conv 64→64, 6×6", (64, 6, 6, 64, 3, 1)),
    ];
    let layers = layers
        .into_iter()
        .map(|l| (l, Padding::Same))
        .chain(cnn.into_iter().map(|l| (l, Padding::Valid)));
    let paths = ConvPath::available();
    println!("batch 32; min / 25th percentile of {rounds} calls per path, interleaved; ms");
    print!("{:<28} {:<8}", "layer", "op");
    for p in &paths {
        print!(" {:>22}", format!("{p:?}"));
    }
    println!();
    for ((name, (c, h, w, o, k, st)), pad) in layers {
        let s = Conv2dShape::new(32, c, h, w, o, k, k, st, pad).unwrap();
        let x: Vec<f32> = (0..s.x_len())
            .map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5)
            .collect();
        let wt: Vec<f32> = (0..s.w_len())
            .map(|i| ((i * 104729) % 1009) as f32 / 1009.0 - 0.5)
            .collect();
        let dy: Vec<f32> = (0..s.y_len())
            .map(|i| ((i * 31) % 997) as f32 / 997.0 - 0.5)
            .collect();
        for op in ["forward", "weight"] {
            let mut times = vec![Vec::new(); paths.len()];
            let mut y = vec![0f32; s.y_len()];
            let mut dw = vec![0f32; s.w_len()];
            for _ in 0..rounds {
                for (i, &p) in paths.iter().enumerate() {
                    let t = Instant::now();
                    if op == "forward" {
                        conv2d_cpu_with(&s, &x, &wt, &mut y, p);
                    } else {
                        conv2d_backward_weight_cpu_with(&s, &x, &dy, &mut dw, p);
                    }
                    times[i].push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            print!("{name:<28} {op:<8}");
            for t in &mut times {
                t.sort_by(|a, b| a.partial_cmp(b).unwrap());
                print!(" {:>22}", format!("{:.3} / {:.3}", t[0], t[t.len() / 4]));
            }
            println!();
        }
    }
}
