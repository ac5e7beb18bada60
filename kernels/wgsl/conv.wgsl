// 2-D convolution, NCHW, as implicit GEMMs: the GEMM operands are gathered from the
// tensors while loading tiles, never materialised.
//
//   forward          Y[o, n·P]      = W[o, K]         · col[K, n·P]      K = c·kh·kw, P = oh·ow
//   backward data    dX[c, n·h·w]   = Wt[c, o·kh·kw]  · dYcol[o·kh·kw, n·h·w]
//   backward weight  dW[o, K]       = dY[o, n·P]      · colᵀ[n·P, K]
//
// Each may split its reduction (when its output tiles are too few to fill a big GPU;
// the launcher decides by shape): split s reduces over [s·chunk, (s+1)·chunk) into
// partials[s] (the output's layout), and reduce.wgsl's sum_rows adds the partials (the
// rows of [splits, outputs]) in a fixed order.
//
// Tiling (all three): a 256-thread workgroup (16×16 threads) computes a (16·RM)×64
// output tile; the reduction runs in 16-deep slices staged in workgroup memory
// (a_tile: 16×16·RM of the left operand, b_tile: 16×64 of the right one, rows padded
// to 65 floats so the column-wise stores do not hit one bank); each thread accumulates
// an RM×4 register block, rows ty + 16·i and columns tx + 16·j, so that neighbouring
// threads read neighbouring b_tile words and write neighbouring output columns.
// RM (an override: 4, or 2 / 1 when the GEMM has at most 32 / 16 rows, as with 16- or
// 32-channel layers) keeps small-M tiles from computing mostly padding. Every load is
// bounds-checked (zero outside the matrix or the input's padding), so any shape works.
// The reduction order of each output is fixed: slices in order, 16 steps within each,
// whatever RM is.
//
// The workgroup grid may be folded onto x and y (GpuContext::grid): the linear id
// wid.y·nwg.x + wid.x enumerates tiles, m fastest, then n, then the split.
//
// Bindings per entry point (binding 0 is `info`):
//   conv_forward          1 x      2 w        3 y or partials[splits][y]
//   conv_backward_data    1 dy     2 w        3 dx or partials[splits][dx]
//   conv_backward_weight  1 dy     2 x        3 dw or partials[splits][o·K]

struct Info {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, kh: u32, kw: u32, stride: u32,
    pad_top: u32, pad_left: u32, oh: u32, ow: u32,
    gm: u32,      // GEMM rows
    gn: u32,      // GEMM columns
    gk: u32,      // reduction length (whole, before splitting)
    tiles_m: u32, // ceil(gm / 64)
    tiles_n: u32, // ceil(gn / 64)
    groups: u32,  // tiles_m · tiles_n · splits
    chunk: u32,   // reduction length per split (multiple of 16)
    splits: u32,  // number of partial sums (1: no split)
}

@group(0) @binding(0) var<uniform> info: Info;
@group(0) @binding(1) var<storage, read> in_a: array<f32>;
@group(0) @binding(2) var<storage, read> in_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Rows of the register block per thread (1, 2 or 4); the tile has 16·RM rows.
override RM: u32 = 4u;

const TK: u32 = 16u;
const LD: u32 = 65u; // padded row length of the tiles

var<workgroup> a_tile: array<f32, 1040>; // [TK][LD]: a_tile[k·LD + m]
var<workgroup> b_tile: array<f32, 1040>; // [TK][LD]: b_tile[k·LD + n]
var<private> acc: array<vec4<f32>, 4>;   // acc[i][j]: row ty + 16i, column tx + 16j

// One 16-deep slice of the register-blocked product.
fn mma_slice(tx: u32, ty: u32) {
    for (var k = 0u; k < TK; k++) {
        let base = k * LD;
        let b = vec4<f32>(b_tile[base + tx], b_tile[base + tx + 16u],
                          b_tile[base + tx + 32u], b_tile[base + tx + 48u]);
        for (var i = 0u; i < RM; i++) {
            acc[i] = fma(vec4<f32>(a_tile[base + ty + 16u * i]), b, acc[i]);
        }
    }
}

