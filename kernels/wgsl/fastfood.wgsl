// Fastfood transforms (kernels/src/fastfood/, docs/random-directions.md §11): per block
// of L entries, M = H G Pi H B, drawn from the direction stream (random_bases_dist.wgsl
// in front of this file). The blocks of every (compartment, group) region lie one after
// another in the scratch buffers, each L-aligned, so a tile of TILE entries holds whole
// blocks (L < TILE) or part of one (L >= TILE).
//
//   ff_perm:     one thread per block: Fisher-Yates from the permutation words into
//                perm (pi) and inv (pi^-1).
//   ff_first:    workgroup per tile: load (project: g, zero past len; expand: B times
//                the weighted coordinates), butterfly stages h < min(L, TILE) in
//                workgroup memory, (project, L <= TILE: times G), store to x_out.
//   ff_stage:    one butterfly stage h >= TILE over the whole buffer (in place).
//   ff_diag:     project with L > TILE: x_out = G * x_out after the global stages.
//   ff_second:   workgroup per tile: gather (expand: G_t * X[pi(t)]; project:
//                X[pi^-1(t)]), stages h < min(L, TILE), store to x_out.
//   ff_project_reduce: one thread per coordinate: m * sum over chunks of (sum over the
//                chunk's blocks of B_t * Y[t]), chunks and blocks in order.
//   ff_expand_reduce:  one thread per parameter: base + (0 + Y_q0 + Y_q1 + ...);
//                generate mode: out[j*len + e] = Y (no base).
//
// Only + - * and sign flips on the data, stored to memory between stages, so the
// compiler has no multiply-add to fuse: with the same G the results are the native
// ones bit for bit.

struct Info {
    l: u32,          // block length L
    log2l: u32,
    nregions: u32,
    total: u32,      // blocks in the buffers
    h: u32,          // ff_stage: the stage
    mode: u32,       // 0 project, 1 expand, 2 generate
    n: u32,          // reduce: parameters (expand/generate) or coordinates (project)
    chunk_blocks: u32,
    bern_t: u32,
    bern_hi: f32,
    bern_lo: f32,
    scale: f32,      // project_reduce: m; ff_first expand: a
    g_in_first: u32, // project: apply G at the end of ff_first (L <= TILE)
    gen_row: u32,    // generate: the row j written
    gen_len: u32,    // generate: compartment length
    _pad: u32,
}

@group(0) @binding(0) var<uniform> info: Info;
@group(0) @binding(1) var<storage, read> table: array<u32>;

// ff_perm
@group(0) @binding(2) var<storage, read_write> perm_out: array<u32>;
@group(0) @binding(3) var<storage, read_write> inv_out: array<u32>;
// ff_first (in_f: g or coords)
@group(0) @binding(2) var<storage, read> in_f: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;
// ff_stage, ff_diag
@group(0) @binding(2) var<storage, read_write> x_io: array<f32>;
// ff_second
@group(0) @binding(2) var<storage, read> x_in: array<f32>;
@group(0) @binding(4) var<storage, read> perm_in: array<u32>;
@group(0) @binding(5) var<storage, read> inv_in: array<u32>;
// ff_project_reduce (x_in = Y)
@group(0) @binding(3) var<storage, read_write> coords_out: array<f32>;
// ff_expand_reduce (x_in = Y)
@group(0) @binding(4) var<storage, read> base: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const TILE: u32 = 2048u;
const WGT: u32 = 256u;
const PER: u32 = 8u; // TILE / WGT

const TABLE_ROW: u32 = 16u;
const R_KEY0: u32 = 0u;
const R_KEY1: u32 = 1u;
const R_C2: u32 = 2u;
const R_C3: u32 = 3u;
const R_LEN: u32 = 4u;
const R_DIMS: u32 = 5u;
const R_FIRST: u32 = 6u;
const R_G_OFFSET: u32 = 7u;
const R_C_OFFSET: u32 = 8u;
const R_GROUP: u32 = 9u;
const R_BLOCKS: u32 = 10u;
const R_START: u32 = 11u;

const DIR_BASE: u32 = 0x80000000u;
const PART_SIGNS: u32 = 0u;
const PART_DIAGONAL: u32 = 1u;
const PART_PERMUTATION: u32 = 2u;

var<workgroup> sh: array<f32, 2048>;

fn rw(r: u32, field: u32) -> u32 {
    return table[r * TABLE_ROW + field];
}

