// Philox4x32-10 (Salmon et al. 2011, Random123's philox4x32_R with R = 10).
// The high word of a 32x32 product, mulhi32, comes from rng_mulhi_u64.wgsl (a native
// 64-bit multiply, on adapters with SHADER_INT64) or rng_mulhi_u32.wgsl (four 16x16
// partial products, everywhere else); both give the same word. The low word is the
// ordinary wrapping u32 product. Library file: concatenated in front of the kernels
// that use it (no entry points).

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

fn philox_round(x: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let hi0 = mulhi32(PHILOX_M0, x.x);
    let lo0 = PHILOX_M0 * x.x;
    let hi1 = mulhi32(PHILOX_M1, x.z);
    let lo1 = PHILOX_M1 * x.z;
    return vec4<u32>(hi1 ^ x.y ^ k.x, lo1, hi0 ^ x.w ^ k.y, lo0);
}

fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    let w = vec2<u32>(PHILOX_W0, PHILOX_W1);
    var x = philox_round(ctr, key);
    x = philox_round(x, key + w);
    x = philox_round(x, key + 2u * w);
    x = philox_round(x, key + 3u * w);
    x = philox_round(x, key + 4u * w);
    x = philox_round(x, key + 5u * w);
    x = philox_round(x, key + 6u * w);
    x = philox_round(x, key + 7u * w);
    x = philox_round(x, key + 8u * w);
    x = philox_round(x, key + 9u * w);
    return x;
}
