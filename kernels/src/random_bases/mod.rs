//! Random bases: project a gradient onto d random directions and expand coordinates
//! back, with the directions regenerated from a counter-based stream and never stored
//! (except a fixed basis, FPD's, which [`StoredBasis`] keeps when asked).
//!
//! The [`Bases`] of one call name the directions: for its [`Stream`], step and
//! [`Compartment`]s, direction `j` of compartment `c` is the vector whose entry `e`
//! (counted from the compartment's start) is the stream's raw sample for (seed, step,
//! c.index, j, e) times the bases' `scale` (`docs/random-directions.md` specifies the
//! stream bit for bit). RBD uses `scale = 1/√D` with D the whole network's parameter
//! count, compartments or not ([`rbd_scale`]).
//!
//! * [`project_cpu`] / [`project_gpu`]: `coords[j] = scale · Σ_e raw_j[e]·g[e]`.
//! * [`expand_cpu`] / [`expand_gpu`]: `out = base + alpha·scale·Σ_j coords[j]·raw_j`.
//! * [`generate_cpu`] / [`generate_gpu`]: materialise the directions (compartment after
//!   compartment).
//!
//! A compartment's `first` field selects a window of directions: NES's offspring
//! θ + σ·ε_i is `expand` over `Compartment { first: i, dims: 1, .. }` with
//! `coords = [σ]`, `scale = 1`, `alpha = 1`, generating direction i alone.
//!
//! Coordinates are compartment-major: compartment `comps[0]`'s `dims` values first.
//! Sums have a fixed order on each backend (no atomics), so results are bitwise
//! reproducible for a given backend and independent of the thread count; the cpu and
//! WGSL results agree within float tolerance (different summation orders).

mod bench;
mod cpu;
mod gpu;
mod signs;
mod simd;
mod tune;

pub use crate::fastfood::{Fastfood, FastfoodBases};
pub use crate::rng::{BlockKey, DistParams, Distribution, DistributionKind, Generator, Stream};
pub use bench::{
    bench_cpu, bench_cpu_phases, bench_cpu_plans, bench_gpu, process_cpu_seconds, BenchResult,
    PhaseBench,
};
pub use cpu::{
    expand_cpu, expand_cpu_with, generate_cpu, keeping, project_cpu, project_cpu_with,
    project_expand_cpu, project_expand_cpu_phases, project_expand_cpu_traffic,
    project_expand_cpu_with, project_expand_stored, StepPhases, StoredBasis, CHUNK, KEEP_ENV,
    KEEP_LIMIT_BYTES,
};
pub use gpu::{
    expand_gpu, expand_gpu_with, generate_gpu, project_gpu, project_gpu_scratch_bytes,
    project_gpu_with, ExpandPlan, GpuPlan, CHUNK_UNITS, DG,
};
pub use simd::{Simd, SIMD_ENV};
pub use tune::{calibrate, heuristic, ChosenPlan, CpuPlan, Machine, StepStrategy, PLAN_ENV};

/// How a call's directions are drawn from the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BasisFamily {
    /// Every entry an independent draw of the stream (the paper's random bases): this
    /// module's kernels.
    #[default]
    Iid,
    /// Columns of stacked Fastfood blocks of length L: [`crate::fastfood`]'s kernels.
    Fastfood(Fastfood),
}

impl BasisFamily {
    /// The family's name in logs and run configurations.
    pub fn name(self) -> &'static str {
        match self {
            BasisFamily::Iid => "iid",
            BasisFamily::Fastfood(_) => "fastfood",
        }
    }

    /// In words, with the block length.
    pub fn describe(self) -> String {
        match self {
            BasisFamily::Iid => "iid (every direction entry an independent draw)".into(),
            BasisFamily::Fastfood(ff) => format!(
                "fastfood (columns of stacked H G Pi H B blocks of L = {})",
                ff.block()
            ),
        }
    }
}

/// The random bases of one call: which directions (the `family`'s, drawn from the
/// stream at `step` in `compartments`) and the factor every raw entry is multiplied by.
/// This module's kernels take the i.i.d. family; [`Bases::fastfood`] gives the
/// Fastfood kernels' view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bases<'a> {
    /// I.i.d. entries or Fastfood columns.
    pub family: BasisFamily,
    /// Generator, distribution and seed.
    pub stream: Stream,
    /// Step (a new basis every step for RBD; fixed for FPD).
    pub step: u64,
    /// The compartments and their directions; coordinates are compartment-major.
    pub compartments: &'a [Compartment],
    /// Factor of every raw entry (RBD: [`rbd_scale`]).
    pub scale: f32,
}

impl<'a> Bases<'a> {
    /// The i.i.d. bases of `stream` at `step` over `compartments`, entries times `scale`.
    pub fn new(stream: Stream, step: u64, compartments: &'a [Compartment], scale: f32) -> Self {
        Bases {
            family: BasisFamily::Iid,
            stream,
            step,
            compartments,
            scale,
        }
    }

    /// The same bases drawn by `family`.
    pub fn with_family(self, family: BasisFamily) -> Self {
        Bases { family, ..self }
    }

