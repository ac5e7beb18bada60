//! Fused bias + ReLU against the unfused ops it replaces (bias_add, relu, relu_backward,
//! sum_rows / sum_channels), bitwise on each backend, and WGSL against the cpu.

use proptest::prelude::*;
use rbd_kernels::bias_relu::*;
use rbd_kernels::elementwise::{
    bias_add_cpu, bias_add_gpu, binary_cpu, binary_gpu, unary_cpu, unary_gpu, Binary, Unary,
};
use rbd_kernels::reduce::{sum_channels_cpu, sum_channels_gpu, sum_rows_cpu, sum_rows_gpu};
use rbd_kernels::testing::{assert_close, cases, cpu_adapter, splitmix64};
use rbd_kernels::GpuContext;

/// Values in [-1, 1) (splitmix64); every 7th input is made exactly −bias so that
/// x + b = 0 (ReLU's boundary) occurs, and every 5th gradient is 0.
fn inputs(n: usize, c: usize, inner: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut words = splitmix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1));
    let mut next = || {
        let z = words.next().expect("endless");
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let bias: Vec<f32> = (0..c).map(|_| next() * 0.5).collect();
    let len = n * c * inner;
    let x: Vec<f32> = (0..len)
        .map(|i| {
            let v = next();
            if i % 7 == 3 {
                -bias[(i / inner) % c]
            } else {
                v
            }
        })
        .collect();
    let dy: Vec<f32> = (0..len)
        .map(|i| if i % 5 == 1 { 0.0 } else { next() })
        .collect();
    (x, bias, dy)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The unfused cpu path: y = relu(x + b); dx = relu_backward(dy, x + b); db = Σ dx.
fn unfused_cpu(
    x: &[f32],
    b: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    inner: usize,
) -> [Vec<f32>; 3] {
    let len = x.len();
    let mut z = vec![0.0; len];
    bias_add_cpu(x, b, inner, &mut z);
    let mut y = vec![0.0; len];
    unary_cpu(Unary::Relu, &z, &mut y);
    let mut dx = vec![0.0; len];
    binary_cpu(Binary::ReluBackward, dy, &z, &mut dx);
    let mut db = vec![0.0; c];
    if inner == 1 {
        sum_rows_cpu(&dx, n, c, &mut db);
    } else {
        sum_channels_cpu(&dx, n, c, inner, &mut db);
    }
    [y, dx, db]
}

fn fused_cpu(x: &[f32], b: &[f32], dy: &[f32], n: usize, c: usize, inner: usize) -> [Vec<f32>; 3] {
    let mut y = vec![f32::NAN; x.len()];
    bias_relu_cpu(x, b, inner, &mut y);
    let mut dx = vec![f32::NAN; x.len()];
    let mut db = vec![f32::NAN; c];
    bias_relu_backward_cpu(&y, dy, n, c, inner, &mut dx, &mut db);
    [y, dx, db]
}

fn unfused_gpu(
    ctx: &GpuContext,
    x: &[f32],
    b: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    inner: usize,
) -> [Vec<f32>; 3] {
    let len = x.len();
    let (gx, gb, gdy) = (upload(ctx, x), upload(ctx, b), upload(ctx, dy));
    let z = bias_add_gpu(ctx, &gx, &gb, len, inner, c).unwrap();
    let y = unary_gpu(ctx, Unary::Relu, &z, len).unwrap();
    let dx = binary_gpu(ctx, Binary::ReluBackward, &gdy, &z, len).unwrap();
    let db = if inner == 1 {
        sum_rows_gpu(ctx, &dx, n, c).unwrap()
    } else {
        sum_channels_gpu(ctx, &dx, n, c, inner).unwrap()
    };
    [
        ctx.read(&y, len).unwrap(),
        ctx.read(&dx, len).unwrap(),
        ctx.read(&db, c).unwrap(),
    ]
}

fn fused_gpu(
    ctx: &GpuContext,
    x: &[f32],
    b: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    inner: usize,
) -> [Vec<f32>; 3] {
    let len = x.len();
    let (gx, gb, gdy) = (upload(ctx, x), upload(ctx, b), upload(ctx, dy));
    let y = bias_relu_gpu(ctx, &gx, &gb, len, inner, c).unwrap();
    let (dx, db) = bias_relu_backward_gpu(ctx, &y, &gdy, n, c, inner).unwrap();
    [
        ctx.read(&y, len).unwrap(),
        ctx.read(&dx, len).unwrap(),
        ctx.read(&db, c).unwrap(),
    ]
}

fn upload(ctx: &GpuContext, v: &[f32]) -> rbd_kernels::GpuBuffer {
    ctx.upload(bytemuck::cast_slice(v)).unwrap()
}

/// Checks one shape: fused == unfused bitwise on the cpu and on the device, device ≈ cpu.
fn check(n: usize, c: usize, inner: usize, seed: u64) {
    let (x, b, dy) = inputs(n, c, inner, seed);
    let what = ["forward", "dx", "db"];
    let cpu = fused_cpu(&x, &b, &dy, n, c, inner);
    for ((w, f), u) in what
        .iter()
        .zip(&cpu)
        .zip(unfused_cpu(&x, &b, &dy, n, c, inner))
    {
        assert_eq!(
            bits(f),
            bits(&u),
            "cpu {w} [{n}, {c}, {inner}]: fused differs from unfused"
        );
    }
    let ctx = cpu_adapter();
    let gpu = fused_gpu(&ctx, &x, &b, &dy, n, c, inner);
    for ((w, f), u) in what
        .iter()
        .zip(&gpu)
        .zip(unfused_gpu(&ctx, &x, &b, &dy, n, c, inner))
    {
        assert_eq!(
            bits(f),
            bits(&u),
            "wgsl {w} [{n}, {c}, {inner}]: fused differs from unfused"
        );
    }
    // The device's sums run in another (fixed) order than the cpu's.
    let count = (n * inner) as f32;
    for ((w, g), c) in what.iter().zip(&gpu).zip(&cpu) {
        assert_close(
            &format!("wgsl vs cpu {w} [{n}, {c:?}, {inner}]"),
            g,
            c,
            1e-6 * count.max(1.0),
            1e-6,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(12)))]

    #[test]
    fn dense_matches_unfused(rows in 1usize..300, cols in prop::sample::select(vec![1usize, 3, 10, 64, 130, 257]), seed in any::<u64>()) {
        check(rows, cols, 1, seed);
    }

    #[test]
    fn channels_match_unfused(
        n in 1usize..40, c in 1usize..6,
        inner in prop::sample::select(vec![2usize, 9, 16, 169, 255, 256, 257, 900, 4097]),
        seed in any::<u64>(),
    ) {
        check(n, c, inner, seed);
    }
}

