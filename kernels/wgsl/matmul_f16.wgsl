// f16-storage GEMM and the f32 -> f16 cast. Needs SHADER_F16.
//
// This file is prepended to matmul.wgsl (the launcher concatenates the two sources), so it
// reuses that file's Info, tiles, prefetch, inner loop and stores: only the global
// loads differ. Operands are stored as f16 (array<f16>, or array<vec4<f16>> for the
// vec4 paths), converted to f32 when fetched (half the bytes from device memory of the
// f32 kernel), and accumulated in f32; C is f32.
enable f16;

@group(0) @binding(1) var<storage, read> ah: array<f16>;
@group(0) @binding(2) var<storage, read> bh: array<f16>;
@group(0) @binding(1) var<storage, read> ah4: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> bh4: array<vec4<f16>>;

// Cast: dst[i] = (f16(src[2i]), f16(src[2i + 1])), with a zero past an odd end.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec2<f16>>;

fn ah_at(r: u32, kk: u32) -> f32 {
    if (r >= info.m || kk >= info.k) {
        return 0.0;
    }
    if (TRANS_A) {
        return f32(ah[kk * info.m + r]);
    }
    return f32(ah[r * info.k + kk]);
}

fn bh_at(kk: u32, col: u32) -> f32 {
    if (kk >= info.k || col >= info.n) {
        return 0.0;
    }
    if (TRANS_B) {
        return f32(bh[col * info.k + kk]);
    }
    return f32(bh[kk * info.n + col]);
}

fn ah_unit_scalar(r: u32, kk: u32) -> vec4<f32> {
    if (TRANS_A) {
        return vec4(ah_at(r, kk), ah_at(r + 1u, kk), ah_at(r + 2u, kk), ah_at(r + 3u, kk));
    }
    return vec4(ah_at(r, kk), ah_at(r, kk + 1u), ah_at(r, kk + 2u), ah_at(r, kk + 3u));
}

fn ah_unit_vec(r: u32, kk: u32) -> vec4<f32> {
    if (r >= info.m || kk >= info.k) {
        return vec4(0.0);
    }
    if (TRANS_A) {
        return vec4<f32>(ah4[(kk * info.m + r) / 4u]);
    }
    return vec4<f32>(ah4[(r * info.k + kk) / 4u]);
}

fn bh_unit_scalar(kk: u32, col: u32) -> vec4<f32> {
    if (TRANS_B) {
        return vec4(bh_at(kk, col), bh_at(kk + 1u, col), bh_at(kk + 2u, col), bh_at(kk + 3u, col));
    }
    return vec4(bh_at(kk, col), bh_at(kk, col + 1u), bh_at(kk, col + 2u), bh_at(kk, col + 3u));
}

fn bh_unit_vec(kk: u32, col: u32) -> vec4<f32> {
    if (kk >= info.k || col >= info.n) {
        return vec4(0.0);
    }
    if (TRANS_B) {
        return vec4<f32>(bh4[(col * info.k + kk) / 4u]);
    }
    return vec4<f32>(bh4[(kk * info.n + col) / 4u]);
}

fn fetch_ah_scalar(t: Tile, k0: u32) -> Units {
    var u: Units;
    var s = a_src(t, 0u, k0);
    u.v0 = ah_unit_scalar(s.x, s.y);
    if (A_PER > 1u) { s = a_src(t, 1u, k0); u.v1 = ah_unit_scalar(s.x, s.y); }
    if (A_PER > 2u) { s = a_src(t, 2u, k0); u.v2 = ah_unit_scalar(s.x, s.y); }
    if (A_PER > 3u) { s = a_src(t, 3u, k0); u.v3 = ah_unit_scalar(s.x, s.y); }
    return u;
}

fn fetch_ah_vec(t: Tile, k0: u32) -> Units {
    var u: Units;
    var s = a_src(t, 0u, k0);
    u.v0 = ah_unit_vec(s.x, s.y);
    if (A_PER > 1u) { s = a_src(t, 1u, k0); u.v1 = ah_unit_vec(s.x, s.y); }
    if (A_PER > 2u) { s = a_src(t, 2u, k0); u.v2 = ah_unit_vec(s.x, s.y); }
    if (A_PER > 3u) { s = a_src(t, 3u, k0); u.v3 = ah_unit_vec(s.x, s.y); }
    return u;
}

