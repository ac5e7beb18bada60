//! The wgpu runtime's bookkeeping: what a repeated step costs in creations, submits and
//! readbacks (from `gpu::counters`), and the orderings its rings must keep. The
//! counters are process-wide, so these tests take one lock and run one at a time.

use rbd_kernels::elementwise::{axpy_gpu, unary_cpu, unary_gpu, Unary};
use rbd_kernels::gpu::{counters, GpuContext};
use rbd_kernels::reduce::{reduce_gpu, Reduction};
use rbd_kernels::testing::test_adapter;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001)
        .map(|v| v as f32 / 1000.0 - 1.0)
        .collect()
}

/// A miniature training step: upload a batch, two element-wise kernels, an update of
/// the persistent θ and a reduction, then one flush.
fn step(ctx: &GpuContext, theta: &mut rbd_kernels::GpuBuffer, n: usize, seed: u32) {
    let x = ctx.upload(bytemuck::cast_slice(&values(n, seed))).unwrap();
    let h = unary_gpu(ctx, Unary::Relu, &x, n).unwrap();
    let g = unary_gpu(ctx, Unary::Scale(0.5), &h, n).unwrap();
    *theta = axpy_gpu(ctx, -0.1, &g, theta, n).unwrap();
    let _loss = reduce_gpu(ctx, Reduction::Sum, theta, n).unwrap();
    ctx.flush().unwrap();
}

#[test]
fn a_steady_state_step_creates_nothing_reads_nothing_and_submits_once() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = test_adapter();
    let n = 70_001;
    let mut theta = ctx.upload(bytemuck::cast_slice(&values(n, 7))).unwrap();
    for s in 0..4 {
        step(&ctx, &mut theta, n, s);
    }
    ctx.synchronize().unwrap();
    let before = counters();
    let steps = 6usize;
    for s in 0..steps {
        step(&ctx, &mut theta, n, 100 + s as u32);
    }
    let c = counters().since(&before);
    ctx.synchronize().unwrap();
    assert_eq!(c.buffer_creations, 0, "{c:?}");
    assert_eq!(c.bind_group_creations, 0, "{c:?}");
    assert_eq!(c.readbacks, 0, "{c:?}");
    assert_eq!(c.submits, steps as u64, "{c:?}");
    assert!(c.dispatches >= 4 * steps as u64, "{c:?}");
    // The upload's copy ends a pass; the kernels after it share one.
    assert_eq!(c.compute_passes, steps as u64, "{c:?}");
    assert_eq!(c.upload_bytes, (steps * n * 4) as u64, "{c:?}");
    assert!(c.uniform_bytes > 0 && c.record_ns > 0, "{c:?}");
}

#[test]
fn an_upload_into_a_recycled_buffer_lands_after_the_pending_reads_of_its_old_contents() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = test_adapter();
    let n = 4099;
    let (v1, v2) = (values(n, 1), values(n, 2));
    ctx.synchronize().unwrap();
    let submits = counters().submits;
    let a = ctx.upload(bytemuck::cast_slice(&v1)).unwrap();
    let a_id = a.allocation_id();
    let b = unary_gpu(&ctx, Unary::Scale(3.0), &a, n).unwrap();
    drop(a);
    // Same size class: the pool hands the idle allocation straight back.
    let c = ctx.upload(bytemuck::cast_slice(&v2)).unwrap();
    assert_eq!(
        c.allocation_id(),
        a_id,
        "the test needs the recycled buffer"
    );
    let d = unary_gpu(&ctx, Unary::Scale(3.0), &c, n).unwrap();
    assert_eq!(counters().submits, submits, "uploads must not submit");
    let (mut want_b, mut want_d) = (vec![0f32; n], vec![0f32; n]);
    unary_cpu(Unary::Scale(3.0), &v1, &mut want_b);
    unary_cpu(Unary::Scale(3.0), &v2, &mut want_d);
    assert_eq!(ctx.read::<f32>(&b, n).unwrap(), want_b);
    assert_eq!(ctx.read::<f32>(&d, n).unwrap(), want_d);
}

