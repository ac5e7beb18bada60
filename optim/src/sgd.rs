//! Plain SGD: θ ← θ − lr·g (constant lr, no momentum).

use crate::{Optimizer, Oracle, StepInfo};
use rbd_engine::{Result, Tensor};

/// Stochastic gradient descent (no settings beyond its rate).
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
}

impl Sgd {
    /// SGD at rate `lr`.
    pub fn build(lr: f64) -> Self {
        Sgd { lr }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, _step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let g = oracle.gradient(theta)?;
        Ok(StepInfo {
            theta: g.axpy(-self.lr, theta)?,
            correlation: None,
        })
    }
}
