// mulhi32 with a native 64-bit multiply (needs SHADER_INT64; naga's WGSL accepts
// u64 then). Library file for rng_philox.wgsl; same words as rng_mulhi_u32.wgsl.

fn mulhi32(a: u32, b: u32) -> u32 {
    return u32((u64(a) * u64(b)) >> 32u);
}
