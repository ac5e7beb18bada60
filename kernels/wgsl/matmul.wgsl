// Tiled GEMM: C[m, n] = op(A) · op(B), row-major f32, f32 accumulation.
//
// A is stored [m, k] (or [k, m] when TRANS_A), B [k, n] (or [n, k] when TRANS_B).
// Each workgroup computes one BM × BN tile of C with WG_X × WG_Y threads; each thread
// owns a TM × TN block of outputs held in registers: rows ty·TM .. ty·TM + TM, and
// TN / 4 groups of 4 columns, tx·4 (and, for TN = 8, BN/2 + tx·4), so that neighbouring
// threads read neighbouring 16-byte words of the B tile (no bank conflicts) and write
// neighbouring words of C.
// The K dimension is walked in steps of BK: both operand tiles are staged in workgroup
// memory k-major (As[kk][m], Bs[kk][n], as vec4 slots) so that the inner loop reads
// contiguous vec4 fragments and does TM·TN/4 vec4 FMAs per k, with no branches. Each
// thread stages A_PER units of A and B_PER of B per slice, and loads the next slice's
// units into registers before it multiplies the current one (a register prefetch: the
// loads are in flight during the FMAs).
// Transposes are resolved in the tile loads (override constants, folded at pipeline
// creation); loads past the matrix edges write zeros, stores are bounds-checked (whole
// vec4 stores when n % 4 == 0), so any M, N, K works. Every output is one fma chain over
// k = 0, 1, 2, ... from zero (padding adds exact zeros): deterministic, and the same for
// every tile shape.
//
// The inner product and the stores are written out per register block (TM × TN in
// {4, 8}²) so that the accumulator array is only ever indexed by constants: on llvmpipe a
// loop over TM / TN that is not fully unrolled leaves a dynamic index, which sends the
// whole accumulator array to memory (measured: 8 × 8 blocks ran 3× slower that way). The
// staged units are named fields for the same reason.
//
// Entry points differ only in how the operands are read from global memory:
// matmul_ss (scalar A, scalar B), matmul_vs (vec4 A), matmul_sv (vec4 B), matmul_vv.
// matmul_split_sum adds split-K partials in split order (see k_range).
// The vec4 paths need the operand's contiguous dimension to be a multiple of 4 (the
// launcher checks). matmul_f16.wgsl is prepended to this file to build the f16 module.
//
// Constraints (checked by the launcher): TM, TN in {4, 8}; BM % TM == 0, BN % TN == 0,
// BM % 4 == 0, BN % 4 == 0, BK % 4 == 0, WG_X = BN / TN, WG_Y = BM / TM,
// THREADS = WG_X · WG_Y, A_SLOTS = BK · BM / 4 = A_PER · THREADS,
// B_SLOTS = BK · BN / 4 = B_PER · THREADS, A_PER and B_PER in 1..=4.

struct Info {
    m: u32,       // matmul_split_sum: entries of C
    k: u32,       // matmul_split_sum: number of splits
    n: u32,
    k_chunk: u32, // split-K: k per split (a multiple of BK; 0 = no split)
}

@group(0) @binding(0) var<uniform> info: Info;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
// matmul_split_sum: partials at binding 1 (a), C at binding 2.
@group(0) @binding(2) var<storage, read_write> split_out: array<f32>;

// Split-K: workgroup z computes the fma chains over k in [z·k_chunk, (z+1)·k_chunk)
// into partials[z] (C's layout, offset by z·m·n); matmul_split_sum then adds the
// partials in z order. Without a split (k_chunk = 0) z = 0 covers all of k.
var<private> c_base: u32 = 0u;

fn k_range(wid: vec3<u32>) -> vec2<u32> {
    if (info.k_chunk == 0u) {
        return vec2(0u, info.k);
    }
    let begin = wid.z * info.k_chunk;
    return vec2(begin, min(info.k, begin + info.k_chunk));
}

