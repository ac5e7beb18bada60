//! WGSL sources of the stream and launchers of its test kernels (`mulhi32`, stream
//! words of arbitrary tuples, the float maps of arbitrary words), used by
//! `tests/rng.rs` to check the WGSL against this crate's native reference.

use super::{DistParams, Distribution, Generator};
use crate::gpu::{GpuContext, Kernel};
use crate::GpuError;

/// Philox (with the given `mulhi32` file), Threefry and the float maps: the library
/// every stream kernel starts with.
macro_rules! stream_lib {
    ($mulhi:literal) => {
        concat!(
            include_str!($mulhi),
            "\n",
            include_str!("../../wgsl/rng_philox.wgsl"),
            "\n",
            include_str!("../../wgsl/rng_threefry.wgsl"),
            "\n",
            include_str!("../../wgsl/random_bases_dist.wgsl"),
            "\n"
        )
    };
}

/// How the WGSL Philox gets the high word of a 32×32-bit product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mulhi {
    /// Four 16×16-bit partial products (`wgsl/rng_mulhi_u32.wgsl`): any adapter.
    Emulated,
    /// One 64-bit multiply (`wgsl/rng_mulhi_u64.wgsl`): adapters with `SHADER_INT64`.
    Native64,
}

impl Mulhi {
    /// The native multiply where the device has 64-bit integers, else the emulation.
    pub fn for_device(ctx: &GpuContext) -> Mulhi {
        if ctx.has_int64() {
            Mulhi::Native64
        } else {
            Mulhi::Emulated
        }
    }
}

/// The fused random-bases kernels (`wgsl/random_bases.wgsl` after the library).
pub const RANDOM_BASES_SRC: &str = concat!(
    stream_lib!("../../wgsl/rng_mulhi_u32.wgsl"),
    include_str!("../../wgsl/random_bases.wgsl")
);

/// [`RANDOM_BASES_SRC`] with the native 64-bit `mulhi32`.
pub const RANDOM_BASES_I64_SRC: &str = concat!(
    stream_lib!("../../wgsl/rng_mulhi_u64.wgsl"),
    include_str!("../../wgsl/random_bases.wgsl")
);

/// The stream's test kernels.
pub const TEST_SRC: &str = concat!(
    stream_lib!("../../wgsl/rng_mulhi_u32.wgsl"),
    include_str!("../../wgsl/random_bases_test.wgsl")
);

/// [`TEST_SRC`] with the native 64-bit `mulhi32`.
pub const TEST_I64_SRC: &str = concat!(
    stream_lib!("../../wgsl/rng_mulhi_u64.wgsl"),
    include_str!("../../wgsl/random_bases_test.wgsl")
);

/// The fused random-bases kernel `entry` with `mulhi` (module names differ, so both
/// variants can live in one context's caches).
pub fn random_bases_kernel(mulhi: Mulhi, entry: &'static str) -> Kernel {
    match mulhi {
        Mulhi::Emulated => Kernel {
            module: "random_bases",
            source: RANDOM_BASES_SRC,
            entry,
            trusted: true,
        },
        Mulhi::Native64 => Kernel {
            module: "random_bases_i64",
            source: RANDOM_BASES_I64_SRC,
            entry,
            trusted: true,
        },
    }
}

fn check_mulhi(ctx: &GpuContext, mulhi: Mulhi) -> Result<(), GpuError> {
    if mulhi == Mulhi::Native64 && !ctx.has_int64() {
        return Err(GpuError::Invalid(format!(
            "the native 64-bit mulhi needs SHADER_INT64, which {} lacks",
            ctx.adapter.name
        )));
    }
    Ok(())
}

