// Batch normalisation over NCHW f32 tensors, per channel over N·H·W.
//
// Reductions (bn_stats, bn_backward_reduce) run one 256-thread workgroup per channel:
// each thread sums elements lid, lid+256, ... in order, then a fixed tree reduction in
// workgroup memory combines the 256 partial sums, so results are deterministic.
// Statistics are two-pass: the mean first, then the mean of squared deviations.
// Elementwise kernels use 256 threads per workgroup. Grids may be folded onto x and y
// (GpuContext::grid); the linear workgroup id is wid.y·nwg.x + wid.x.
//
// Bindings per entry point (binding 0 is `info`; r* are read-only, w* read-write):
//   bn_stats            1 x  2 w_mean   3 w_invstd
//   bn_apply            1 x  2 gamma    3 beta      4 mean      5 invstd  6 y
//   bn_eval             1 x  2 gamma    3 beta      4 run_mean  5 run_var 6 y
//   bn_backward_reduce  1 x  2 dy       3 mean      4 invstd    5 w_dgamma 6 w_dbeta
//   bn_backward_dx      1 x  2 dy       3 gamma     4 mean      5 invstd  6 dgamma 7 dbeta 8 dx

struct Info {
    n: u32,
    c: u32,
    hw: u32,
    len: u32, // n·c·hw
    eps: f32,
}

@group(0) @binding(0) var<uniform> info: Info;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> r2: array<f32>;
@group(0) @binding(2) var<storage, read_write> w2: array<f32>;
@group(0) @binding(3) var<storage, read> r3: array<f32>;
@group(0) @binding(3) var<storage, read_write> w3: array<f32>;
@group(0) @binding(4) var<storage, read> r4: array<f32>;
@group(0) @binding(5) var<storage, read> r5: array<f32>;
@group(0) @binding(5) var<storage, read_write> w5: array<f32>;
@group(0) @binding(6) var<storage, read> r6: array<f32>;
@group(0) @binding(6) var<storage, read_write> w6: array<f32>;
@group(0) @binding(7) var<storage, read> r7: array<f32>;
@group(0) @binding(8) var<storage, read_write> w8: array<f32>;

const WG: u32 = 256u;

var<workgroup> red_a: array<f32, 256>;
var<workgroup> red_b: array<f32, 256>;

fn linear(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Index into x of the e-th element (in image-major order) of channel ch.
fn channel_elem(ch: u32, e: u32) -> u32 {
    let img = e / info.hw;
    return (img * info.c + ch) * info.hw + (e - img * info.hw);
}

// Tree-sums red_a (and red_b) into element 0; ends with a barrier.
fn tree2(lid: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_a[lid] += red_a[lid + s];
            red_b[lid] += red_b[lid + s];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn bn_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let ch = linear(wid, nwg);
    if (ch >= info.c) { return; }
    let count = info.n * info.hw;
    let fcount = f32(max(count, 1u));
    var s = 0.0;
    for (var e = lid; e < count; e += WG) { s += x[channel_elem(ch, e)]; }
    red_a[lid] = s;
    red_b[lid] = 0.0;
    tree2(lid);
    let mean = red_a[0] / fcount;
    workgroupBarrier(); // everyone has read red_a[0] before it is overwritten
    var q = 0.0;
    for (var e = lid; e < count; e += WG) {
        let d = x[channel_elem(ch, e)] - mean;
        q = fma(d, d, q);
    }
    red_a[lid] = q;
    tree2(lid);
    if (lid == 0u) {
        w2[ch] = mean;
        w3[ch] = 1.0 / sqrt(red_a[0] / fcount + info.eps);
    }
}

// y = gamma·((x − mean)·invstd) + beta
@compute @workgroup_size(256)
fn bn_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg) * WG + lid;
    if (i >= info.len) { return; }
    let ch = (i / info.hw) % info.c;
    w6[i] = r2[ch] * ((x[i] - r4[ch]) * r5[ch]) + r3[ch];
}

// y = gamma·((x − running_mean)·(1/sqrt(running_var + eps))) + beta
@compute @workgroup_size(256)
fn bn_eval(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg) * WG + lid;
    if (i >= info.len) { return; }
    let ch = (i / info.hw) % info.c;
    let invstd = 1.0 / sqrt(r5[ch] + info.eps);
    w6[i] = r2[ch] * ((x[i] - r4[ch]) * invstd) + r3[ch];
}

// dbeta = Σ dy, dgamma = Σ dy·(x − mean)·invstd, per channel.
@compute @workgroup_size(256)
fn bn_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let ch = linear(wid, nwg);
    if (ch >= info.c) { return; }
    let count = info.n * info.hw;
    let mean = r3[ch];
    let invstd = r4[ch];
    var db = 0.0;
    var dg = 0.0;
    for (var e = lid; e < count; e += WG) {
        let i = channel_elem(ch, e);
        let g = r2[i];
        db += g;
        dg = fma(g, (x[i] - mean) * invstd, dg);
    }
    red_a[lid] = dg;
    red_b[lid] = db;
    tree2(lid);
    if (lid == 0u) {
        w5[ch] = red_a[0];
        w6[ch] = red_b[0];
    }
}

// dx = gamma·invstd·(dy − dbeta/m − x̂·dgamma/m), x̂ = (x − mean)·invstd, m = n·hw.
@compute @workgroup_size(256)
fn bn_backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg) * WG + lid;
    if (i >= info.len) { return; }
    let ch = (i / info.hw) % info.c;
    let m = f32(max(info.n * info.hw, 1u));
    let invstd = r5[ch];
    let k = r3[ch] * invstd;
    let xhat = (x[i] - r4[ch]) * invstd;
    w8[i] = k * (r2[i] - r7[ch] / m - xhat * (r6[ch] / m));
}
