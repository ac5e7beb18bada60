// Softmax cross-entropy, its gradient, argmax and the correct-prediction count.
// logits [n, k] row-major f32; labels [n] u32 class indices.
//
// A label >= k selects no class: the row adds zero to the loss sum, gets a zero gradient
// and never counts as correct (the engine validates labels; this only keeps reads in
// bounds and makes the cpu and device agree).
//
// Thread-per-row kernels use a 1-D grid of 256-thread workgroups, folded onto x and y
// (GpuContext::grid): the linear index is (wid.y · nwg.x + wid.x) · 256 + lid.

struct Info {
    n: u32, // rows (count_sum: values)
    k: u32, // classes
    slot: u32, // metric_record: the record written
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> info: Info;

// xent_rows: logits, labels -> row_loss
// row_stats: logits -> stats
// xent_mean: logits, labels -> row_loss (one value: the mean)
// xent_backward: logits, labels, dloss, stats -> grad
// xent_backward_rowwise: logits, labels, dloss -> grad_rowwise
// argmax: logits -> classes
// correct: logits, labels -> counts_out
// count_sum: counts_in -> counts_out
// metric_record: logits, labels, dloss (the batch's mean loss) -> records
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> counts_in: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> classes: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts_out: array<u32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(3) var<storage, read> dloss: array<f32>;
@group(0) @binding(3) var<storage, read_write> correct_out: array<u32>;
@group(0) @binding(4) var<storage, read> stats_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> records: array<u32>;
@group(0) @binding(4) var<storage, read_write> grad_rowwise: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;

const WG: u32 = 256u;
const COUNT_CHUNK: u32 = 4096u; // values per workgroup of count_sum (WG · 16)

var<workgroup> shu: array<u32, WG>;
var<workgroup> shf: array<f32, WG>;

fn linear(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Row maximum (the first element if all comparisons fail, e.g. NaN).
fn row_max(base: u32) -> f32 {
    var m = logits[base];
    for (var j = 1u; j < info.k; j++) {
        m = max(m, logits[base + j]);
    }
    return m;
}

// Σ_j exp(l_j − m), in column order.
fn row_sum_exp(base: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var j = 0u; j < info.k; j++) {
        s += exp(logits[base + j] - m);
    }
    return s;
}

// First index of the row maximum (strict >: ties go to the lowest index).
fn row_argmax(base: u32) -> u32 {
    var best = logits[base];
    var arg = 0u;
    for (var j = 1u; j < info.k; j++) {
        let v = logits[base + j];
        if (v > best) {
            best = v;
            arg = j;
        }
    }
    return arg;
}

// log Σ_j exp(l_ij − m_i) − (l_i,label − m_i), or 0 for a label >= k.
fn xent_row(i: u32) -> f32 {
    let base = i * info.k;
    let label = labels[i];
    var loss = 0.0;
    if (label < info.k) {
        let m = row_max(base);
        let s = row_sum_exp(base, m);
        loss = log(s) - (logits[base + label] - m);
    }
    return loss;
}

// row_loss[i] = xent_row(i)
@compute @workgroup_size(256)
fn xent_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg) * WG + lid;
    if (i >= info.n) {
        return;
    }
    row_loss[i] = xent_row(i);
}

// The mean loss of n <= 4096 rows in one workgroup: xent_rows followed by reduce.wgsl's
// single reduce_sum pass, fused, with its order (thread t sums rows t, t + 256, ... in
// order, then the same tree) and its division, so the value is bitwise theirs.
@compute @workgroup_size(256)
fn xent_mean(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var j = 0u; j < 16u; j++) {
        let i = j * WG + lid;
        if (i < info.n) {
            acc += xent_row(i);
        }
    }
    shf[lid] = acc;
    workgroupBarrier();
    for (var d = WG / 2u; d > 0u; d = d / 2u) {
        if (lid < d) {
            shf[lid] = shf[lid] + shf[lid + d];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        row_loss[0] = shf[0] / f32(info.n);
    }
}