override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;
override TM: u32 = 4u;
override TN: u32 = 4u;
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override A_SLOTS: u32 = 256u;
override B_SLOTS: u32 = 256u;
override THREADS: u32 = 256u;
override A_PER: u32 = 1u;
override B_PER: u32 = 1u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;

// Operand tiles, k-major: As[kk * BM/4 + m/4][m % 4] = op(A)[row0 + m, k0 + kk].
var<workgroup> As: array<vec4<f32>, A_SLOTS>;
var<workgroup> Bs: array<vec4<f32>, B_SLOTS>;

struct Tile {
    tx: u32,
    ty: u32,
    tid: u32,
    row0: u32,
    col0: u32,
}

fn tile_of(lid: vec3<u32>, wid: vec3<u32>) -> Tile {
    return Tile(lid.x, lid.y, lid.y * WG_X + lid.x, wid.y * BM, wid.x * BN);
}

// ---- global -> workgroup tile loads -------------------------------------------------
//
// A tile is BM × BK values in vec4 units of 4 values contiguous in memory: with TRANS_A
// (A stored [k, m]) a unit is 4 rows at one k and lands as one vec4 slot; otherwise
// (A stored [m, k]) it is 4 k's of one row and is scattered over 4 slots. B likewise.

// op(A)[r, kk], zero outside the matrix.
fn a_at(r: u32, kk: u32) -> f32 {
    if (r >= info.m || kk >= info.k) {
        return 0.0;
    }
    if (TRANS_A) {
        return a[kk * info.m + r];
    }
    return a[r * info.k + kk];
}

// op(B)[kk, col], zero outside the matrix.
fn b_at(kk: u32, col: u32) -> f32 {
    if (kk >= info.k || col >= info.n) {
        return 0.0;
    }
    if (TRANS_B) {
        return b[col * info.k + kk];
    }
    return b[kk * info.n + col];
}

// The four values of A unit (r, kk) contiguous in memory.
fn a_unit_scalar(r: u32, kk: u32) -> vec4<f32> {
    if (TRANS_A) {
        return vec4(a_at(r, kk), a_at(r + 1u, kk), a_at(r + 2u, kk), a_at(r + 3u, kk));
    }
    return vec4(a_at(r, kk), a_at(r, kk + 1u), a_at(r, kk + 2u), a_at(r, kk + 3u));
}

// Same with one vec4 load (contiguous dimension % 4 == 0, so a unit is all in or all out).
fn a_unit_vec(r: u32, kk: u32) -> vec4<f32> {
    if (r >= info.m || kk >= info.k) {
        return vec4(0.0);
    }
    if (TRANS_A) {
        return a4[(kk * info.m + r) / 4u];
    }
    return a4[(r * info.k + kk) / 4u];
}

fn b_unit_scalar(kk: u32, col: u32) -> vec4<f32> {
    if (TRANS_B) {
        return vec4(b_at(kk, col), b_at(kk + 1u, col), b_at(kk + 2u, col), b_at(kk + 3u, col));
    }
    return vec4(b_at(kk, col), b_at(kk, col + 1u), b_at(kk, col + 2u), b_at(kk, col + 3u));
}

fn b_unit_vec(kk: u32, col: u32) -> vec4<f32> {
    if (kk >= info.k || col >= info.n) {
        return vec4(0.0);
    }
    if (TRANS_B) {
        return b4[(col * info.k + kk) / 4u];
    }
    return b4[(kk * info.n + col) / 4u];
}

// Unit u of the A tile: its (row, k) offsets inside the tile.
fn a_unit_pos(u: u32) -> vec2<u32> {
    if (TRANS_A) {
        return vec2((u % (BM / 4u)) * 4u, u / (BM / 4u));
    }
    return vec2(u / (BK / 4u), (u % (BK / 4u)) * 4u);
}

fn b_unit_pos(u: u32) -> vec2<u32> {
    // (k, col) offsets inside the tile.
    if (TRANS_B) {
        return vec2((u % (BK / 4u)) * 4u, u / (BK / 4u));
    }
    return vec2(u / (BN / 4u), (u % (BN / 4u)) * 4u);
}