    /// The same family, stream, step and scale over other compartments (e.g. a window).
    pub fn over<'b>(&self, compartments: &'b [Compartment]) -> Bases<'b> {
        Bases {
            family: self.family,
            stream: self.stream,
            step: self.step,
            compartments,
            scale: self.scale,
        }
    }

    /// The Fastfood kernels' view of these bases, if that is their family.
    pub fn fastfood(&self) -> Option<FastfoodBases<'_>> {
        match self.family {
            BasisFamily::Iid => None,
            BasisFamily::Fastfood(ff) => Some(FastfoodBases {
                stream: &self.stream,
                step: self.step,
                comps: self.compartments,
                ff,
                scale: self.scale,
            }),
        }
    }

    /// Σ dims: the length of the coordinate vector.
    pub fn dims(&self) -> usize {
        total_dims(self.compartments)
    }

    /// Counter and key of compartment `c`'s pass.
    pub fn block_key(&self, c: &Compartment) -> BlockKey {
        self.stream.block_key(self.step, c.index)
    }

    /// Entries of the materialised directions: Σ dims·len.
    pub fn generated_len(&self) -> usize {
        self.compartments.iter().map(|c| c.dims * c.len).sum()
    }

    /// Panics unless these are i.i.d. bases: this module's kernels draw no other family
    /// (the engine's ops dispatch by family).
    pub(crate) fn expect_iid(&self) {
        assert!(
            self.family == BasisFamily::Iid,
            "the i.i.d. random-bases kernels were given {} bases",
            self.family.name()
        );
    }
}

/// One compartment: parameters `[offset, offset + len)` of the flat vector, with the
/// `dims` directions `first .. first + dims` of its own stream (`index` keys it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Compartment {
    /// Compartment index in the stream (different indices → independent directions).
    pub index: u32,
    /// First parameter.
    pub offset: usize,
    /// Number of parameters (< 2^32).
    pub len: usize,
    /// Number of directions (coordinates) used in this call.
    pub dims: usize,
    /// Stream index of the first direction used (0 normally; `i` for NES offspring i).
    pub first: usize,
}

impl Compartment {
    /// Directions `0 .. dims` of compartment `index` over `[offset, offset + len)`.
    pub fn new(index: u32, offset: usize, len: usize, dims: usize) -> Self {
        Compartment {
            index,
            offset,
            len,
            dims,
            first: 0,
        }
    }

    /// The same compartment restricted to directions `first .. first + dims`.
    pub fn window(self, first: usize, dims: usize) -> Self {
        Compartment {
            first,
            dims,
            ..self
        }
    }

    /// One compartment (index 0) over all `n` parameters.
    pub fn whole(n: usize, dims: usize) -> Vec<Compartment> {
        vec![Compartment::new(0, 0, n, dims)]
    }

    /// `k` contiguous compartments over `n` parameters, sizes differing by at most one
    /// (the first `n % k` are one longer), each with `dims` directions.
    pub fn even(n: usize, k: usize, dims: usize) -> Vec<Compartment> {
        assert!(
            k > 0 && k <= n.max(1),
            "cannot split {n} parameters into {k} compartments"
        );
        let (q, r) = (n / k, n % k);
        let mut offset = 0;
        (0..k)
            .map(|i| {
                let len = q + usize::from(i < r);
                let c = Compartment::new(i as u32, offset, len, dims);
                offset += len;
                c
            })
            .collect()
    }

    /// Consecutive compartments of the given sizes (e.g. one per layer), each with
    /// `dims` directions.
    pub fn from_sizes(sizes: &[usize], dims: usize) -> Vec<Compartment> {
        let mut offset = 0;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let c = Compartment::new(i as u32, offset, len, dims);
                offset += len;
                c
            })
            .collect()
    }
}

/// Σ dims: the length of the coordinate vector.
pub fn total_dims(comps: &[Compartment]) -> usize {
    comps.iter().map(|c| c.dims).sum()
}

/// Start of each compartment's coordinates in the coordinate vector.
pub fn coord_offsets(comps: &[Compartment]) -> Vec<usize> {
    let mut acc = 0;
    comps
        .iter()
        .map(|c| {
            let o = acc;
            acc += c.dims;
            o
        })
        .collect()
}

/// `1/√D` rounded to f32: RBD's scale for a network of `d_total` parameters.
pub fn rbd_scale(d_total: usize) -> f32 {
    (1.0 / (d_total as f64).sqrt()) as f32
}

/// Checks that the compartments lie in `[0, n)`, do not overlap and fit the stream's
/// 32-bit element and direction indices.
pub fn check_compartments(comps: &[Compartment], n: usize) -> Result<(), String> {
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(comps.len());
    for c in comps {
        if c.offset.checked_add(c.len).is_none_or(|end| end > n) {
            return Err(format!("{c:?} exceeds the {n} parameters"));
        }
        if c.len > u32::MAX as usize {
            return Err(format!("{c:?}: more than 2^32 - 1 entries"));
        }
        if c.first
            .checked_add(c.dims)
            .is_none_or(|end| end > u32::MAX as usize + 1)
        {
            return Err(format!("{c:?}: direction indices exceed 2^32"));
        }
        if c.len > 0 {
            spans.push((c.offset, c.offset + c.len));
        }
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(format!("compartments overlap at [{}, {})", w[1].0, w[0].1));
        }
    }
    Ok(())
}

/// Whether the compartments partition `[0, n)`: every element in exactly one.
pub fn is_partition(comps: &[Compartment], n: usize) -> bool {
    check_compartments(comps, n).is_ok() && comps.iter().map(|c| c.len).sum::<usize>() == n
}