fn group_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(256)
fn conv_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = group_id(wid, nwg);
    if (g >= info.groups) { return; }
    let tiles = info.tiles_m * info.tiles_n;
    let split = g / tiles;
    let t = g % tiles;
    let m0 = (t % info.tiles_m) * 16u * RM;
    let n0 = (t / info.tiles_m) * 64u;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let khw = info.kh * info.kw;
    let p_len = info.oh * info.ow;
    let k_begin = split * info.chunk;
    let k_end = min(info.gk, k_begin + info.chunk);

    // A loads: W[m, k], k = k0 + lid % 16 (contiguous in memory), rows lid / 16 + 16i.
    let ak = lid % 16u;
    let am = lid / 16u;
    // B loads: one fixed output column per thread, slice rows lid / 64 + 4i.
    let bn = lid % 64u;
    let bk = lid / 64u;
    let j = n0 + bn;
    let j_ok = j < info.gn;
    let img = j / p_len;
    let p = j % p_len;
    let y0 = (p / info.ow) * info.stride;
    let x0 = (p % info.ow) * info.stride;
    let x_img = img * info.c * info.h * info.w;

    for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        let k = k0 + ak;
        for (var i = 0u; i < RM; i++) {
            let m = m0 + am + 16u * i;
            var v = 0.0;
            if (m < info.gm && k < k_end) { v = in_b[m * info.gk + k]; }
            a_tile[ak * LD + am + 16u * i] = v;
        }
        for (var i = 0u; i < 4u; i++) {
            let kk = bk + 4u * i;
            let kb = k0 + kk;
            var v = 0.0;
            if (j_ok && kb < k_end) {
                let ci = kb / khw;
                let r = kb - ci * khw;
                let ki = r / info.kw;
                let kj = r - ki * info.kw;
                // Wrapping u32: a row above the padding wraps to a huge value.
                let iy = y0 + ki - info.pad_top;
                let ix = x0 + kj - info.pad_left;
                if (iy < info.h && ix < info.w) {
                    v = in_a[x_img + (ci * info.h + iy) * info.w + ix];
                }
            }
            b_tile[kk * LD + bn] = v;
        }
        workgroupBarrier();
        mma_slice(tx, ty);
        workgroupBarrier();
    }

    let out_base = split * info.gm * info.gn;
    for (var jj = 0u; jj < 4u; jj++) {
        let jc = n0 + tx + 16u * jj;
        if (jc < info.gn) {
            let base = out_base + (jc / p_len) * info.o * p_len + jc % p_len;
            for (var i = 0u; i < RM; i++) {
                let m = m0 + ty + 16u * i;
                if (m < info.gm) { out[base + m * p_len] = acc[i][jj]; }
            }
        }
    }
}

@compute @workgroup_size(256)
fn conv_backward_data(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let g = group_id(wid, nwg);
    if (g >= info.groups) { return; }
    let tiles = info.tiles_m * info.tiles_n;
    let split = g / tiles;
    let t = g % tiles;
    let m0 = (t % info.tiles_m) * 16u * RM;
    let n0 = (t / info.tiles_m) * 64u;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let khw = info.kh * info.kw;
    let hw = info.h * info.w;
    let p_len = info.oh * info.ow;
    let k_begin = split * info.chunk;
    let k_end = min(info.gk, k_begin + info.chunk);

    // A[ci, (co, r)] = w[(co·c + ci)·khw + r].
    let ak = lid % 16u;
    let am = lid / 16u;
    // B[(co, ki, kj), (img, iy, ix)] = dy[img, co, oy, ox] where
    // oy·stride = iy + pad_top − ki (and likewise for x), zero if no such output.
    let bn = lid % 64u;
    let bk = lid / 64u;
    let j = n0 + bn;
    let j_ok = j < info.gn;
    let img = j / hw;
    let q = j % hw;
    let ty0 = q / info.w + info.pad_top;
    let tx0 = q % info.w + info.pad_left;
    let dy_img = img * info.o * p_len;

    for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        let k = k0 + ak;
        let co = k / khw;
        let ra = k - co * khw;
        for (var i = 0u; i < RM; i++) {
            let m = m0 + am + 16u * i;
            var v = 0.0;
            if (m < info.gm && k < k_end) { v = in_b[(co * info.c + m) * khw + ra]; }
            a_tile[ak * LD + am + 16u * i] = v;
        }
        for (var i = 0u; i < 4u; i++) {
            let kk = bk + 4u * i;
            let kb = k0 + kk;
            var v = 0.0;
            if (j_ok && kb < k_end) {
                let cb = kb / khw;
                let r = kb - cb * khw;
                let ki = r / info.kw;
                let kj = r - ki * info.kw;
                if (ty0 >= ki && tx0 >= kj) {
                    let dy_ = ty0 - ki;
                    let dx_ = tx0 - kj;
                    let oy = dy_ / info.stride;
                    let ox = dx_ / info.stride;
                    if (oy * info.stride == dy_ && ox * info.stride == dx_ && oy < info.oh && ox < info.ow) {
                        v = in_a[dy_img + (cb * info.oh + oy) * info.ow + ox];
                    }
                }
            }
            b_tile[kk * LD + bn] = v;
        }
        workgroupBarrier();
        mma_slice(tx, ty);
        workgroupBarrier();
    }

    let out_base = split * info.gm * info.gn;
    for (var jj = 0u; jj < 4u; jj++) {
        let jc = n0 + tx + 16u * jj;
        if (jc < info.gn) {
            let base = out_base + (jc / hw) * info.c * hw + jc % hw;
            for (var i = 0u; i < RM; i++) {
                let m = m0 + ty + 16u * i;
                if (m < info.gm) { out[base + m * hw] = acc[i][jj]; }
            }
        }
    }
}

