use rbd_kernels::elementwise::*;
use rbd_kernels::gpu::{DeviceKind, GpuContext};

#[test]
fn elementwise_runs_on_the_cpu_adapter() {
    let ctx = GpuContext::new(DeviceKind::Cpu).unwrap();
    eprintln!("{}", ctx.describe());
    let a: Vec<f32> = (0..1000).map(|i| i as f32 - 500.0).collect();
    let b: Vec<f32> = (0..1000).map(|i| (i as f32) * 0.5).collect();
    let ga = ctx.upload(bytemuck::cast_slice(&a)).unwrap();
    let gb = ctx.upload(bytemuck::cast_slice(&b)).unwrap();
    for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::ReluBackward] {
        let out = binary_gpu(&ctx, op, &ga, &gb, 1000).unwrap();
        let got: Vec<f32> = ctx.read(&out, 1000).unwrap();
        let mut want = vec![0f32; 1000];
        binary_cpu(op, &a, &b, &mut want);
        assert_eq!(got, want, "{op:?}");
    }
    let r = unary_gpu(&ctx, Unary::Relu, &ga, 1000).unwrap();
    let got: Vec<f32> = ctx.read(&r, 1000).unwrap();
    assert_eq!(got[0], 0.0);
    assert_eq!(got[999], 499.0);
}