fn fetch_bh_scalar(t: Tile, k0: u32) -> Units {
    var u: Units;
    var s = b_src(t, 0u, k0);
    u.v0 = bh_unit_scalar(s.x, s.y);
    if (B_PER > 1u) { s = b_src(t, 1u, k0); u.v1 = bh_unit_scalar(s.x, s.y); }
    if (B_PER > 2u) { s = b_src(t, 2u, k0); u.v2 = bh_unit_scalar(s.x, s.y); }
    if (B_PER > 3u) { s = b_src(t, 3u, k0); u.v3 = bh_unit_scalar(s.x, s.y); }
    return u;
}

fn fetch_bh_vec(t: Tile, k0: u32) -> Units {
    var u: Units;
    var s = b_src(t, 0u, k0);
    u.v0 = bh_unit_vec(s.x, s.y);
    if (B_PER > 1u) { s = b_src(t, 1u, k0); u.v1 = bh_unit_vec(s.x, s.y); }
    if (B_PER > 2u) { s = b_src(t, 2u, k0); u.v2 = bh_unit_vec(s.x, s.y); }
    if (B_PER > 3u) { s = b_src(t, 3u, k0); u.v3 = bh_unit_vec(s.x, s.y); }
    return u;
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_f16_ss(@builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(workgroup_id) wid: vec3<u32>) {
    let t = tile_of(lid, wid);
    var acc: array<vec4<f32>, 16>;
    var ua = fetch_ah_scalar(t, 0u);
    var ub = fetch_bh_scalar(t, 0u);
    for (var k0 = 0u; k0 < info.k; k0 += BK) {
        stash(t, ua, ub);
        workgroupBarrier();
        if (k0 + BK < info.k) {
            ua = fetch_ah_scalar(t, k0 + BK);
            ub = fetch_bh_scalar(t, k0 + BK);
        }
        accumulate(t, &acc);
        workgroupBarrier();
    }
    store_c(t, &acc);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_f16_vs(@builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(workgroup_id) wid: vec3<u32>) {
    let t = tile_of(lid, wid);
    var acc: array<vec4<f32>, 16>;
    var ua = fetch_ah_vec(t, 0u);
    var ub = fetch_bh_scalar(t, 0u);
    for (var k0 = 0u; k0 < info.k; k0 += BK) {
        stash(t, ua, ub);
        workgroupBarrier();
        if (k0 + BK < info.k) {
            ua = fetch_ah_vec(t, k0 + BK);
            ub = fetch_bh_scalar(t, k0 + BK);
        }
        accumulate(t, &acc);
        workgroupBarrier();
    }
    store_c(t, &acc);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_f16_sv(@builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(workgroup_id) wid: vec3<u32>) {
    let t = tile_of(lid, wid);
    var acc: array<vec4<f32>, 16>;
    var ua = fetch_ah_scalar(t, 0u);
    var ub = fetch_bh_vec(t, 0u);
    for (var k0 = 0u; k0 < info.k; k0 += BK) {
        stash(t, ua, ub);
        workgroupBarrier();
        if (k0 + BK < info.k) {
            ua = fetch_ah_scalar(t, k0 + BK);
            ub = fetch_bh_vec(t, k0 + BK);
        }
        accumulate(t, &acc);
        workgroupBarrier();
    }
    store_c(t, &acc);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_f16_vv(@builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(workgroup_id) wid: vec3<u32>) {
    let t = tile_of(lid, wid);
    var acc: array<vec4<f32>, 16>;
    var ua = fetch_ah_vec(t, 0u);
    var ub = fetch_bh_vec(t, 0u);
    for (var k0 = 0u; k0 < info.k; k0 += BK) {
        stash(t, ua, ub);
        workgroupBarrier();
        if (k0 + BK < info.k) {
            ua = fetch_ah_vec(t, k0 + BK);
            ub = fetch_bh_vec(t, k0 + BK);
        }
        accumulate(t, &acc);
        workgroupBarrier();
    }
    store_c(t, &acc);
}

// info.m = number of values; one thread per pair, 1-D grid folded onto x and y.
@compute @workgroup_size(256)
fn cast_f32_to_f16(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    let e = 2u * i;
    if (e < info.m) {
        var hi = 0.0;
        if (e + 1u < info.m) {
            hi = src[e + 1u];
        }
        dst[i] = vec2<f16>(f16(src[e]), f16(hi));
    }
}
