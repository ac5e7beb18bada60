// Fused bias + ReLU and its backward (dx and the bias gradient in one dispatch).
//
// bias_relu: y[i] = max(x[i] + bias[(i / inner) % channels], 0), one thread per element:
// the same f32 operations as elementwise.wgsl's bias_add then relu.
//
// The backward kernels write dx = dy·[y > 0] and sum it per channel in exactly the order
// of reduce.wgsl's sum_rows (dense) or sum_channels followed by sum_rows (NCHW), so db
// is bitwise the unfused result: no atomics, the order depends on the shape only.
// `levels` is the number of sum_rows passes being reproduced (0: none, the channel's
// single image block is the result). Those passes sum blocks of 64 values in order,
// starting from 0.0; here a stack of one accumulator per pass does the same in a stream.
//
// The grid may be folded onto x and y (GpuContext::grid).

struct Info {
    n: u32,        // bias_relu: elements; backward: images (rows when dense)
    inner: u32,    // values per (image, channel); 1 for dense
    channels: u32, // bias values
    block: u32,    // channels kernel: images per block (sum_channels' grouping)
    levels: u32,   // sum_rows passes reproduced (at most LEVELS)
    h: u32,        // pooled kernels: input height
    w: u32,        //   and width
    len: u32,      //   elements covered (pooled outputs forward, dx elements backward)
}

@group(0) @binding(0) var<uniform> info: Info;

// bias_relu: x, bias -> y_out
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y_out: array<f32>;

// backward: y, dy -> dx, db
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;

// bias_relu_maxpool: x, bias -> y_out, argmax_out
@group(0) @binding(4) var<storage, read_write> argmax_out: array<u32>;

// bias_relu_maxpool_backward: y (pooled), dy (pooled), argmax -> dx_pool, db_pool
@group(0) @binding(3) var<storage, read> argmax: array<u32>;
@group(0) @binding(4) var<storage, read_write> dx_pool: array<f32>;
@group(0) @binding(5) var<storage, read_write> db_pool: array<f32>;

const WG: u32 = 256u;
const ROW_BLOCK: u32 = 64u;
const LEVELS: u32 = 4u;

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(256)
fn bias_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i < info.n) { y_out[i] = max(x[i] + bias[(i / info.inner) % info.channels], 0.0); }
}

// sum_rows' passes as a stream: values arrive in row order at level 0; a level that has
// summed ROW_BLOCK values hands its sum to the next level, except the last level, which
// holds the result.
struct Passes {
    acc: array<f32, LEVELS>,
    cnt: array<u32, LEVELS>,
}

fn passes_new() -> Passes {
    var p: Passes;
    for (var l = 0u; l < LEVELS; l++) {
        p.acc[l] = 0.0;
        p.cnt[l] = 0u;
    }
    return p;
}

fn passes_push(p: ptr<function, Passes>, value: f32, level: u32) {
    var v = value;
    var l = level;
    loop {
        (*p).acc[l] += v;
        (*p).cnt[l] += 1u;
        if ((*p).cnt[l] < ROW_BLOCK || l + 1u >= info.levels) {
            break;
        }
        v = (*p).acc[l];
        (*p).acc[l] = 0.0;
        (*p).cnt[l] = 0u;
        l += 1u;
    }
}

// Hands the unfinished blocks up, lowest level first, and returns the total.
fn passes_finish(p: ptr<function, Passes>) -> f32 {
    for (var l = 0u; l + 1u < info.levels; l++) {
        if ((*p).cnt[l] > 0u) {
            let v = (*p).acc[l];
            (*p).acc[l] = 0.0;
            (*p).cnt[l] = 0u;
            passes_push(p, v, l + 1u);
        }
    }
    return (*p).acc[info.levels - 1u];
}

// Dense [rows, cols]: thread = column; rows in order.
@compute @workgroup_size(256)
fn bias_relu_backward_rows(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let col = group_index(wid, nwg) * WG + lid;
    if (col >= info.channels) {
        return;
    }
    var p = passes_new();
    for (var r = 0u; r < info.n; r++) {
        let i = r * info.channels + col;
        let g = select(0.0, dy[i], y[i] > 0.0);
        dx[i] = g;
        passes_push(&p, g, 0u);
    }
    db[col] = passes_finish(&p);
}

var<workgroup> sh: array<f32, WG>;

// reduce.wgsl's tree (pairs at distance 128, 64, ..., 1), followed by a barrier so the
// next call may overwrite sh. Uniform control flow only.
fn tree(lid: u32, v: f32) -> f32 {
    sh[lid] = v;
    workgroupBarrier();
    for (var d = WG / 2u; d > 0u; d = d / 2u) {
        if (lid < d) {
            sh[lid] = sh[lid] + sh[lid + d];
        }
        workgroupBarrier();
    }
    let total = sh[0];
    workgroupBarrier();
    return total;
}

// NCHW [n, channels, inner]: workgroup = channel; image blocks as in sum_channels.
@compute @workgroup_size(256)
fn bias_relu_backward_channels(@builtin(workgroup_id) wid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) lid: u32) {
    let ch = group_index(wid, nwg);
    if (ch >= info.channels) {
        return;
    }
    let blocks = (info.n + info.block - 1u) / info.block;
    var p = passes_new();
    var single = 0.0;
    for (var nb = 0u; nb < blocks; nb++) {
        let i0 = nb * info.block;
        let i1 = min(i0 + info.block, info.n);
        var acc = 0.0;
        for (var img = i0; img < i1; img++) {
            let plane = (img * info.channels + ch) * info.inner;
            for (var i = lid; i < info.inner; i += WG) {
                let g = select(0.0, dy[plane + i], y[plane + i] > 0.0);
                dx[plane + i] = g;
                acc += g;
            }
        }
        let total = tree(lid, acc);
        if (info.levels == 0u) {
            single = total;
        } else {
            passes_push(&p, total, 0u);
        }
    }
    if (lid == 0u) {
        if (info.levels == 0u) {
            db[ch] = single;
        } else {
            db[ch] = passes_finish(&p);
        }
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
    let ch = group_index(wid, nwg);
    if (ch >= info.channels) {
        return;
    }
    let oh = info.h / 2u;
    let ow = info.w / 2u;
    let blocks = (info.n + info.block - 1u) / info.block;
    var p = passes_new();
    var single = 0.0;
    for (var nb = 0u; nb < blocks; nb++) {
        let i0 = nb * info.block;
        let i1 = min(i0 + info.block, info.n);
        var acc = 0.0;
        for (var img = i0; img < i1; img++) {
            let plane = img * info.channels + ch;
            let base = plane * info.inner;
            for (var q = lid; q < info.inner; q += WG) {
                let oy = (q / info.w) / 2u;
                let ox = (q % info.w) / 2u;
                var g = 0.0;
                if (oy < oh && ox < ow) {
                    let o = (plane * oh + oy) * ow + ox;
                    if (argmax[o] == base + q) { g = select(0.0, dy[o], y[o] > 0.0); }
                }
                dx_pool[base + q] = g;
                acc += g;
            }
        }
        let total = tree(lid, acc);
        if (info.levels == 0u) {
            single = total;
        } else {
            passes_push(&p, total, 0u);
        }
    }
    if (lid == 0u) {
        if (info.levels == 0u) {
            db_pool[ch] = single;
        } else {
            db_pool[ch] = passes_finish(&p);
        }
    }
}