fn store_a_unit(u: u32, v: vec4<f32>) {
    if (TRANS_A) {
        // 4 rows at one k: slot kk * BM/4 + m/4 == u.
        As[u] = v;
    } else {
        let p = a_unit_pos(u);
        let slot = p.x / 4u;
        let lane = p.x % 4u;
        As[(p.y + 0u) * (BM / 4u) + slot][lane] = v.x;
        As[(p.y + 1u) * (BM / 4u) + slot][lane] = v.y;
        As[(p.y + 2u) * (BM / 4u) + slot][lane] = v.z;
        As[(p.y + 3u) * (BM / 4u) + slot][lane] = v.w;
    }
}

fn store_b_unit(u: u32, v: vec4<f32>) {
    if (TRANS_B) {
        let p = b_unit_pos(u);
        let slot = p.y / 4u;
        let lane = p.y % 4u;
        Bs[(p.x + 0u) * (BN / 4u) + slot][lane] = v.x;
        Bs[(p.x + 1u) * (BN / 4u) + slot][lane] = v.y;
        Bs[(p.x + 2u) * (BN / 4u) + slot][lane] = v.z;
        Bs[(p.x + 3u) * (BN / 4u) + slot][lane] = v.w;
    } else {
        // 4 columns at one k: slot kk * BN/4 + n/4 == u.
        Bs[u] = v;
    }
}

// The units one thread stages per slice (A_PER or B_PER of them).
struct Units {
    v0: vec4<f32>,
    v1: vec4<f32>,
    v2: vec4<f32>,
    v3: vec4<f32>,
}

// (row, k) in op(A) of this thread's unit i of the A tile at k0.
fn a_src(t: Tile, i: u32, k0: u32) -> vec2<u32> {
    let p = a_unit_pos(t.tid + i * THREADS);
    return vec2(t.row0 + p.x, k0 + p.y);
}

// (k, col) in op(B) of this thread's unit i of the B tile at k0.
fn b_src(t: Tile, i: u32, k0: u32) -> vec2<u32> {
    let p = b_unit_pos(t.tid + i * THREADS);
    return vec2(k0 + p.x, t.col0 + p.y);
}

fn fetch_a_scalar(t: Tile, k0: u32) -> Units {
    var u: Units;
    var s = a_src(t, 0u, k0);
    u.v0 = a_unit_scalar(s.x, s.y);
    if (A_PER > 1u) { s = a_src(t, 1u, k0); u.v1 = a_unit_scalar(s.x, s.y); }
    if (A_PER > 2u) { s = a_src(t, 2u, k0); u.v2 = a_unit_scalar(s.x, s.y); }
    if (A_PER > 3u) { s = a_src(t, 3u, k0); u.v3 = a_unit_scalar(s.x, s.y); }
    return u;
}

fn fetch_a_vec(t: Tile, k0: u32) -> Units {
    var u: Units;
    var s = a_src(t, 0u, k0);
    u.v0 = a_unit_vec(s.x, s.y);
    if (A_PER > 1u) { s = a_src(t, 1u, k0); u.v1 = a_unit_vec(s.x, s.y); }
    if (A_PER > 2u) { s = a_src(t, 2u, k0); u.v2 = a_unit_vec(s.x, s.y); }
    if (A_PER > 3u) { s = a_src(t, 3u, k0); u.v3 = a_unit_vec(s.x, s.y); }
    return u;
}

fn fetch_b_scalar(t: Tile, k0: u32) -> Units {
    var u: Units;
    var s = b_src(t, 0u, k0);
    u.v0 = b_unit_scalar(s.x, s.y);
    if (B_PER > 1u) { s = b_src(t, 1u, k0); u.v1 = b_unit_scalar(s.x, s.y); }
    if (B_PER > 2u) { s = b_src(t, 2u, k0); u.v2 = b_unit_scalar(s.x, s.y); }
    if (B_PER > 3u) { s = b_src(t, 3u, k0); u.v3 = b_unit_scalar(s.x, s.y); }
    return u;
}