@compute @workgroup_size(256)
fn conv_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let g = group_id(wid, nwg);
    if (g >= info.groups) { return; }
    let tiles = info.tiles_m * info.tiles_n;
    let split = g / tiles;
    let t = g % tiles;
    let m0 = (t % info.tiles_m) * 16u * RM;
    let n0 = (t / info.tiles_m) * 64u;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let khw = info.kh * info.kw;
    let p_len = info.oh * info.ow;
    let r_begin = split * info.chunk;
    let r_end = min(info.gk, r_begin + info.chunk);

    // Both operands are loaded with the reduction index r = r0 + lid % 16 (contiguous
    // in dy and, for stride 1, in x) and tile rows/columns lid / 16 + 16i.
    let lk = lid % 16u;
    let lm = lid / 16u;
    // This thread's four weight columns (ci, ki, kj), decomposed once.
    var col_off: array<u32, 4>; // ci·h·w
    var col_ki: array<u32, 4>;
    var col_kj: array<u32, 4>;
    for (var i = 0u; i < 4u; i++) {
        let nn = n0 + lm + 16u * i;
        let ci = nn / khw;
        let r = nn - ci * khw;
        col_off[i] = ci * info.h * info.w;
        col_ki[i] = r / info.kw;
        col_kj[i] = r - col_ki[i] * info.kw;
    }

    for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
    for (var r0 = r_begin; r0 < r_end; r0 += TK) {
        let r = r0 + lk;
        let r_ok = r < r_end;
        let img = r / p_len;
        let p = r % p_len;
        let y0 = (p / info.ow) * info.stride;
        let x0 = (p % info.ow) * info.stride;
        let dy_base = img * info.o * p_len + p;
        let x_img = img * info.c * info.h * info.w;
        for (var i = 0u; i < RM; i++) {
            let m = m0 + lm + 16u * i;
            var v = 0.0;
            if (r_ok && m < info.gm) { v = in_a[dy_base + m * p_len]; }
            a_tile[lk * LD + lm + 16u * i] = v;
        }
        for (var i = 0u; i < 4u; i++) {
            let nn = n0 + lm + 16u * i;
            var v = 0.0;
            if (r_ok && nn < info.gn) {
                let iy = y0 + col_ki[i] - info.pad_top;
                let ix = x0 + col_kj[i] - info.pad_left;
                if (iy < info.h && ix < info.w) { v = in_b[x_img + col_off[i] + iy * info.w + ix]; }
            }
            b_tile[lk * LD + lm + 16u * i] = v;
        }
        workgroupBarrier();
        mma_slice(tx, ty);
        workgroupBarrier();
    }

    let out_base = split * info.gm * info.gn;
    for (var i = 0u; i < RM; i++) {
        let m = m0 + ty + 16u * i;
        if (m < info.gm) {
            for (var jj = 0u; jj < 4u; jj++) {
                let nn = n0 + tx + 16u * jj;
                if (nn < info.gn) { out[out_base + m * info.gn + nn] = acc[i][jj]; }
            }
        }
    }
}