#[test]
fn parameters_of_many_dispatches_in_one_submission_stay_apart() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = test_adapter();
    let n = 517;
    let v = values(n, 3);
    let mut buf = ctx.upload(bytemuck::cast_slice(&v)).unwrap();
    let mut want = v.clone();
    // More dispatches than one ring or one submission holds, each with its own α.
    for i in 0..700 {
        let alpha = if i % 2 == 0 {
            1.0 + i as f64 / 1024.0
        } else {
            1.0 / (1.0 + (i - 1) as f64 / 1024.0)
        };
        buf = unary_gpu(&ctx, Unary::Scale(alpha), &buf, n).unwrap();
        let mut next = vec![0f32; n];
        unary_cpu(Unary::Scale(alpha), &want, &mut next);
        want = next;
    }
    assert_eq!(ctx.read::<f32>(&buf, n).unwrap(), want);
}

/// The dispatch log (what `rbd profile` shows of a step's parallelism): one record per
/// dispatch with its grid, its threads per workgroup (overrides resolved) and its work;
/// nothing is logged outside `start_dispatch_log` .. `take_dispatch_log`.
#[test]
fn the_dispatch_log_records_each_grid_and_its_work() {
    use rbd_kernels::matmul::{matmul_gpu_tiled, MatmulShape, TileConfig};
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = test_adapter();
    let n = 70_001;
    let x = ctx.upload(bytemuck::cast_slice(&values(n, 4))).unwrap();
    let s = MatmulShape::new(130, 48, 200);
    let a = ctx
        .upload(bytemuck::cast_slice(&values(s.a_len(), 5)))
        .unwrap();
    let b = ctx
        .upload(bytemuck::cast_slice(&values(s.b_len(), 6)))
        .unwrap();
    let _ = unary_gpu(&ctx, Unary::Relu, &x, n).unwrap();
    ctx.start_dispatch_log();
    let y = unary_gpu(&ctx, Unary::Relu, &x, n).unwrap();
    let c = matmul_gpu_tiled(&ctx, &s, &a, &b, TileConfig::B64X64K16T4X4).unwrap();
    let log = ctx.take_dispatch_log();
    let _ = unary_gpu(&ctx, Unary::Relu, &y, n).unwrap();
    assert!(
        ctx.take_dispatch_log().is_empty(),
        "logged after the log was taken"
    );
    assert_eq!(log.len(), 2, "{log:?}");
    let relu = &log[0];
    assert_eq!(relu.workgroups, [n.div_ceil(256) as u32, 1, 1]);
    assert_eq!(relu.threads_per_workgroup, 256);
    assert_eq!(relu.work.flops, 0.0);
    // One pass over the input and the output.
    assert_eq!(relu.work.bytes, (x.bytes() + y.bytes()) as f64);
    let mm = &log[1];
    assert_eq!(mm.module, "matmul");
    assert_eq!(mm.workgroups, [200u32.div_ceil(64), 130u32.div_ceil(64), 1]);
    assert_eq!(mm.total_workgroups(), 4 * 3);
    // WG_X × WG_Y = (64 / 4) × (64 / 4), from the pipeline's override values.
    assert_eq!(mm.threads_per_workgroup, 256);
    assert_eq!(mm.work.flops, s.flops());
    assert_eq!(mm.work.bytes, (a.bytes() + b.bytes() + c.bytes()) as f64);
}

/// The benchmarks' timing hook: kernel time from timestamps where the adapter has them,
/// wall-clock beside it, and the region's dispatches counted.
#[test]
fn a_timed_region_reports_kernel_and_wall_time() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = test_adapter();
    let n = 1 << 18;
    let x = ctx.upload(bytemuck::cast_slice(&values(n, 8))).unwrap();
    let (y, t) = ctx
        .time_kernels(|| {
            let h = unary_gpu(&ctx, Unary::Relu, &x, n)?;
            unary_gpu(&ctx, Unary::Scale(2.0), &h, n)
        })
        .unwrap();
    assert_eq!(t.dispatches, 2, "{t:?}");
    assert!(t.wall_ns > 0.0, "{t:?}");
    match t.kernel_ns {
        Some(k) => {
            assert!(ctx.has_timestamps());
            assert!(k > 0.0 && k <= t.wall_ns, "{t:?}");
        }
        None => assert!(!ctx.has_timestamps()),
    }
    let mut want = vec![0f32; n];
    unary_cpu(Unary::Relu, &values(n, 8), &mut want);
    let mut twice = vec![0f32; n];
    unary_cpu(Unary::Scale(2.0), &want, &mut twice);
    assert_eq!(ctx.read::<f32>(&y, n).unwrap(), twice);
}
