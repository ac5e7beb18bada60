// Pooling over NCHW f32 tensors: 2×2/stride-2 max pooling with argmax, and global
// average pooling. 1-D kernels use 256 threads per workgroup with the grid folded onto
// x and y (GpuContext::grid); the linear workgroup id is wid.y·nwg.x + wid.x.
//
// Bindings per entry point (binding 0 is `info`):
//   maxpool                   1 x    2 y       3 argmax (u32, flat index into x)
//   maxpool_backward          1 dy   2 argmax  3 dx
//   global_avg_pool           1 x    2 y
//   global_avg_pool_backward  1 dy   2 dx

struct Info {
    planes: u32, // n·c
    h: u32,
    w: u32,
    oh: u32,     // h / 2
    ow: u32,     // w / 2
    len: u32,    // elements covered by 1-D kernels (outputs, or dx elements)
    hw: u32,     // average pool: elements per row
    _pad: u32,
}

@group(0) @binding(0) var<uniform> info: Info;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> argmax_in: array<u32>;
@group(0) @binding(3) var<storage, read_write> argmax_out: array<u32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

fn linear(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// One thread per output; strict > keeps the first maximum in row-major window order.
@compute @workgroup_size(256)
fn maxpool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let o = linear(wid, nwg) * 256u + lid;
    if (o >= info.len) { return; }
    let plane_len = info.oh * info.ow;
    let plane = o / plane_len;
    let q = o % plane_len;
    let oy = q / info.ow;
    let ox = q % info.ow;
    let i0 = plane * info.h * info.w + 2u * oy * info.w + 2u * ox;
    var best = i0;
    var v = src[i0];
    let c1 = src[i0 + 1u];
    if (c1 > v) { best = i0 + 1u; v = c1; }
    let c2 = src[i0 + info.w];
    if (c2 > v) { best = i0 + info.w; v = c2; }
    let c3 = src[i0 + info.w + 1u];
    if (c3 > v) { best = i0 + info.w + 1u; v = c3; }
    dst[o] = v;
    argmax_out[o] = best;
}

// One thread per dx element: it belongs to at most one window, whose argmax says
// whether it receives that window's gradient.
@compute @workgroup_size(256)
fn maxpool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg) * 256u + lid;
    if (i >= info.len) { return; }
    let hw = info.h * info.w;
    let plane = i / hw;
    let q = i % hw;
    let oy = (q / info.w) / 2u;
    let ox = (q % info.w) / 2u;
    var g = 0.0;
    if (oy < info.oh && ox < info.ow) {
        let o = (plane * info.oh + oy) * info.ow + ox;
        if (argmax_in[o] == i) { g = src[o]; }
    }
    dx[i] = g;
}

var<workgroup> partial: array<f32, 64>;

// One 64-thread workgroup per row: strided per-thread sums, then a fixed tree.
@compute @workgroup_size(64)
fn global_avg_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = linear(wid, nwg);
    if (row >= info.planes) { return; }
    let base = row * info.hw;
    var s = 0.0;
    for (var k = lid; k < info.hw; k += 64u) { s += src[base + k]; }
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lid < stride) { partial[lid] += partial[lid + stride]; }
        workgroupBarrier();
    }
    if (lid == 0u) {
        dst[row] = select(partial[0] / f32(info.hw), 0.0, info.hw == 0u);
    }
}

@compute @workgroup_size(256)
fn global_avg_pool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg) * 256u + lid;
    if (i >= info.len) { return; }
    dst[i] = src[i / info.hw] / f32(info.hw);
}
