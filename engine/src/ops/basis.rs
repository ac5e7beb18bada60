//! One step's random basis, whichever family draws it: the i.i.d. directions of
//! [`super::random_bases`] (the paper's) or the structured ones of [`super::fastfood`].
//! Optimisers hold a [`BasisFamily`] and build a [`Basis`] per step, so they never
//! branch on the family themselves.

use super::{fastfood, random_bases};
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;
use rbd_kernels::fastfood::{Fastfood, FastfoodBases};
use rbd_kernels::random_bases::{Compartment, Stream};

/// How a step's directions are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BasisFamily {
    /// Every entry an independent draw of the stream (the paper's random bases).
    #[default]
    Iid,
    /// Columns of stacked Fastfood blocks of length L (`rbd_kernels::fastfood`).
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

/// The directions of one step over a set of compartments.
#[derive(Clone, Copy, Debug)]
pub struct Basis<'a> {
    /// The family.
    pub family: BasisFamily,
    /// Seed, generator and distribution.
    pub stream: &'a Stream,
    /// The step the directions are drawn at.
    pub step: u64,
    /// Compartments with their windows of directions.
    pub comps: &'a [Compartment],
    /// Scale of the raw directions (1/√D for RBD and FPD, 1 for NES).
    pub scale: f32,
}

impl Basis<'_> {
    fn fastfood(&self, ff: Fastfood) -> FastfoodBases<'_> {
        FastfoodBases {
            stream: self.stream,
            step: self.step,
            comps: self.comps,
            ff,
            scale: self.scale,
        }
    }

    /// Coordinates c = Φᵀg (length Σ dims).
    pub fn project(&self, g: &Tensor) -> Result<Tensor> {
        match self.family {
            BasisFamily::Iid => {
                random_bases::project(self.stream, self.step, self.comps, self.scale, g)
            }
            BasisFamily::Fastfood(ff) => fastfood::project(&self.fastfood(ff), g),
        }
    }

    /// base + alpha·Φc.
    pub fn expand(&self, coords: &Tensor, alpha: f32, base: &Tensor) -> Result<Tensor> {
        match self.family {
            BasisFamily::Iid => random_bases::expand(
                self.stream,
                self.step,
                self.comps,
                self.scale,
                coords,
                alpha,
                base,
            ),
            BasisFamily::Fastfood(ff) => fastfood::expand(&self.fastfood(ff), coords, alpha, base),
        }
    }

    /// (c = Φᵀg, base + alpha·Φc): [`Self::project`] then [`Self::expand`], bitwise,
    /// each direction drawn once on the cpu.
    pub fn project_expand(
        &self,
        g: &Tensor,
        alpha: f32,
        base: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        match self.family {
            BasisFamily::Iid => random_bases::project_expand(
                self.stream,
                self.step,
                self.comps,
                self.scale,
                g,
                alpha,
                base,
            ),
            BasisFamily::Fastfood(ff) => {
                let (c, next, _) =
                    fastfood::project_expand(&self.fastfood(ff), g, alpha, base, false)?;
                Ok((c, next))
            }
        }
    }

    /// [`Self::project_expand`] and the update alpha·Φc itself (bitwise expand on a zero
    /// base), from the same draw.
    pub fn project_expand_delta(
        &self,
        g: &Tensor,
        alpha: f32,
        base: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        match self.family {
            BasisFamily::Iid => random_bases::project_expand_delta(
                self.stream,
                self.step,
                self.comps,
                self.scale,
                g,
                alpha,
                base,
            ),
            BasisFamily::Fastfood(ff) => {
                let (c, next, delta) =
                    fastfood::project_expand(&self.fastfood(ff), g, alpha, base, true)?;
                Ok((c, next, delta.expect("delta requested")))
            }
        }
    }

    /// The `dims × len` directions of `comps[which]`, materialised (comparison only).
    pub fn generate(&self, device: &Device, which: usize) -> Result<Tensor> {
        match self.family {
            BasisFamily::Iid => random_bases::generate(
                device,
                self.stream,
                self.step,
                &self.comps[which],
                self.scale,
            ),
            BasisFamily::Fastfood(ff) => fastfood::generate(device, &self.fastfood(ff), which),
        }
    }
}