/// Override constants selecting generator and distribution.
pub fn constants(generator: Generator, distribution: Distribution) -> [(&'static str, f64); 2] {
    let gen = match generator {
        Generator::Philox => 0.0,
        Generator::Threefry => 1.0,
    };
    let dist = match distribution {
        Distribution::Gaussian => 0.0,
        Distribution::Uniform => 1.0,
        // Both Bernoullis are two values chosen by a threshold (the Info's parameters).
        Distribution::Bernoulli { .. } | Distribution::BernoulliReleased { .. } => 2.0,
        Distribution::Rademacher => 3.0,
    };
    [("GEN", gen), ("DIST", dist)]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TestInfo {
    n: u32,
    bern_t: u32,
    bern_hi: f32,
    bern_lo: f32,
}

/// Runs test kernel `entry` over `n` items (`input` in, `out_words` words out) with
/// the kernels specialised for `(generator, distribution)`.
fn run_test(
    ctx: &GpuContext,
    mulhi: Mulhi,
    entry: &'static str,
    (generator, distribution): (Generator, Distribution),
    n: usize,
    input: &[u32],
    out_words: usize,
) -> Result<Vec<u32>, GpuError> {
    let p = distribution.params();
    let info = TestInfo {
        n: n as u32,
        bern_t: p.threshold,
        bern_hi: p.hi,
        bern_lo: p.lo,
    };
    check_mulhi(ctx, mulhi)?;
    let kernel = match mulhi {
        Mulhi::Emulated => Kernel {
            module: "random_bases_test",
            source: TEST_SRC,
            entry,
            trusted: false,
        },
        Mulhi::Native64 => Kernel {
            module: "random_bases_test_i64",
            source: TEST_I64_SRC,
            entry,
            trusted: false,
        },
    };
    let tin = ctx.upload(bytemuck::cast_slice(input))?;
    let tout = ctx.alloc((out_words * 4).max(4) as u64)?;
    let groups = (n as u64).div_ceil(64);
    ctx.dispatch(
        &kernel,
        &constants(generator, distribution),
        bytemuck::bytes_of(&info),
        &[&tin, &tout],
        [groups.max(1) as u32, 1, 1],
    )?;
    ctx.read::<u32>(&tout, out_words)
}

/// `(mulhi32(a, b), a·b)` computed by the WGSL for each pair ([`Mulhi::for_device`]).
pub fn mulhi_gpu(ctx: &GpuContext, pairs: &[(u32, u32)]) -> Result<Vec<(u32, u32)>, GpuError> {
    mulhi_gpu_with(ctx, Mulhi::for_device(ctx), pairs)
}

/// [`mulhi_gpu`] with the given `mulhi32`.
pub fn mulhi_gpu_with(
    ctx: &GpuContext,
    mulhi: Mulhi,
    pairs: &[(u32, u32)],
) -> Result<Vec<(u32, u32)>, GpuError> {
    let input: Vec<u32> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    let out = run_test(
        ctx,
        mulhi,
        "test_mulhi",
        (Generator::Philox, Distribution::Gaussian),
        pairs.len(),
        &input,
        2 * pairs.len(),
    )?;
    Ok(out.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// One entry of the stream, addressed in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamQuery {
    /// Run seed.
    pub seed: u64,
    /// Step (< 2^32).
    pub step: u32,
    /// Compartment index.
    pub compartment: u32,
    /// Direction index.
    pub direction: u32,
    /// Element index within the compartment.
    pub element: u32,
}

/// (stream word, raw value) of each query as the WGSL computes them
/// ([`Mulhi::for_device`]); for packed signs the word is the one holding the entry's
/// bit, word `element div 32`.
pub fn stream_gpu(
    ctx: &GpuContext,
    generator: Generator,
    distribution: Distribution,
    queries: &[StreamQuery],
) -> Result<Vec<(u32, f32)>, GpuError> {
    stream_gpu_with(
        ctx,
        Mulhi::for_device(ctx),
        generator,
        distribution,
        queries,
    )
}

/// [`stream_gpu`] with the given `mulhi32`.
pub fn stream_gpu_with(
    ctx: &GpuContext,
    mulhi: Mulhi,
    generator: Generator,
    distribution: Distribution,
    queries: &[StreamQuery],
) -> Result<Vec<(u32, f32)>, GpuError> {
    let input: Vec<u32> = queries
        .iter()
        .flat_map(|q| {
            [
                q.seed as u32,
                (q.seed >> 32) as u32,
                q.step,
                q.compartment,
                q.direction,
                q.element,
            ]
        })
        .collect();
    let out = run_test(
        ctx,
        mulhi,
        "test_stream",
        (generator, distribution),
        queries.len(),
        &input,
        4 * queries.len(),
    )?;
    Ok(out
        .chunks(4)
        .map(|c| (c[0], f32::from_bits(c[1])))
        .collect())
}

/// The raw values of each group of four words under `distribution` (WGSL; not packed
/// signs, whose words hold 32 entries: [`stream_gpu`] covers them).
pub fn map_gpu(
    ctx: &GpuContext,
    distribution: Distribution,
    words: &[[u32; 4]],
) -> Result<Vec<[f32; 4]>, GpuError> {
    let input: Vec<u32> = words.iter().flatten().copied().collect();
    let out = run_test(
        ctx,
        Mulhi::for_device(ctx),
        "test_map",
        (Generator::Philox, distribution),
        words.len(),
        &input,
        4 * words.len(),
    )?;
    Ok(out
        .chunks(4)
        .map(|c| [0, 1, 2, 3].map(|i| f32::from_bits(c[i])))
        .collect())
}

/// The native counterpart of [`map_gpu`].
pub fn map_cpu(distribution: Distribution, words: &[[u32; 4]]) -> Vec<[f32; 4]> {
    let p: DistParams = distribution.params();
    words
        .iter()
        .map(|w| super::map::block_values(p, distribution, w))
        .collect()
}
