// Fused random-bases kernels: the directions are regenerated from the counter-based
// stream (random_bases_dist.wgsl) wherever they are needed and never stored.
//
//   project_partial: partials[dir][chunk] = sum over the chunk's entries of phi_raw * g
//   project_signs_partial: the same for packed signs, in the cpu's order (bitwise)
//   project_reduce:  coords[dir] = scale * sum over chunks (fixed order)
//   expand_partial:  partials[c][group][e] = sum over the group's directions j, in
//                    order, of (scale*alpha*coords[j]) * phi_raw_j[e]
//   expand_reduce:   out[e] = base[e] + partials[c][0][e] + partials[c][1][e] + ...
//                    (groups in order; base[e] outside every compartment)
//   generate:        out[p_offset + j*len + e] = scale * phi_raw_j[e]  (materialised,
//                    for tests; one dispatch per compartment)
//
// A project dispatch covers one compartment (elements g_offset .. g_offset + len of the
// flat parameter vector; entry e of the compartment is stream element e). The expand
// passes cover every compartment in one dispatch each, reading a table of compartments
// (16 words a row, see TABLE_* below) built by the launcher. A thread owns
// UPT "units" of 4 consecutive entries, strided by WG. Workgroup grids may be folded
// onto x and y (GpuContext::grid): lin = wid.x + wid.y * nwg.x. No float atomics:
// every sum has a fixed order.

struct Info {
    key0: u32,
    key1: u32,
    c2: u32,
    c3: u32,
    len: u32,      // entries in the compartment
    dims: u32,     // directions in this dispatch
    first: u32,    // stream index of the first direction
    nchunks: u32,  // project: element chunks; expand/generate: workgroups per direction
    subs: u32,     // project: sub-chunks of WG*UPT units per workgroup
    ngroups: u32,  // project: direction groups of DG
    g_offset: u32, // compartment offset into g / base / out
    p_offset: u32, // offset into partials (generate: into the output)
    c_offset: u32, // offset into coords
    bern_t: u32,
    bern_hi: f32,
    bern_lo: f32,
    scale: f32,    // project_reduce: scale; expand: alpha * scale; generate: scale
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> info: Info;

// project_partial (info: len = compartments, nchunks = workgroups, subs)
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
// project_reduce (info: len = compartments, dims = Σ dims, scale)
@group(0) @binding(1) var<storage, read> partials_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> coords_out: array<f32>;
// expand_partial (info: len = ncomps, nchunks = workgroups, scale = alpha * scale)
@group(0) @binding(1) var<storage, read> coords_in: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials_out: array<f32>;
// expand_reduce (info: len = ncomps, dims = parameters)
@group(0) @binding(1) var<storage, read> base: array<f32>;
@group(0) @binding(3) var<storage, read> partials_r: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// generate
@group(0) @binding(1) var<storage, read_write> gen_out: array<f32>;

const WG: u32 = 64u;
const UPT: u32 = 2u;
const DG: u32 = 8u;

var<workgroup> red: array<f32, 512>; // DG * WG
var<workgroup> wsh: array<f32, 64>;  // WG
var<workgroup> wsig: array<u32, 128>; // SIGN_WORDS

fn skey() -> StreamKey {
    return StreamKey(vec2<u32>(info.key0, info.key1), info.c2, info.c3);
}

fn dparams() -> DistParams {
    return DistParams(info.bern_t, info.bern_hi, info.bern_lo);
}

fn load4(g_offset: u32, len: u32, e0: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (e0 + i < len) {
            v[i] = g[g_offset + e0 + i];
        }
    }
    return v;
}

// The compartment whose workgroups [T_WG_START, next start) hold lin (rows in order).
fn compartment_of(lin: u32) -> u32 {
    var c = 0u;
    for (var i = 1u; i < info.len; i++) {
        if (lin >= row_word(i, T_WG_START)) {
            c = i;
        }
    }
    return c;
}

