// Fused bias + ReLU and its backward (dx and the bias gradient's first pass in one
// dispatch).
//
// bias_relu: y[i] = max(x[i] + bias[(i / inner) % channels], 0), one thread per element:
// the same f32 operations as elementwise.wgsl's bias_add then relu.
//
// The backward kernels write dx = dy·[y > 0] and, in the same pass, the first pass of
// the bias gradient exactly as reduce.wgsl computes it unfused: sum_rows' first pass
// (dense: a thread per (block of 64 rows, column), rows in order) or sum_channels (NCHW:
// a workgroup per (channel, block of images), per-thread strided sums, then the tree).
// The launcher sums the partial rows with sum_rows' passes when there is more than one
// block, so db is bitwise the unfused result: no atomics, the order depends on the
// shape only, and the work spreads over (channel, image block) workgroups.
//
// The grid may be folded onto x and y (GpuContext::grid).

struct Info {
    n: u32,        // bias_relu: elements; backward: images (rows when dense)
    inner: u32,    // values per (image, channel); 1 for dense
    channels: u32, // bias values
    block: u32,    // backward: images (rows) per block
    h: u32,        // pooled kernels: input height
    w: u32,        //   and width
    len: u32,      //   elements covered (pooled outputs forward, dx elements backward)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> info: Info;

// bias_relu: x, bias -> y_out
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y_out: array<f32>;

// backward: y, dy -> dx, part ([blocks, channels] partial sums)
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;

// bias_relu_maxpool: x, bias -> y_out, argmax_out
@group(0) @binding(4) var<storage, read_write> argmax_out: array<u32>;

// bias_relu_maxpool_backward: y (pooled), dy (pooled), argmax -> dx_pool, part_pool
@group(0) @binding(3) var<storage, read> argmax: array<u32>;
@group(0) @binding(4) var<storage, read_write> dx_pool: array<f32>;
@group(0) @binding(5) var<storage, read_write> part_pool: array<f32>;

const WG: u32 = 256u;

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(256)
fn bias_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i < info.n) { y_out[i] = max(x[i] + bias[(i / info.inner) % info.channels], 0.0); }
}

// Dense [rows, cols]: thread = (row block rb, column col), as sum_rows' first pass:
// rows rb·block .. in order.
@compute @workgroup_size(256)
fn bias_relu_backward_rows(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let t = group_index(wid, nwg) * WG + lid;
    let blocks = (info.n + info.block - 1u) / info.block;
    if (t >= blocks * info.channels) {
        return;
    }
    let rb = t / info.channels;
    let col = t % info.channels;
    let r0 = rb * info.block;
    let r1 = min(r0 + info.block, info.n);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        let i = r * info.channels + col;
        let g = select(0.0, dy[i], y[i] > 0.0);
        dx[i] = g;
        acc += g;
    }
    part[t] = acc;
}

var<workgroup> sh: array<f32, WG>;

// reduce.wgsl's tree (pairs at distance 128, 64, ..., 1). Uniform control flow only.
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

// NCHW [n, channels, inner]: workgroup = (channel, image block) as sum_channels.
@compute @workgroup_size(256)
fn bias_relu_backward_channels(@builtin(workgroup_id) wid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let blocks = (info.n + info.block - 1u) / info.block;
    let valid = g < blocks * info.channels;
    let ch = g % info.channels;
    let nb = g / info.channels;
    var acc = 0.0;
    if (valid) {
        let i0 = nb * info.block;
        let i1 = min(i0 + info.block, info.n);
        for (var img = i0; img < i1; img++) {
            let plane = (img * info.channels + ch) * info.inner;
            for (var i = lid; i < info.inner; i += WG) {
                let v = select(0.0, dy[plane + i], y[plane + i] > 0.0);
                dx[plane + i] = v;
                acc += v;
            }
        }
    }
    let total = tree(lid, acc);
    if (lid == 0u && valid) {
        part[g] = total;
    }
}

// bias_relu then pool.wgsl's maxpool, one thread per pooled output: the same values and
// the same strict-> choice of the first maximum in row-major window order.
@compute @workgroup_size(256)
fn bias_relu_maxpool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let o = group_index(wid, nwg) * WG + lid;
    if (o >= info.len) { return; }
    let oh = info.h / 2u;
    let ow = info.w / 2u;
    let plane = o / (oh * ow);
    let q = o % (oh * ow);
    let b = bias[plane % info.channels];
    let i0 = plane * info.h * info.w + 2u * (q / ow) * info.w + 2u * (q % ow);
    var best = i0;
    var v = max(x[i0] + b, 0.0);
    let c1 = max(x[i0 + 1u] + b, 0.0);
    if (c1 > v) { best = i0 + 1u; v = c1; }
    let c2 = max(x[i0 + info.w] + b, 0.0);
    if (c2 > v) { best = i0 + info.w; v = c2; }
    let c3 = max(x[i0 + info.w + 1u] + b, 0.0);
    if (c3 > v) { best = i0 + info.w + 1u; v = c3; }
    y_out[o] = v;
    argmax_out[o] = best;
}

// The backward of bias_relu_maxpool, as bias_relu_backward_channels with each dx element
// gathering from the one window it belongs to (pool.wgsl's maxpool_backward): dy where
// it is the window's argmax and the pooled value is positive, else 0.
@compute @workgroup_size(256)
fn bias_relu_maxpool_backward(@builtin(workgroup_id) wid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let blocks = (info.n + info.block - 1u) / info.block;
    let valid = g < blocks * info.channels;
    let ch = g % info.channels;
    let nb = g / info.channels;
    let oh = info.h / 2u;
    let ow = info.w / 2u;
    var acc = 0.0;
    if (valid) {
        let i0 = nb * info.block;
        let i1 = min(i0 + info.block, info.n);
        for (var img = i0; img < i1; img++) {
            let plane = img * info.channels + ch;
            let base = plane * info.inner;
            for (var q = lid; q < info.inner; q += WG) {
                let oy = (q / info.w) / 2u;
                let ox = (q % info.w) / 2u;
                var v = 0.0;
                if (oy < oh && ox < ow) {
                    let o = (plane * oh + oy) * ow + ox;
                    if (argmax[o] == base + q) { v = select(0.0, dy[o], y[o] > 0.0); }
                }
                dx_pool[base + q] = v;
                acc += v;
            }
        }
    }
    let total = tree(lid, acc);
    if (lid == 0u && valid) {
        part_pool[g] = total;
    }
}
