//! Random bases descent: every step, d fresh directions per compartment (entries
//! i.i.d. from the distribution, divided by √D; or, with the Fastfood family, the
//! columns of structured blocks of the same second moment); c = Φᵀg; θ ← θ − lr·Φc.
//! The directions are regenerated from (seed, step, compartment, direction, element)
//! and never stored whole: on the cpu each entry is generated once (a block of
//! directions is kept in cache between c and the update), on wgpu once per pass.

use crate::config::defaults;
use crate::directions::DirectionsConfig;
use crate::{Optimizer, Oracle, StepInfo, Target};
use rbd_engine::random_bases::{
    expand, project_expand, project_expand_delta, rbd_scale, Bases, BasisFamily, Compartment,
    Stream,
};
use rbd_engine::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// RBD's own settings (the directions are [`DirectionsConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct RbdConfig {
    /// Log the cosine of the RBD update with the gradient every step (costs a pass).
    #[arg(long)]
    pub correlation: bool,
}

impl Default for RbdConfig {
    fn default() -> Self {
        defaults()
    }
}

/// RBD over fixed compartments.
pub struct RandomBases {
    /// Learning rate.
    pub lr: f64,
    /// Direction stream.
    pub stream: Stream,
    /// Compartments (each with its directions).
    pub comps: Vec<Compartment>,
    /// Scale of the raw samples: 1/√D.
    pub scale: f32,
    /// Log the gradient correlation.
    pub correlation: bool,
    /// Which random bases (i.i.d. unless set).
    pub family: BasisFamily,
}

impl RandomBases {
    /// RBD with scale 1/√D for θ of length `num_params` (D).
    pub fn new(
        lr: f64,
        stream: Stream,
        comps: Vec<Compartment>,
        num_params: usize,
        correlation: bool,
    ) -> Self {
        RandomBases {
            lr,
            stream,
            comps,
            scale: rbd_scale(num_params),
            correlation,
            family: BasisFamily::Iid,
        }
    }

    /// The same optimiser drawing its directions from `family`.
    pub fn with_family(self, family: BasisFamily) -> Self {
        RandomBases { family, ..self }
    }

    /// This step's directions.
    fn bases(&self, step: u64) -> Bases<'_> {
        Bases::new(self.stream, step, &self.comps, self.scale).with_family(self.family)
    }

    /// RBD at rate `lr` over `target`.
    pub fn build(
        lr: f64,
        config: &RbdConfig,
        directions: &DirectionsConfig,
        target: &Target,
    ) -> Result<Self> {
        let comps = directions.compartments(target)?;
        let family = directions.family(&comps);
        Ok(RandomBases::new(
            lr,
            directions.stream(target.seed),
            comps,
            target.num_params(),
            config.correlation,
        )
        .with_family(family))
    }
}

impl Optimizer for RandomBases {
    fn step(&mut self, step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let g = oracle.gradient(theta)?;
        let bases = self.bases(step);
        let alpha = -self.lr as f32;
        // lr = 0 (or so small that −lr·Φc underflows, or not finite) leaves no usable
        // update to read the correlation's direction from: expand Φc itself then.
        let fused_update = alpha.is_finite() && alpha.abs() >= 1e-20;
        if !(self.correlation && fused_update) {
            let (c, next) = project_expand(&bases, &g, alpha, theta)?;
            let correlation = if self.correlation {
                let zeros = Tensor::zeros(&theta.device(), theta.shape(), theta.dtype())?;
                let u = expand(&bases, &c, 1.0, &zeros)?;
                Some(cosines(&u, &g, &oracle.tensors())?)
            } else {
                None
            };
            return Ok(StepInfo {
                theta: next,
                correlation,
            });
        }
        // The update −lr·Φc comes from the same generation as θ's (no second pass); its
        // cosine with g, times the sign of −lr, is that of Φc with g.
        let (_, next, delta) = project_expand_delta(&bases, &g, alpha, theta)?;
        let mut corr = cosines(&delta, &g, &oracle.tensors())?;
        if alpha < 0.0 {
            // 0 − c, not −c: a zero cosine stays +0.
            for c in &mut corr {
                *c = 0.0 - *c;
            }
        }
        Ok(StepInfo {
            theta: next,
            correlation: Some(corr),
        })
    }
}

/// Cosine similarity of `u` and `g`, for the whole vector and then for each
/// `(name, offset, len)` slice (0 where either slice is zero).
pub fn cosines(u: &Tensor, g: &Tensor, tensors: &[(String, usize, usize)]) -> Result<Vec<f64>> {
    let (u, g) = (u.to_vec_f32()?, g.to_vec_f32()?);
    let mut out = vec![cosine(&u, &g)];
    for (_, off, len) in tensors {
        out.push(cosine(&u[*off..off + len], &g[*off..off + len]));
    }
    Ok(out)
}

/// Cosine similarity of two vectors, accumulated in f64 (0 if either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa > 0.0 && bb > 0.0 {
        ab / (aa.sqrt() * bb.sqrt())
    } else {
        0.0
    }
}