fn fetch_b_vec(t: Tile, k0: u32) -> Units {
    var u: Units;
    var s = b_src(t, 0u, k0);
    u.v0 = b_unit_vec(s.x, s.y);
    if (B_PER > 1u) { s = b_src(t, 1u, k0); u.v1 = b_unit_vec(s.x, s.y); }
    if (B_PER > 2u) { s = b_src(t, 2u, k0); u.v2 = b_unit_vec(s.x, s.y); }
    if (B_PER > 3u) { s = b_src(t, 3u, k0); u.v3 = b_unit_vec(s.x, s.y); }
    return u;
}

// Writes the fetched units into the workgroup tiles.
fn stash(t: Tile, ua: Units, ub: Units) {
    store_a_unit(t.tid, ua.v0);
    if (A_PER > 1u) { store_a_unit(t.tid + THREADS, ua.v1); }
    if (A_PER > 2u) { store_a_unit(t.tid + 2u * THREADS, ua.v2); }
    if (A_PER > 3u) { store_a_unit(t.tid + 3u * THREADS, ua.v3); }
    store_b_unit(t.tid, ub.v0);
    if (B_PER > 1u) { store_b_unit(t.tid + THREADS, ub.v1); }
    if (B_PER > 2u) { store_b_unit(t.tid + 2u * THREADS, ub.v2); }
    if (B_PER > 3u) { store_b_unit(t.tid + 3u * THREADS, ub.v3); }
}

// ---- register-blocked inner product -------------------------------------------------

// acc[i * TN/4 + j] holds C[ty·TM + i, 4·(tx + j·WG_X) .. + 4]. Written out per block shape
// (the branch is on override constants, so only one survives specialisation): constant
// indices keep the accumulators in registers.
fn accumulate(t: Tile, acc: ptr<function, array<vec4<f32>, 16>>) {
    if (TM == 4u && TN == 4u) {
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = As[kk * (BM / 4u) + t.ty];
            let b0 = Bs[kk * (BN / 4u) + t.tx];
            (*acc)[0] = fma(vec4(a0.x), b0, (*acc)[0]);
            (*acc)[1] = fma(vec4(a0.y), b0, (*acc)[1]);
            (*acc)[2] = fma(vec4(a0.z), b0, (*acc)[2]);
            (*acc)[3] = fma(vec4(a0.w), b0, (*acc)[3]);
        }
    } else if (TM == 8u && TN == 4u) {
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = As[kk * (BM / 4u) + 2u * t.ty];
            let a1 = As[kk * (BM / 4u) + 2u * t.ty + 1u];
            let b0 = Bs[kk * (BN / 4u) + t.tx];
            (*acc)[0] = fma(vec4(a0.x), b0, (*acc)[0]);
            (*acc)[1] = fma(vec4(a0.y), b0, (*acc)[1]);
            (*acc)[2] = fma(vec4(a0.z), b0, (*acc)[2]);
            (*acc)[3] = fma(vec4(a0.w), b0, (*acc)[3]);
            (*acc)[4] = fma(vec4(a1.x), b0, (*acc)[4]);
            (*acc)[5] = fma(vec4(a1.y), b0, (*acc)[5]);
            (*acc)[6] = fma(vec4(a1.z), b0, (*acc)[6]);
            (*acc)[7] = fma(vec4(a1.w), b0, (*acc)[7]);
        }
    } else if (TM == 4u && TN == 8u) {
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = As[kk * (BM / 4u) + t.ty];
            let b0 = Bs[kk * (BN / 4u) + t.tx];
            let b1 = Bs[kk * (BN / 4u) + t.tx + WG_X];
            (*acc)[0] = fma(vec4(a0.x), b0, (*acc)[0]);
            (*acc)[1] = fma(vec4(a0.x), b1, (*acc)[1]);
            (*acc)[2] = fma(vec4(a0.y), b0, (*acc)[2]);
            (*acc)[3] = fma(vec4(a0.y), b1, (*acc)[3]);
            (*acc)[4] = fma(vec4(a0.z), b0, (*acc)[4]);
            (*acc)[5] = fma(vec4(a0.z), b1, (*acc)[5]);
            (*acc)[6] = fma(vec4(a0.w), b0, (*acc)[6]);
            (*acc)[7] = fma(vec4(a0.w), b1, (*acc)[7]);
        }
    } else {
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = As[kk * (BM / 4u) + 2u * t.ty];
            let a1 = As[kk * (BM / 4u) + 2u * t.ty + 1u];
            let b0 = Bs[kk * (BN / 4u) + t.tx];
            let b1 = Bs[kk * (BN / 4u) + t.tx + WG_X];
            (*acc)[0] = fma(vec4(a0.x), b0, (*acc)[0]);
            (*acc)[1] = fma(vec4(a0.x), b1, (*acc)[1]);
            (*acc)[2] = fma(vec4(a0.y), b0, (*acc)[2]);
            (*acc)[3] = fma(vec4(a0.y), b1, (*acc)[3]);
            (*acc)[4] = fma(vec4(a0.z), b0, (*acc)[4]);
            (*acc)[5] = fma(vec4(a0.z), b1, (*acc)[5]);
            (*acc)[6] = fma(vec4(a0.w), b0, (*acc)[6]);
            (*acc)[7] = fma(vec4(a0.w), b1, (*acc)[7]);
            (*acc)[8] = fma(vec4(a1.x), b0, (*acc)[8]);
            (*acc)[9] = fma(vec4(a1.x), b1, (*acc)[9]);
            (*acc)[10] = fma(vec4(a1.y), b0, (*acc)[10]);
            (*acc)[11] = fma(vec4(a1.y), b1, (*acc)[11]);
            (*acc)[12] = fma(vec4(a1.z), b0, (*acc)[12]);
            (*acc)[13] = fma(vec4(a1.z), b1, (*acc)[13]);
            (*acc)[14] = fma(vec4(a1.w), b0, (*acc)[14]);
            (*acc)[15] = fma(vec4(a1.w), b1, (*acc)[15]);
        }
    }
}

