// The direction stream's word-to-float maps and the 4-entry "unit" both generators
// produce (docs/random-directions.md). Same operations, in the same order, as
// kernels/src/rng/map.rs; the compiler may fuse multiply-adds here, hence the stated
// float tolerance. Library file (no entry points); needs rng_philox.wgsl and
// rng_threefry.wgsl in front of it.

// 0 = Philox4x32-10, 1 = Threefry2x32-20.
override GEN: u32 = 0u;
// 0 = Gaussian, 1 = Uniform(-1, 1), 2 = Bernoulli (zero-mean or the released code's
// shifted one: the same threshold test, values from the Info), 3 = packed signs
// (Rademacher: entry e is bit e % 32 of word e / 32, +1 for 0 and -1 for 1).
override DIST: u32 = 0u;

const TWO_POW_M24: f32 = 5.9604644775390625e-8;

fn unit_open0(x: u32) -> f32 {
    return f32(i32((x >> 8u) + 1u)) * TWO_POW_M24;
}

fn uniform_sym(x: u32) -> f32 {
    return f32(i32((x >> 8u) << 1u) + 1 - 16777216) * TWO_POW_M24;
}

// fdlibm logf for normal positive x (no special cases).
fn ln_unit(x: f32) -> f32 {
    let ix = bitcast<u32>(x) + (0x3f800000u - 0x3f3504f3u);
    let k = i32(ix >> 23u) - 0x7f;
    let m = bitcast<f32>((ix & 0x007fffffu) + 0x3f3504f3u);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (bitcast<f32>(0x3eccce13u) + w * bitcast<f32>(0x3e789e26u));
    let t2 = z * (bitcast<f32>(0x3f2aaaaau) + w * bitcast<f32>(0x3e91e9eeu));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = f32(k);
    return (((s * (hfsq + r) + dk * bitcast<f32>(0x3717f7d1u)) - hfsq) + f) + dk * bitcast<f32>(0x3f317180u);
}

// (sin, cos) of 2*pi*(x >> 8)*2^-24: exact quadrant split, Cephes polynomials.
fn sincos_turn(x: u32) -> vec2<f32> {
    let t = (x >> 8u) + (1u << 21u);
    let q = (t >> 22u) & 3u;
    let yi = i32(t & 0x003fffffu) - (1 << 21u);
    let a = f32(yi) * bitcast<f32>(0x34c90fdbu);
    let z = a * a;
    let s = ((bitcast<f32>(0xb94ca1f9u) * z + bitcast<f32>(0x3c08839eu)) * z + bitcast<f32>(0xbe2aaaa3u)) * z * a + a;
    let c = ((((bitcast<f32>(0x37ccf5ceu) * z + bitcast<f32>(0xbab6061au)) * z + bitcast<f32>(0x3d2aaaa5u)) * z) * z - 0.5 * z) + 1.0;
    let swap = (q & 1u) != 0u;
    let cb = select(c, s, swap);
    let sb = select(s, c, swap);
    let neg_c = ((q + 1u) & 2u) << 30u;
    let neg_s = (q & 2u) << 30u;
    return vec2<f32>(bitcast<f32>(bitcast<u32>(sb) ^ neg_s), bitcast<f32>(bitcast<u32>(cb) ^ neg_c));
}

// Box-Muller pair (r cos, r sin) from words a (radius) and b (angle).
fn box_muller(a: u32, b: u32) -> vec2<f32> {
    let r = sqrt(2.0 * (0.0 - ln_unit(unit_open0(a))));
    let sc = sincos_turn(b);
    return vec2<f32>(r * sc.y, r * sc.x);
}

struct DistParams {
    threshold: u32,
    hi: f32,
    lo: f32,
}

// Raw values of four words (Gaussian pairs words 0,1 and 2,3).
fn map_words(w: vec4<u32>, p: DistParams) -> vec4<f32> {
    if (DIST == 0u) {
        return vec4<f32>(box_muller(w.x, w.y), box_muller(w.z, w.w));
    }
    if (DIST == 1u) {
        return vec4<f32>(uniform_sym(w.x), uniform_sym(w.y), uniform_sym(w.z), uniform_sym(w.w));
    }
    return select(vec4<f32>(p.lo), vec4<f32>(p.hi), w < vec4<u32>(p.threshold));
}

// Per-pass counter/key (BlockKey in Rust): Philox uses ctr = (block, dir, c2, c3)
// under `key`; Threefry ctr = (block, dir) under `key` (derived from seed, step,
// compartment on the host).
struct StreamKey {
    key: vec2<u32>,
    c2: u32,
    c3: u32,
}

// Words of the unit (4 consecutive entries 4u .. 4u+3) of direction `dir`: one Philox
// block, or Threefry blocks 2u and 2u + 1.
fn unit_words(k: StreamKey, dir: u32, unit: u32) -> vec4<u32> {
    if (GEN == 0u) {
        return philox4x32_10(vec4<u32>(unit, dir, k.c2, k.c3), k.key);
    }
    let a = threefry2x32_20(vec2<u32>(2u * unit, dir), k.key);
    let b = threefry2x32_20(vec2<u32>(2u * unit + 1u, dir), k.key);
    return vec4<u32>(a, b);
}

// Word `index` of direction `dir`'s word stream: word index % W of block index / W.
fn stream_word(k: StreamKey, dir: u32, index: u32) -> u32 {
    if (GEN == 0u) {
        let b = philox4x32_10(vec4<u32>(index / 4u, dir, k.c2, k.c3), k.key);
        return b[index % 4u];
    }
    let b = threefry2x32_20(vec2<u32>(index / 2u, dir), k.key);
    return b[index % 2u];
}

// Words 2p and 2p + 1 of direction `dir`'s word stream (one Threefry block, half a
// Philox block).
fn stream_word_pair(k: StreamKey, dir: u32, p: u32) -> vec2<u32> {
    if (GEN == 0u) {
        let b = philox4x32_10(vec4<u32>(p / 2u, dir, k.c2, k.c3), k.key);
        return select(b.xy, b.zw, (p % 2u) == 1u);
    }
    return threefry2x32_20(vec2<u32>(p, dir), k.key);
}

// The f32 sign bit of packed-sign entry `bit` of `word`.
fn sign_mask(word: u32, bit: u32) -> u32 {
    return ((word >> bit) & 1u) << 31u;
}

// x times packed-sign entry `bit` of `word`: a sign flip (exact).
fn sign_flip(x: f32, word: u32, bit: u32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ sign_mask(word, bit));
}

// Entries 4u .. 4u+3: four Philox/Threefry words mapped one by one (Gaussian in pairs),
// or four bits of one word for packed signs.
fn unit_values(k: StreamKey, p: DistParams, dir: u32, unit: u32) -> vec4<f32> {
    if (DIST == 3u) {
        let w = stream_word(k, dir, unit / 8u);
        let b = 4u * (unit % 8u);
        return vec4<f32>(sign_flip(1.0, w, b), sign_flip(1.0, w, b + 1u), sign_flip(1.0, w, b + 2u), sign_flip(1.0, w, b + 3u));
    }
    return map_words(unit_words(k, dir, unit), p);
}

// The StreamKey of (seed, step, compartment), as Stream::block_key in Rust.
fn stream_key(seed: vec2<u32>, step: u32, comp: u32) -> StreamKey {
    if (GEN == 0u) {
        return StreamKey(seed, comp, step);
    }
    return StreamKey(threefry2x32_20(vec2<u32>(step, comp), seed), 0u, 0u);
}
