// Test kernels for the stream: mulhi32 against 64-bit math, the stream words and floats
// of arbitrary (seed, step, compartment, direction, element) tuples, and the float maps
// of arbitrary words. Needs rng_philox.wgsl, rng_threefry.wgsl, random_bases_dist.wgsl.

struct TestInfo {
    n: u32,
    bern_t: u32,
    bern_hi: f32,
    bern_lo: f32,
}

@group(0) @binding(0) var<uniform> tinfo: TestInfo;
@group(0) @binding(1) var<storage, read> tin: array<u32>;
@group(0) @binding(2) var<storage, read_write> tout: array<u32>;

// tin: pairs (a, b); tout: (mulhi32(a, b), a * b).
@compute @workgroup_size(64)
fn test_mulhi(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= tinfo.n) {
        return;
    }
    let a = tin[2u * i];
    let b = tin[2u * i + 1u];
    tout[2u * i] = mulhi32(a, b);
    tout[2u * i + 1u] = a * b;
}

fn tparams() -> DistParams {
    return DistParams(tinfo.bern_t, tinfo.bern_hi, tinfo.bern_lo);
}

// tin: 6 words per query (seed_lo, seed_hi, step, compartment, direction, element);
// tout: 4 words (stream word, raw value under DIST as bits, 0, 0); packed signs: the
// word element / 32.
@compute @workgroup_size(64)
fn test_stream(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= tinfo.n) {
        return;
    }
    let q = 6u * i;
    let k = stream_key(vec2<u32>(tin[q], tin[q + 1u]), tin[q + 2u], tin[q + 3u]);
    let e = tin[q + 5u];
    if (DIST == 3u) {
        // Packed signs: the word holding the entry's bit, and the entry from unit_values.
        let dir = tin[q + 4u];
        tout[4u * i] = stream_word(k, dir, e / 32u);
        tout[4u * i + 1u] = bitcast<u32>(unit_values(k, tparams(), dir, e / 4u)[e % 4u]);
        tout[4u * i + 2u] = 0u;
        tout[4u * i + 3u] = 0u;
        return;
    }
    let unit = e / 4u;
    let words = unit_words(k, tin[q + 4u], unit);
    let vals = map_words(words, tparams());
    let w = e % 4u;
    tout[4u * i] = words[w];
    tout[4u * i + 1u] = bitcast<u32>(vals[w]);
    tout[4u * i + 2u] = 0u;
    tout[4u * i + 3u] = 0u;
}

// tin: 4 words per query; tout: their 4 raw values under DIST, as bits.
@compute @workgroup_size(64)
fn test_map(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= tinfo.n) {
        return;
    }
    let w = vec4<u32>(tin[4u * i], tin[4u * i + 1u], tin[4u * i + 2u], tin[4u * i + 3u]);
    let v = map_words(w, tparams());
    for (var j = 0u; j < 4u; j++) {
        tout[4u * i + j] = bitcast<u32>(v[j]);
    }
}
