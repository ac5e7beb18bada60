//! Fixed projection descent (Li et al. 2018): one base P drawn once for the whole run;
//! θ = θ₀ + P·c and c ← c − lr·Pᵀg, with the same 1/√D scaling as RBD.
//!
//! The update is applied to θ directly, θ ← θ − lr·P(Pᵀg) (one fused pass; on the cpu P
//! is generated at the first step and kept in memory, [`KeptBasis`]), with c kept beside it; θ and θ₀ + P·c agree up to f32
//! rounding. Two variants of where the gradient is taken ([`FpdVariant`]):
//! - `paper` (the paper's text): at the current θ = θ₀ + P·c;
//! - `released` (the authors' released code): at θ₀ + P·c_prev, the point before the
//!   last update, while validation sees the current θ.

use crate::config::defaults;
use crate::directions::DirectionsConfig;
use crate::{Optimizer, Oracle, StateTensor, StepInfo, Target};
use rbd_engine::random_bases::{
    rbd_scale, total_dims, Bases, BasisFamily, Compartment, KeptBasis, Stream,
};
use rbd_engine::{EngineError, Result, Tensor};
use serde::{Deserialize, Serialize};

/// The step index the fixed base is drawn at.
const FIXED_STEP: u64 = 0;

rbd_engine::named_enum!(
    /// Where FPD takes its training gradient.
    pub FpdVariant, "FPD variant" {
        /// At the current point θ₀ + P·c (the paper's text).
        Paper = "paper",
        /// At θ₀ + P·c_prev, the point before the last update (the authors' released
        /// code); validation at the current point.
        Released = "released",
    }
);

impl FpdVariant {
    /// Where the gradient is taken, in words.
    pub fn describe(self) -> &'static str {
        match self {
            FpdVariant::Paper => "gradient at the current point (paper)",
            FpdVariant::Released => "gradient at the previous point (released code)",
        }
    }
}

/// FPD's own settings (the directions are [`DirectionsConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct FpdConfig {
    /// Where FPD takes its gradient: paper (the current point) or released (the point
    /// before the last update, as the authors' code does). Left out of `config.json` at
    /// its default, so run ids from before the variant existed stay valid.
    #[arg(long, default_value = "paper")]
    #[serde(skip_serializing_if = "is_paper")]
    pub fpd_variant: FpdVariant,
}

fn is_paper(v: &FpdVariant) -> bool {
    *v == FpdVariant::Paper
}

impl Default for FpdConfig {
    fn default() -> Self {
        defaults()
    }
}

/// FPD state: θ₀, the coordinates c, and (released variant) the previous point.
pub struct FixedProjection {
    /// Learning rate.
    pub lr: f64,
    stream: Stream,
    comps: Vec<Compartment>,
    scale: f32,
    base: Tensor,
    coords: Tensor,
    gradient_at: FpdVariant,
    previous: Option<Tensor>,
    family: BasisFamily,
    /// P, kept where it fits (derived state: not checkpointed, regenerated on resume).
    kept: KeptBasis,
}

impl FixedProjection {
    /// FPD around `theta0` (c = 0), gradient at the current point.
    pub fn new(lr: f64, stream: Stream, comps: Vec<Compartment>, theta0: &Tensor) -> Result<Self> {
        FixedProjection::with_variant(lr, stream, comps, theta0, FpdVariant::Paper)
    }

    /// FPD at rate `lr` around the target's θ.
    pub fn build(
        lr: f64,
        config: &FpdConfig,
        directions: &DirectionsConfig,
        target: &Target,
    ) -> Result<Self> {
        let comps = directions.compartments(target)?;
        let family = directions.family(&comps);
        Ok(FixedProjection::with_variant(
            lr,
            directions.stream(target.seed),
            comps,
            target.theta,
            config.fpd_variant,
        )?
        .with_family(family))
    }

    /// FPD around `theta0` with the gradient taken where `gradient_at` says.
    pub fn with_variant(
        lr: f64,
        stream: Stream,
        comps: Vec<Compartment>,
        theta0: &Tensor,
        gradient_at: FpdVariant,
    ) -> Result<Self> {
        let dims = total_dims(&comps);
        Ok(FixedProjection {
            lr,
            stream,
            scale: rbd_scale(theta0.numel()),
            coords: Tensor::zeros(&theta0.device(), &[dims], theta0.dtype())?,
            comps,
            base: theta0.detach(),
            gradient_at,
            previous: None,
            family: BasisFamily::Iid,
            kept: KeptBasis::new(),
        })
    }

    /// The same optimiser with its fixed base drawn from `family`.
    pub fn with_family(self, family: BasisFamily) -> Self {
        FixedProjection { family, ..self }
    }

    /// Bytes of P kept in memory now (0 before the first cpu step, when regenerating, or
    /// where P is not kept).
    pub fn kept_bytes(&self) -> usize {
        self.kept.bytes()
    }

    /// The same optimiser regenerating P at every step instead of keeping it: the same
    /// bits, slower (to measure what keeping saves).
    pub fn regenerating(self) -> Self {
        FixedProjection {
            kept: KeptBasis::regenerating(),
            ..self
        }
    }
}

impl Optimizer for FixedProjection {
    fn step(&mut self, _step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let at = match (self.gradient_at, &self.previous) {
            (FpdVariant::Released, Some(p)) => p.clone(),
            _ => theta.clone(),
        };
        let g = oracle.gradient(&at)?;
        // c' = scale·Pᵀg; θ ← θ − lr·scale·P·c'; c ← c − lr·c'.
        let bases =
            Bases::new(self.stream, FIXED_STEP, &self.comps, self.scale).with_family(self.family);
        let (pg, next) = self
            .kept
            .project_expand(&bases, &g, -self.lr as f32, theta)?;
        self.coords = pg.axpy(-self.lr, &self.coords)?;
        if self.gradient_at == FpdVariant::Released {
            self.previous = Some(theta.detach());
        }
        Ok(StepInfo {
            theta: next,
            correlation: None,
        })
    }

    fn state(&self) -> Vec<StateTensor> {
        let mut s = vec![
            ("fpd.base".into(), self.base.clone()),
            ("fpd.coords".into(), self.coords.clone()),
        ];
        if let Some(p) = &self.previous {
            s.push(("fpd.previous".into(), p.clone()));
        }
        s
    }

    fn load_state(&mut self, state: &[StateTensor]) -> Result<()> {
        let find = |name: &str| state.iter().find(|(n, _)| n == name).map(|t| &t.1);
        for (name, slot) in [
            ("fpd.base", &mut self.base),
            ("fpd.coords", &mut self.coords),
        ] {
            let t = find(name)
                .ok_or_else(|| EngineError::Invalid(format!("checkpoint lacks {name}")))?;
            if t.shape() != slot.shape() {
                return Err(EngineError::Invalid(format!(
                    "checkpoint {name} has shape {:?}, expected {:?}",
                    t.shape(),
                    slot.shape()
                )));
            }
            *slot = t.clone();
        }
        if self.gradient_at == FpdVariant::Released {
            // Absent before the first step.
            self.previous = find("fpd.previous").cloned();
        }
        Ok(())
    }
}