// C[r, col .. col + 4] = v (col % 4 == 0), skipping what lies outside C: one 16-byte
// store when n % 4 == 0 (then the four are in or out together), else one per value.
fn store4(r: u32, col: u32, v: vec4<f32>) {
    if (r >= info.m || col >= info.n) {
        return;
    }
    let i = c_base + r * info.n + col;
    if (info.n % 4u == 0u) {
        c[i / 4u] = v;
        return;
    }
    c[i / 4u][i % 4u] = v.x;
    if (col + 1u < info.n) {
        c[(i + 1u) / 4u][(i + 1u) % 4u] = v.y;
    }
    if (col + 2u < info.n) {
        c[(i + 2u) / 4u][(i + 2u) % 4u] = v.z;
    }
    if (col + 3u < info.n) {
        c[(i + 3u) / 4u][(i + 3u) % 4u] = v.w;
    }
}

// Written out like accumulate: only constant indices into acc.
fn store_c(t: Tile, acc: ptr<function, array<vec4<f32>, 16>>) {
    let r = t.row0 + t.ty * TM;
    let col = t.col0 + t.tx * 4u;
    if (TN == 4u) {
        store4(r, col, (*acc)[0]);
        store4(r + 1u, col, (*acc)[1]);
        store4(r + 2u, col, (*acc)[2]);
        store4(r + 3u, col, (*acc)[3]);
        if (TM == 8u) {
            store4(r + 4u, col, (*acc)[4]);
            store4(r + 5u, col, (*acc)[5]);
            store4(r + 6u, col, (*acc)[6]);
            store4(r + 7u, col, (*acc)[7]);
        }
    } else {
        let hi = col + 4u * WG_X;
        store4(r, col, (*acc)[0]);
        store4(r, hi, (*acc)[1]);
        store4(r + 1u, col, (*acc)[2]);
        store4(r + 1u, hi, (*acc)[3]);
        store4(r + 2u, col, (*acc)[4]);
        store4(r + 2u, hi, (*acc)[5]);
        store4(r + 3u, col, (*acc)[6]);
        store4(r + 3u, hi, (*acc)[7]);
        if (TM == 8u) {
            store4(r + 4u, col, (*acc)[8]);
            store4(r + 4u, hi, (*acc)[9]);
            store4(r + 5u, col, (*acc)[10]);
            store4(r + 5u, hi, (*acc)[11]);
            store4(r + 6u, col, (*acc)[12]);
            store4(r + 6u, hi, (*acc)[13]);
            store4(r + 7u, col, (*acc)[14]);
            store4(r + 7u, hi, (*acc)[15]);
        }
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_ss(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>) {
    let t = tile_of(lid, wid);
    var acc: array<vec4<f32>, 16>;
    let kr = k_range(wid);
    c_base = wid.z * info.m * info.n;
    var ua = fetch_a_scalar(t, kr.x);
    var ub = fetch_b_scalar(t, kr.x);
    for (var k0 = kr.x; k0 < kr.y; k0 += BK) {
        stash(t, ua, ub);
        workgroupBarrier();
        if (k0 + BK < kr.y) {
            ua = fetch_a_scalar(t, k0 + BK);
            ub = fetch_b_scalar(t, k0 + BK);
        }
        accumulate(t, &acc);
        workgroupBarrier();
    }
    store_c(t, &acc);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_vs(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>) {
    let t = tile_of(lid, wid);
    var acc: array<vec4<f32>, 16>;
    let kr = k_range(wid);
    c_base = wid.z * info.m * info.n;
    var ua = fetch_a_vec(t, kr.x);
    var ub = fetch_b_scalar(t, kr.x);
    for (var k0 = kr.x; k0 < kr.y; k0 += BK) {
        stash(t, ua, ub);
        workgroupBarrier();
        if (k0 + BK < kr.y) {
            ua = fetch_a_vec(t, k0 + BK);
            ub = fetch_b_scalar(t, k0 + BK);
        }
        accumulate(t, &acc);
        workgroupBarrier();
    }
    store_c(t, &acc);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_sv(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>) {
    let t = tile_of(lid, wid);
    var acc: array<vec4<f32>, 16>;
    let kr = k_range(wid);
    c_base = wid.z * info.m * info.n;
    var ua = fetch_a_scalar(t, kr.x);
    var ub = fetch_b_vec(t, kr.x);
    for (var k0 = kr.x; k0 < kr.y; k0 += BK) {
        stash(t, ua, ub);
        workgroupBarrier();
        if (k0 + BK < kr.y) {
            ua = fetch_a_scalar(t, k0 + BK);
            ub = fetch_b_vec(t, k0 + BK);
        }
        accumulate(t, &acc);
        workgroupBarrier();
    }
    store_c(t, &acc);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_vv(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>) {
    let t = tile_of(lid, wid);
    var acc: array<vec4<f32>, 16>;
    let kr = k_range(wid);
    c_base = wid.z * info.m * info.n;
    var ua = fetch_a_vec(t, kr.x);
    var ub = fetch_b_vec(t, kr.x);
    for (var k0 = kr.x; k0 < kr.y; k0 += BK) {
        stash(t, ua, ub);
        workgroupBarrier();
        if (k0 + BK < kr.y) {
            ua = fetch_a_vec(t, k0 + BK);
            ub = fetch_b_vec(t, k0 + BK);
        }
        accumulate(t, &acc);
        workgroupBarrier();
    }
    store_c(t, &acc);
}

// C[i] = partials[0][i] + partials[1][i] + ... in split order (info.m = entries of C,
// info.k = splits); one thread per entry, grid folded onto x and y.
@compute @workgroup_size(256)
fn matmul_split_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= info.m) {
        return;
    }
    var s = a[i];
    for (var z = 1u; z < info.k; z++) {
        s += a[z * info.m + i];
    }
    split_out[i] = s;
}
