// Elementwise kernels over flat f32 buffers. One thread per element; the 1-D grid may be
// folded onto x and y (GpuContext::grid), so the linear index is rebuilt from both.
//
// Bindings differ per entry point: binary ops use a, b -> out; unary ops x -> out.

struct Info {
    n: u32,        // elements
    inner: u32,    // bias_add: elements per bias value (1 for dense rows, H*W for NCHW)
    channels: u32, // bias_add: number of bias values
    alpha: f32,    // scale / axpy factor
}

@group(0) @binding(0) var<uniform> info: Info;

// Binary: out = f(a, b)
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Unary: y = f(x)
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { out[i] = a[i] + b[i]; }
}

@compute @workgroup_size(256)
fn sub(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { out[i] = a[i] - b[i]; }
}

@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { out[i] = a[i] * b[i]; }
}

// out = alpha * a + b
@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { out[i] = info.alpha * a[i] + b[i]; }
}

// out = a * (b > 0): the ReLU backward with a = upstream gradient, b = ReLU input.
@compute @workgroup_size(256)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { out[i] = select(0.0, a[i], b[i] > 0.0); }
}

// out[i] = a[i] + b[(i / inner) % channels]: bias per column (inner = 1) or per channel.
@compute @workgroup_size(256)
fn bias_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { out[i] = a[i] + b[(i / info.inner) % info.channels]; }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { y[i] = info.alpha * x[i]; }
}

@compute @workgroup_size(256)
fn relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { y[i] = max(x[i], 0.0); }
}

@compute @workgroup_size(256)
fn inv_square_minus(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < info.n) { y[i] = 1.0 / (x[i] * x[i]) - info.alpha; }
}