// The region holding buffer block b (regions in order of their first block).
fn region_of(b: u32) -> u32 {
    var r = 0u;
    for (var i = 1u; i < info.nregions; i++) {
        if (b >= rw(i, R_START)) {
            r = i;
        }
    }
    return r;
}

fn rkey(r: u32) -> StreamKey {
    return StreamKey(vec2<u32>(rw(r, R_KEY0), rw(r, R_KEY1)), rw(r, R_C2), rw(r, R_C3));
}

fn rdir(r: u32, part: u32) -> u32 {
    return DIR_BASE + 4u * rw(r, R_GROUP) + part;
}

fn word_at(k: StreamKey, dir: u32, e: u32) -> u32 {
    return unit_words(k, dir, e >> 2u)[e & 3u];
}

fn value_at(k: StreamKey, dir: u32, e: u32) -> f32 {
    return unit_values(k, DistParams(info.bern_t, info.bern_hi, info.bern_lo), dir, e >> 2u)[e & 3u];
}

fn flip(x: f32, w: u32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ (w & 0x80000000u));
}

// Butterfly stages h = 1 .. min(L, TILE)/2 on sh, in order.
fn local_stages(lid: u32) {
    let span = min(info.l, TILE);
    for (var h = 1u; h < span; h = h * 2u) {
        workgroupBarrier();
        for (var i = 0u; i < PER / 2u; i++) {
            let p = lid + i * WGT;
            let a = (p / h) * 2u * h + p % h;
            let u = sh[a];
            let v = sh[a + h];
            sh[a] = u + v;
            sh[a + h] = u - v;
        }
    }
    workgroupBarrier();
}

fn lin_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// One thread per block: pi by Fisher-Yates (t = L-1 down to 1, swap t and
// mulhi(word_t, t + 1)), and its inverse.
@compute @workgroup_size(64)
fn ff_perm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let b = lin_id(wid, nwg) * 64u + lid;
    if (b >= info.total) {
        return;
    }
    let r = region_of(b);
    let i = b - rw(r, R_START);
    let k = rkey(r);
    let dir = rdir(r, PART_PERMUTATION);
    let l = info.l;
    let o = b * l;
    for (var t = 0u; t < l; t++) {
        perm_out[o + t] = t;
    }
    var unit = 0xffffffffu;
    var words = vec4<u32>(0u);
    for (var t = l - 1u; t >= 1u; t--) {
        let e = i * l + t;
        if ((e >> 2u) != unit) {
            unit = e >> 2u;
            words = unit_words(k, dir, unit);
        }
        let j = mulhi32(words[e & 3u], t + 1u);
        let a = perm_out[o + t];
        perm_out[o + t] = perm_out[o + j];
        perm_out[o + j] = a;
    }
    for (var t = 0u; t < l; t++) {
        inv_out[o + perm_out[o + t]] = t;
    }
}

// The first half of a transform on one tile.
@compute @workgroup_size(256)
fn ff_first(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let tile = lin_id(wid, nwg);
    let end = info.total * info.l;
    for (var s = 0u; s < PER; s++) {
        let loc = lid + s * WGT;
        let x = tile * TILE + loc;
        var v = 0.0;
        if (x < end) {
            let b = x >> info.log2l;
            let t = x & (info.l - 1u);
            let r = region_of(b);
            let i = b - rw(r, R_START);
            let e = i * info.l + t;
            if (info.mode == 0u) {
                if (e < rw(r, R_LEN)) {
                    v = in_f[rw(r, R_G_OFFSET) + e];
                }
            } else {
                let j = rw(r, R_GROUP) * info.l + t;
                let first = rw(r, R_FIRST);
                if (j >= first && j - first < rw(r, R_DIMS)) {
                    v = info.scale * in_f[rw(r, R_C_OFFSET) + j - first];
                }
                v = flip(v, word_at(rkey(r), rdir(r, PART_SIGNS), e));
            }
        }
        sh[loc] = v;
    }
    local_stages(lid);
    for (var s = 0u; s < PER; s++) {
        let loc = lid + s * WGT;
        let x = tile * TILE + loc;
        if (x < end) {
            var v = sh[loc];
            if (info.g_in_first != 0u) {
                let b = x >> info.log2l;
                let r = region_of(b);
                let e = (b - rw(r, R_START)) * info.l + (x & (info.l - 1u));
                v = value_at(rkey(r), rdir(r, PART_DIAGONAL), e) * v;
            }
            x_out[x] = v;
        }
    }
}