// Workgroup (compartment, chunk, group of DG directions); table rows: T_BLOCKS = chunks,
// T_GROUPS = direction groups, T_P_OFFSET = the compartment's partials [dims][chunks].
@compute @workgroup_size(64)
fn project_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let lin0 = wid.x + wid.y * nwg.x;
    if (lin0 >= info.nchunks) {
        return;
    }
    let c = compartment_of(lin0);
    let lin = lin0 - row_word(c, T_WG_START);
    let nchunks = row_word(c, T_BLOCKS);
    let len = row_word(c, T_LEN);
    let dims = row_word(c, T_DIMS);
    let first = row_word(c, T_FIRST);
    let g_offset = row_word(c, T_G_OFFSET);
    let chunk = lin % nchunks;
    let d0 = (lin / nchunks) * DG;
    let nd = min(DG, dims - d0);
    let k = StreamKey(vec2<u32>(row_word(c, T_KEY0), row_word(c, T_KEY1)), row_word(c, T_C2), row_word(c, T_C3));
    let p = dparams();
    var acc: array<f32, 8>;
    for (var j = 0u; j < DG; j++) {
        acc[j] = 0.0;
    }
    let nunits = (len + 3u) / 4u;
    for (var s = 0u; s < info.subs; s++) {
        let unit0 = (chunk * info.subs + s) * (WG * UPT);
        if (unit0 >= nunits) {
            break;
        }
        let ua = unit0 + lid;
        let ub = ua + WG;
        let ga = load4(g_offset, len, 4u * ua);
        let gb = load4(g_offset, len, 4u * ub);
        // Units past the end have g = 0: skip generating them (a whole thread's, or
        // its second unit's, in the last sub-chunk).
        let live_a = 4u * ua < len;
        let live_b = 4u * ub < len;
        if (live_b) {
            for (var j = 0u; j < nd; j++) {
                let dir = first + d0 + j;
                acc[j] += dot(unit_values(k, p, dir, ua), ga) + dot(unit_values(k, p, dir, ub), gb);
            }
        } else if (live_a) {
            for (var j = 0u; j < nd; j++) {
                let dir = first + d0 + j;
                acc[j] += dot(unit_values(k, p, dir, ua), ga);
            }
        }
    }
    for (var j = 0u; j < DG; j++) {
        red[j * WG + lid] = acc[j];
    }
    workgroupBarrier();
    if (lid < nd) {
        var t = 0.0;
        for (var i = 0u; i < WG; i++) {
            t += red[lid * WG + i];
        }
        partials[row_word(c, T_P_OFFSET) + (d0 + lid) * nchunks + chunk] = t;
    }
}

// Packed signs, exactly the cpu's order (kernels/src/random_bases/signs.rs): a chunk is
// SIGN_CHUNK = 4096 entries = 64 batches of 64; thread t owns entry t of every batch (the
// cpu's accumulator at row t / 16, lane t % 16) and sums g with its sign flipped over the
// batches in order; the 64 sums are reduced by the cpu's tree (rows pairwise, then lanes
// halving). Workgroup (compartment, chunk, group of DG directions); table rows as for
// project_partial with T_BLOCKS = chunks of SIGN_CHUNK. Only adds and sign flips: no
// fused multiply-add can change a bit.
const SIGN_CHUNK: u32 = 4096u;
const SIGN_WORDS: u32 = 128u;

@compute @workgroup_size(64)
fn project_signs_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let lin0 = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup: every thread takes the same branch.
    if (lin0 >= info.nchunks) {
        return;
    }
    let c = compartment_of(lin0);
    let lin = lin0 - row_word(c, T_WG_START);
    let nchunks = row_word(c, T_BLOCKS);
    let len = row_word(c, T_LEN);
    let dims = row_word(c, T_DIMS);
    let first = row_word(c, T_FIRST);
    let g_offset = row_word(c, T_G_OFFSET);
    let chunk = lin % nchunks;
    let d0 = (lin / nchunks) * DG;
    let nd = min(DG, dims - d0);
    let k = StreamKey(vec2<u32>(row_word(c, T_KEY0), row_word(c, T_KEY1)), row_word(c, T_C2), row_word(c, T_C3));
    let e0 = chunk * SIGN_CHUNK;
    let nb = (min(SIGN_CHUNK, len - e0) + 63u) / 64u;
    for (var j = 0u; j < nd; j++) {
        let dir = first + d0 + j;
        // The chunk's 128 words, two per thread (the cpu generates the same words).
        workgroupBarrier();
        let pair = stream_word_pair(k, dir, chunk * (SIGN_WORDS / 2u) + lid);
        wsig[2u * lid] = pair.x;
        wsig[2u * lid + 1u] = pair.y;
        workgroupBarrier();
        var acc = 0.0;
        for (var b = 0u; b < nb; b++) {
            let e = e0 + 64u * b + lid;
            if (e < len) {
                acc += sign_flip(g[g_offset + e], wsig[2u * b + lid / 32u], lid % 32u);
            }
        }
        red[j * WG + lid] = acc;
    }
    workgroupBarrier();
    if (lid < nd) {
        let r0 = lid * WG;
        var s: array<f32, 16>;
        for (var l = 0u; l < 16u; l++) {
            s[l] = (red[r0 + l] + red[r0 + 16u + l]) + (red[r0 + 32u + l] + red[r0 + 48u + l]);
        }
        for (var h = 8u; h > 0u; h = h / 2u) {
            for (var l = 0u; l < h; l++) {
                s[l] += s[l + h];
            }
        }
        partials[row_word(c, T_P_OFFSET) + (d0 + lid) * nchunks + chunk] = s[0];
    }
}

// One thread per coordinate j of Σ dims: scale · Σ over its compartment's chunks in order.
@compute @workgroup_size(64)
fn project_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let jg = (wid.x + wid.y * nwg.x) * WG + lid;
    if (jg >= info.dims) {
        return;
    }
    for (var c = 0u; c < info.len; c++) {
        let c_offset = row_word(c, T_C_OFFSET);
        let dims = row_word(c, T_DIMS);
        if (jg >= c_offset && jg - c_offset < dims) {
            let j = jg - c_offset;
            let nchunks = row_word(c, T_BLOCKS);
            var t = 0.0;
            let row = row_word(c, T_P_OFFSET) + j * nchunks;
            for (var ch = 0u; ch < nchunks; ch++) {
                t += partials_in[row + ch];
            }
            coords_out[jg] = info.scale * t;
            break;
        }
    }
}