// stats[2i] = row max, stats[2i + 1] = Σ exp(l − max).
@compute @workgroup_size(256)
fn row_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg) * WG + lid;
    if (i >= info.n) {
        return;
    }
    let base = i * info.k;
    let m = row_max(base);
    stats[2u * i] = m;
    stats[2u * i + 1u] = row_sum_exp(base, m);
}

// grad[i, j] = (softmax_ij − [j == label_i]) · (dloss / n); zero rows for labels >= k.
@compute @workgroup_size(256)
fn xent_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = linear(wid, nwg) * WG + lid;
    if (e >= info.n * info.k) {
        return;
    }
    let i = e / info.k;
    let j = e % info.k;
    let label = labels[i];
    var g = 0.0;
    if (label < info.k) {
        let scale = dloss[0] / f32(info.n);
        let p = exp(logits[e] - stats_in[2u * i]) / stats_in[2u * i + 1u];
        g = (p - select(0.0, 1.0, j == label)) * scale;
    }
    grad[e] = g;
}

// xent_backward with each thread computing its row's statistics as row_stats does
// (same functions, so bitwise the same gradient), for small k: one dispatch, not two.
@compute @workgroup_size(256)
fn xent_backward_rowwise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let e = linear(wid, nwg) * WG + lid;
    if (e >= info.n * info.k) {
        return;
    }
    let i = e / info.k;
    let j = e % info.k;
    let label = labels[i];
    var g = 0.0;
    if (label < info.k) {
        let scale = dloss[0] / f32(info.n);
        let m = row_max(i * info.k);
        let s = row_sum_exp(i * info.k, m);
        let p = exp(logits[e] - m) / s;
        g = (p - select(0.0, 1.0, j == label)) * scale;
    }
    grad_rowwise[e] = g;
}

@compute @workgroup_size(256)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg) * WG + lid;
    if (i < info.n) {
        classes[i] = row_argmax(i * info.k);
    }
}

// Tree over shu[0..WG) in a fixed pairing (integer sums are exact anyway).
fn tree_u32(lid: u32, v: u32) -> u32 {
    shu[lid] = v;
    workgroupBarrier();
    for (var d = WG / 2u; d > 0u; d = d / 2u) {
        if (lid < d) {
            shu[lid] = shu[lid] + shu[lid + d];
        }
        workgroupBarrier();
    }
    return shu[0];
}

// correct_out[w] = number of rows among the workgroup's 256 whose argmax equals the label.
@compute @workgroup_size(256)
fn correct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let w = linear(wid, nwg);
    let i = w * WG + lid;
    var hit = 0u;
    if (i < info.n) {
        hit = select(0u, 1u, row_argmax(i * info.k) == labels[i]);
    }
    let total = tree_u32(lid, hit);
    if (lid == 0u && w * WG < info.n) {
        correct_out[w] = total;
    }
}

// counts_out[w] = Σ counts_in[w · 4096 ..][..4096]
@compute @workgroup_size(256)
fn count_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let w = linear(wid, nwg);
    let base = w * COUNT_CHUNK;
    var acc = 0u;
    for (var j = 0u; j < COUNT_CHUNK / WG; j++) {
        let i = base + j * WG + lid;
        if (i < info.n) {
            acc += counts_in[i];
        }
    }
    let total = tree_u32(lid, acc);
    if (lid == 0u && base < info.n) {
        counts_out[w] = total;
    }
}

// One workgroup appends a batch's metrics to the epoch's record array: records[2·slot] =
// the mean loss's bits (read from dloss[0], the loss tensor), records[2·slot + 1] = the
// rows whose argmax equals the label (rows strided over the 256 threads, then the tree).
// The host sums the records in slot order in f64, exactly as per-step readbacks did.
@compute @workgroup_size(256)
fn metric_record(@builtin(local_invocation_index) lid: u32) {
    var hits = 0u;
    for (var i = lid; i < info.n; i += WG) {
        hits += select(0u, 1u, row_argmax(i * info.k) == labels[i]);
    }
    let total = tree_u32(lid, hits);
    if (lid == 0u) {
        records[2u * info.slot] = bitcast<u32>(dloss[0]);
        records[2u * info.slot + 1u] = total;
    }
}