// One butterfly stage h (>= TILE) over every block, in place.
@compute @workgroup_size(64)
fn ff_stage(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let p = lin_id(wid, nwg) * 64u + lid;
    let half = info.l / 2u;
    if (p >= info.total * half) {
        return;
    }
    let b = p / half;
    let w = p % half;
    let h = info.h;
    let a = b * info.l + (w / h) * 2u * h + w % h;
    let u = x_io[a];
    let v = x_io[a + h];
    x_io[a] = u + v;
    x_io[a + h] = u - v;
}

// x = G * x elementwise (project, after the global stages of the first transform).
@compute @workgroup_size(64)
fn ff_diag(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let x = lin_id(wid, nwg) * 64u + lid;
    if (x >= info.total * info.l) {
        return;
    }
    let b = x >> info.log2l;
    let r = region_of(b);
    let e = (b - rw(r, R_START)) * info.l + (x & (info.l - 1u));
    x_io[x] = value_at(rkey(r), rdir(r, PART_DIAGONAL), e) * x_io[x];
}

// The second half of a transform on one tile: the permutation (and, expanding, G),
// then the stages.
@compute @workgroup_size(256)
fn ff_second(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let tile = lin_id(wid, nwg);
    let end = info.total * info.l;
    for (var s = 0u; s < PER; s++) {
        let loc = lid + s * WGT;
        let x = tile * TILE + loc;
        var v = 0.0;
        if (x < end) {
            let b = x >> info.log2l;
            let o = b * info.l;
            if (info.mode == 0u) {
                v = x_in[o + inv_in[x]];
            } else {
                let r = region_of(b);
                let e = (b - rw(r, R_START)) * info.l + (x & (info.l - 1u));
                v = value_at(rkey(r), rdir(r, PART_DIAGONAL), e) * x_in[o + perm_in[x]];
            }
        }
        sh[loc] = v;
    }
    local_stages(lid);
    for (var s = 0u; s < PER; s++) {
        let loc = lid + s * WGT;
        let x = tile * TILE + loc;
        if (x < end) {
            x_out[x] = sh[loc];
        }
    }
}

// One thread per coordinate: m * sum over chunks in order of (sum over the chunk's
// blocks in order of B_t * Y[block, t]).
@compute @workgroup_size(64)
fn ff_project_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let jg = lin_id(wid, nwg) * 64u + lid;
    if (jg >= info.n) {
        return;
    }
    for (var r = 0u; r < info.nregions; r++) {
        let c_offset = rw(r, R_C_OFFSET);
        let dims = rw(r, R_DIMS);
        if (jg < c_offset || jg - c_offset >= dims) {
            continue;
        }
        let j = rw(r, R_FIRST) + jg - c_offset;
        if ((j >> info.log2l) != rw(r, R_GROUP)) {
            continue;
        }
        let t = j & (info.l - 1u);
        let k = rkey(r);
        let dir = rdir(r, PART_SIGNS);
        let nb = rw(r, R_BLOCKS);
        let start = rw(r, R_START);
        var total = 0.0;
        for (var c0 = 0u; c0 < nb; c0 += info.chunk_blocks) {
            var s = 0.0;
            for (var i = c0; i < min(nb, c0 + info.chunk_blocks); i++) {
                s += flip(x_in[(start + i) * info.l + t], word_at(k, dir, i * info.l + t));
            }
            total += s;
        }
        coords_out[jg] = info.scale * total;
        return;
    }
}

// One thread per parameter: base + (0 + the groups' rows in order); generate mode
// writes row gen_row of the materialised directions without base.
@compute @workgroup_size(64)
fn ff_expand_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = lin_id(wid, nwg) * 64u + lid;
    if (e >= info.n) {
        return;
    }
    if (info.mode == 2u) {
        // One region (one direction's group), compartment entries 0 .. gen_len.
        out[info.gen_row * info.gen_len + e] = x_in[rw(0u, R_START) * info.l + e];
        return;
    }
    var acc = 0.0;
    var inside = false;
    for (var r = 0u; r < info.nregions; r++) {
        let g_offset = rw(r, R_G_OFFSET);
        if (e >= g_offset && e - g_offset < rw(r, R_LEN)) {
            acc += x_in[rw(r, R_START) * info.l + e - g_offset];
            inside = true;
        }
    }
    if (inside) {
        out[e] = base[e] + acc;
    } else {
        out[e] = base[e];
    }
}