// Compartment table rows (written by random_bases/gpu.rs, same layout).
const TABLE_ROW: u32 = 16u;
const T_KEY0: u32 = 0u;
const T_KEY1: u32 = 1u;
const T_C2: u32 = 2u;
const T_C3: u32 = 3u;
const T_LEN: u32 = 4u;
const T_DIMS: u32 = 5u;
const T_FIRST: u32 = 6u;
const T_G_OFFSET: u32 = 7u;
const T_C_OFFSET: u32 = 8u;
const T_GROUPS: u32 = 9u;      // direction groups (partial sums per element)
const T_GROUP_DIRS: u32 = 10u; // directions per group
const T_BLOCKS: u32 = 11u;     // element blocks of WG * UPT units
const T_WG_START: u32 = 12u;   // first workgroup of the compartment (blocks * groups each)
const T_P_OFFSET: u32 = 13u;   // start of the compartment's partials (groups * len)

fn row_word(c: u32, field: u32) -> u32 {
    return table[c * TABLE_ROW + field];
}

// Workgroup (compartment, element block, direction group): a thread owns units ua and
// ua + WG and sums its group's directions in order, coordinates staged 64 at a time.
@compute @workgroup_size(64)
fn expand_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let lin = wid.x + wid.y * nwg.x;
    if (lin >= info.nchunks) {
        return;
    }
    var c = 0u;
    for (var i = 1u; i < info.len; i++) {
        if (lin >= row_word(i, T_WG_START)) {
            c = i;
        }
    }
    let len = row_word(c, T_LEN);
    let dims = row_word(c, T_DIMS);
    let blocks = row_word(c, T_BLOCKS);
    let group_dirs = row_word(c, T_GROUP_DIRS);
    let local = lin - row_word(c, T_WG_START);
    let block = local % blocks;
    let group = local / blocks;
    let d0 = group * group_dirs;
    let nd = min(group_dirs, dims - min(dims, d0));
    let k = StreamKey(vec2<u32>(row_word(c, T_KEY0), row_word(c, T_KEY1)), row_word(c, T_C2), row_word(c, T_C3));
    let p = dparams();
    let first = row_word(c, T_FIRST);
    let c_offset = row_word(c, T_C_OFFSET);
    let ua = block * (WG * UPT) + lid;
    let ub = ua + WG;
    var acc_a = vec4<f32>(0.0);
    var acc_b = vec4<f32>(0.0);
    for (var t0 = 0u; t0 < nd; t0 += WG) {
        let n = min(WG, nd - t0);
        workgroupBarrier();
        if (lid < n) {
            wsh[lid] = info.scale * coords_in[c_offset + d0 + t0 + lid];
        }
        workgroupBarrier();
        for (var jj = 0u; jj < n; jj++) {
            let w = wsh[jj];
            let dir = first + d0 + t0 + jj;
            acc_a += w * unit_values(k, p, dir, ua);
            acc_b += w * unit_values(k, p, dir, ub);
        }
    }
    let row = row_word(c, T_P_OFFSET) + group * len;
    for (var i = 0u; i < 4u; i++) {
        let ea = 4u * ua + i;
        if (ea < len) {
            partials_out[row + ea] = acc_a[i];
        }
        let eb = 4u * ub + i;
        if (eb < len) {
            partials_out[row + eb] = acc_b[i];
        }
    }
}

// One thread per parameter: base plus the compartment's group partials in group order.
@compute @workgroup_size(64)
fn expand_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid;
    if (e >= info.dims) {
        return;
    }
    var v = base[e];
    for (var c = 0u; c < info.len; c++) {
        let g_offset = row_word(c, T_G_OFFSET);
        let len = row_word(c, T_LEN);
        if (e >= g_offset && e - g_offset < len) {
            let le = e - g_offset;
            let p0 = row_word(c, T_P_OFFSET);
            var s = partials_r[p0 + le];
            for (var g = 1u; g < row_word(c, T_GROUPS); g++) {
                s += partials_r[p0 + g * len + le];
            }
            v = v + s;
            break;
        }
    }
    out[e] = v;
}

@compute @workgroup_size(64)
fn generate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let lin = wid.x + wid.y * nwg.x;
    if (lin >= info.nchunks * info.dims) {
        return;
    }
    let j = lin / info.nchunks;
    let u = (lin % info.nchunks) * WG + lid;
    if (4u * u >= info.len) {
        return;
    }
    let v = info.scale * unit_values(skey(), dparams(), info.first + j, u);
    for (var i = 0u; i < 4u; i++) {
        let e = 4u * u + i;
        if (e < info.len) {
            gen_out[info.p_offset + j * info.len + e] = v[i];
        }
    }
}