/// Sums that take several `sum_rows` passes: 4200 rows (3 levels), and 70 image blocks of
/// 2 images (sum_channels then 2 levels).
#[test]
fn multi_level_sums_match_unfused() {
    check(4200, 3, 1, 7);
    check(140, 2, 2048, 8);
}

#[test]
fn bias_relu_zeroes_negatives_and_passes_gradient_where_positive() {
    // x + b = [1.5, -0.5, 0, 2.25] per column bias [0.5, -1.5]: a hand-checked case.
    let x = [1.0f32, 1.0, -0.5, 3.75];
    let b = [0.5f32, -1.5];
    let mut y = [0.0f32; 4];
    bias_relu_cpu(&x, &b, 1, &mut y);
    assert_eq!(y, [1.5, 0.0, 0.0, 2.25]);
    let dy = [10.0f32, 20.0, 30.0, 40.0];
    let (mut dx, mut db) = ([0.0f32; 4], [0.0f32; 2]);
    bias_relu_backward_cpu(&y, &dy, 2, 2, 1, &mut dx, &mut db);
    assert_eq!(dx, [10.0, 0.0, 0.0, 40.0]);
    assert_eq!(db, [10.0, 40.0]);
}

/// The unfused pooled path on the cpu: bias + ReLU, max pool; max-pool backward, then
/// the bias + ReLU backward on the unpooled activation.
fn unfused_pool_cpu(
    x: &[f32],
    b: &[f32],
    dy: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
) -> [Vec<f32>; 3] {
    use rbd_kernels::pool::{maxpool2x2_backward_cpu, maxpool2x2_cpu};
    let mut a = vec![0.0; x.len()];
    bias_relu_cpu(x, b, h * w, &mut a);
    let mut y = vec![0.0; dy.len()];
    let mut am = vec![0u32; dy.len()];
    maxpool2x2_cpu(n, c, h, w, &a, &mut y, &mut am);
    let mut da = vec![0.0; x.len()];
    maxpool2x2_backward_cpu(n, c, h, w, dy, &am, &mut da);
    let (mut dx, mut db) = (vec![0.0; x.len()], vec![0.0; c]);
    bias_relu_backward_cpu(&a, &da, n, c, h * w, &mut dx, &mut db);
    [y, dx, db]
}

fn unfused_pool_gpu(
    ctx: &GpuContext,
    x: &[f32],
    b: &[f32],
    dy: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
) -> [Vec<f32>; 3] {
    use rbd_kernels::pool::{maxpool2x2_backward_gpu, maxpool2x2_gpu};
    let (gx, gb, gdy) = (upload(ctx, x), upload(ctx, b), upload(ctx, dy));
    let a = bias_relu_gpu(ctx, &gx, &gb, x.len(), h * w, c).unwrap();
    let (y, am) = maxpool2x2_gpu(ctx, n, c, h, w, &a).unwrap();
    let da = maxpool2x2_backward_gpu(ctx, n, c, h, w, &gdy, &am).unwrap();
    let (dx, db) = bias_relu_backward_gpu(ctx, &a, &da, n, c, h * w).unwrap();
    [
        ctx.read(&y, dy.len()).unwrap(),
        ctx.read(&dx, x.len()).unwrap(),
        ctx.read(&db, c).unwrap(),
    ]
}

