//! Fixed projection descent (Li et al. 2018): one base drawn once for the whole run;
//! θ = θ₀ + P·c and c ← c − lr·Pᵀg, with the same 1/√D scaling as RBD. (Unlike the
//! reference implementation, the gradient is taken at the current θ₀ + P·c.)

use crate::{Optimizer, Oracle, StateTensor, StepInfo};
use rbd_engine::random_bases::{expand, project, rbd_scale, total_dims, Compartment, Stream};
use rbd_engine::{EngineError, Result, Tensor};

/// The step index the fixed base is drawn at.
const FIXED_STEP: u64 = 0;

/// FPD state: θ₀ and the coordinates c.
pub struct FixedProjection {
    /// Learning rate.
    pub lr: f64,
    stream: Stream,
    comps: Vec<Compartment>,
    scale: f32,
    base: Tensor,
    coords: Tensor,
}

impl FixedProjection {
    /// FPD around `theta0` (c = 0).
    pub fn new(lr: f64, stream: Stream, comps: Vec<Compartment>, theta0: &Tensor) -> Result<Self> {
        let dims = total_dims(&comps);
        Ok(FixedProjection {
            lr,
            stream,
            scale: rbd_scale(theta0.numel()),
            coords: Tensor::zeros(&theta0.device(), &[dims], theta0.dtype())?,
            comps,
            base: theta0.detach(),
        })
    }
}

impl Optimizer for FixedProjection {
    fn step(&mut self, _step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let g = oracle.gradient(theta)?;
        let pg = project(&self.stream, FIXED_STEP, &self.comps, self.scale, &g)?;
        self.coords = pg.axpy(-self.lr, &self.coords)?;
        let next = expand(
            &self.stream,
            FIXED_STEP,
            &self.comps,
            self.scale,
            &self.coords,
            1.0,
            &self.base,
        )?;
        Ok(StepInfo {
            theta: next,
            correlation: None,
        })
    }
    fn state(&self) -> Vec<StateTensor> {
        vec![
            ("fpd.base".into(), self.base.clone()),
            ("fpd.coords".into(), self.coords.clone()),
        ]
    }
    fn load_state(&mut self, state: &[StateTensor]) -> Result<()> {
        for (name, slot) in [
            ("fpd.base", &mut self.base),
            ("fpd.coords", &mut self.coords),
        ] {
            let t = state
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| EngineError::Invalid(format!("checkpoint lacks {name}")))?;
            if t.1.shape() != slot.shape() {
                return Err(EngineError::Invalid(format!(
                    "checkpoint {name} has shape {:?}, expected {:?}",
                    t.1.shape(),
                    slot.shape()
                )));
            }
            *slot = t.1.clone();
        }
        Ok(())
    }
}
