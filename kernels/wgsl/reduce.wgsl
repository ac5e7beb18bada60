// Fixed-order reductions (no atomics): the result depends only on the input and its
// shape, never on scheduling.
//
// reduce_sum / reduce_sum_squares / reduce_dot: each workgroup reduces one chunk of CHUNK
// consecutive values to a partial: thread t accumulates elements t, t + 256, t + 512, ...
// of the chunk in order, then the 256 per-thread sums are combined by a tree in workgroup
// memory (pairs at distance 128, 64, ..., 1). The launcher repeats `reduce_sum` over the
// partials until one value is left, dividing by info.div on the last pass (1 unless a
// mean is wanted).
//
// The grid may be folded onto x and y (GpuContext::grid): the linear workgroup index is
// wid.x + wid.y · nwg.x, and workgroups past the end write nothing.

struct Info {
    n: u32,     // values (sum passes); rows (sum_rows); images (sum_channels)
    cols: u32,  // sum_rows: columns; sum_channels: channels
    inner: u32, // sum_channels: values per (image, channel)
    block: u32, // sum_rows: rows per block; sum_channels: images per block
    div: f32,   // sum passes: the result is divided by this (1, or n for a mean)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> info: Info;

// reduce_sum, reduce_sum_squares, sum_rows, sum_channels: x -> out
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// reduce_dot: a, b -> out3;  mul_scalar: x, s -> out3
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;

const WG: u32 = 256u;
const PER_THREAD: u32 = 16u;
const CHUNK: u32 = 4096u; // WG * PER_THREAD

var<workgroup> sh: array<f32, WG>;

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Tree over sh[0..WG) in a fixed pairing; the total ends up in sh[0]. Must be called
// from uniform control flow by the whole workgroup.
fn tree(lid: u32, v: f32) -> f32 {
    sh[lid] = v;
    workgroupBarrier();
    for (var d = WG / 2u; d > 0u; d = d / 2u) {
        if (lid < d) {
            sh[lid] = sh[lid] + sh[lid + d];
        }
        workgroupBarrier();
    }
    return sh[0];
}

@compute @workgroup_size(256)
fn reduce_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let base = g * CHUNK;
    var acc = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        let i = base + j * WG + lid;
        if (i < info.n) {
            acc += x[i];
        }
    }
    let total = tree(lid, acc);
    if (lid == 0u && base < info.n) {
        out[g] = total / info.div;
    }
}

@compute @workgroup_size(256)
fn reduce_sum_squares(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let base = g * CHUNK;
    var acc = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        let i = base + j * WG + lid;
        if (i < info.n) {
            let v = x[i];
            acc = fma(v, v, acc);
        }
    }
    let total = tree(lid, acc);
    if (lid == 0u && base < info.n) {
        out[g] = total / info.div;
    }
}

@compute @workgroup_size(256)
fn reduce_dot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let base = g * CHUNK;
    var acc = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        let i = base + j * WG + lid;
        if (i < info.n) {
            acc = fma(a[i], b[i], acc);
        }
    }
    let total = tree(lid, acc);
    if (lid == 0u && base < info.n) {
        out3[g] = total / info.div;
    }
}

// x [n, cols] -> out [ceil(n / block), cols]: thread (row block rb, column col) sums rows
// rb·block .. of its column in order. The launcher repeats until one row is left.
@compute @workgroup_size(256)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let t = group_index(wid, nwg) * WG + lid;
    let blocks = (info.n + info.block - 1u) / info.block;
    if (t >= blocks * info.cols) {
        return;
    }
    let rb = t / info.cols;
    let col = t % info.cols;
    let r0 = rb * info.block;
    let r1 = min(r0 + info.block, info.n);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        acc += x[r * info.cols + col];
    }
    out[t] = acc;
}

// x [n, c, inner] -> out [ceil(n / block), c]: workgroup (channel ch, image block nb)
// covers images nb·block .. ; thread t accumulates, image by image, the values t,
// t + 256, ... of each image's channel plane, then a tree combines the threads. The
// launcher sums the partial rows with sum_rows when there is more than one block.
@compute @workgroup_size(256)
fn sum_channels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let blocks = (info.n + info.block - 1u) / info.block;
    let valid = g < blocks * info.cols;
    let ch = g % info.cols;
    let nb = g / info.cols;
    var acc = 0.0;
    if (valid) {
        let i0 = nb * info.block;
        let i1 = min(i0 + info.block, info.n);
        for (var img = i0; img < i1; img++) {
            let plane = (img * info.cols + ch) * info.inner;
            for (var i = lid; i < info.inner; i += WG) {
                acc += x[plane + i];
            }
        }
    }
    let total = tree(lid, acc);
    if (lid == 0u && valid) {
        out[g] = total;
    }
}

// out3[i] = x[i] · s[0]
@compute @workgroup_size(256)
fn mul_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i < info.n) {
        out3[i] = x[i] * s[0];
    }
}