/// The argmax of the unfused path (bias + ReLU, then `maxpool2x2_cpu`).
fn unfused_argmax(x: &[f32], b: &[f32], (n, c, h, w): (usize, usize, usize, usize)) -> Vec<u32> {
    use rbd_kernels::pool::maxpool2x2_cpu;
    let mut a = vec![0.0; x.len()];
    bias_relu_cpu(x, b, h * w, &mut a);
    let pooled = n * c * (h / 2) * (w / 2);
    let (mut y, mut am) = (vec![0.0; pooled], vec![0u32; pooled]);
    maxpool2x2_cpu(n, c, h, w, &a, &mut y, &mut am);
    am
}

/// The fused pooled forward picks the same window entry as the unfused one, ties at
/// positive values included (inputs from a few levels, so most windows tie).
#[test]
fn pooled_argmax_breaks_ties_as_unfused() {
    for (n, c, h, w) in [
        (3, 2, 30, 30),
        (2, 3, 13, 13),
        (1, 1, 65, 67),
        (4, 1, 2, 34),
    ] {
        let dims = (n, c, h, w);
        let x: Vec<f32> = (0..n * c * h * w)
            .map(|i| [0.25f32, 0.5, 0.5, -0.25, 0.5][(i * 7 + i / 3) % 5])
            .collect();
        let b: Vec<f32> = (0..c).map(|i| [0.0f32, 0.25, -0.5][i % 3]).collect();
        let pooled = n * c * (h / 2) * (w / 2);
        let (mut y, mut am) = (vec![f32::NAN; pooled], vec![u32::MAX; pooled]);
        bias_relu_maxpool2x2_cpu(n, c, h, w, &x, &b, &mut y, &mut am);
        assert_eq!(am, unfused_argmax(&x, &b, dims), "argmax {dims:?}");
    }
}

fn check_pool(n: usize, c: usize, h: usize, w: usize, seed: u64) {
    let dims = (n, c, h, w);
    let (x, b, _) = inputs(n, c, h * w, seed);
    let pooled = n * c * (h / 2) * (w / 2);
    let (_, _, dy) = inputs(pooled, 1, 1, seed ^ 5);
    let what = ["forward", "dx", "db"];
    let (mut y, mut am) = (vec![f32::NAN; pooled], vec![u32::MAX; pooled]);
    bias_relu_maxpool2x2_cpu(n, c, h, w, &x, &b, &mut y, &mut am);
    assert_eq!(
        am,
        unfused_argmax(&x, &b, dims),
        "cpu pooled argmax {dims:?}"
    );
    let (mut dx, mut db) = (vec![f32::NAN; x.len()], vec![f32::NAN; c]);
    bias_relu_maxpool2x2_backward_cpu(n, c, h, w, &y, &dy, &am, &mut dx, &mut db);
    let cpu = [y, dx, db];
    for ((wh, f), u) in what
        .iter()
        .zip(&cpu)
        .zip(unfused_pool_cpu(&x, &b, &dy, dims))
    {
        assert_eq!(
            bits(f),
            bits(&u),
            "cpu pooled {wh} {dims:?}: fused differs from unfused"
        );
    }
    let ctx = cpu_adapter();
    let (gx, gb, gdy) = (upload(&ctx, &x), upload(&ctx, &b), upload(&ctx, &dy));
    let (gy, gam) = bias_relu_maxpool2x2_gpu(&ctx, n, c, h, w, &gx, &gb).unwrap();
    let (gdx, gdb) = bias_relu_maxpool2x2_backward_gpu(&ctx, n, c, h, w, &gy, &gdy, &gam).unwrap();
    assert_eq!(
        ctx.read::<u32>(&gam, pooled).unwrap(),
        am,
        "wgsl pooled argmax {dims:?}"
    );
    let gpu = [
        ctx.read(&gy, pooled).unwrap(),
        ctx.read(&gdx, x.len()).unwrap(),
        ctx.read(&gdb, c).unwrap(),
    ];
    for ((wh, f), u) in what
        .iter()
        .zip(&gpu)
        .zip(unfused_pool_gpu(&ctx, &x, &b, &dy, dims))
    {
        assert_eq!(
            bits(f),
            bits(&u),
            "wgsl pooled {wh} {dims:?}: fused differs from unfused"
        );
    }
    let count = (n * h * w) as f32;
    for ((wh, g), cv) in what.iter().zip(&gpu).zip(&cpu) {
        assert_close(
            &format!("wgsl vs cpu pooled {wh} {dims:?}"),
            g,
            cv,
            1e-6 * count,
            1e-6,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(12)))]

    #[test]
    fn pooled_matches_unfused(
        n in 1usize..12, c in 1usize..5, h in 2usize..33, w in 2usize..33, seed in any::<u64>(),
    ) {
        check_pool(n, c, h, w, seed);
    }
}

/// The CNN's layers (30×30 and 13×13 at batch 32: several image blocks), and 70 blocks
/// of one 64×64 image (two levels of block sums).
#[test]
fn pooled_cnn_shapes_and_multi_level_sums_match_unfused() {
    check_pool(32, 3, 30, 30, 1);
    check_pool(32, 2, 13, 13, 2);
    check_pool(70, 1, 64, 64, 3);
}
