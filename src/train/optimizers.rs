//! Builds the optimiser of a schedule segment from the run configuration.

use super::config::RunConfig;
use anyhow::{bail, Result};
use rbd_engine::{Device, Tensor};
use rbd_models::ParamLayout;
use rbd_optim::{Optimizer, Sgd};

/// What optimisers may need to be built.
pub struct Context<'a> {
    /// The run.
    pub cfg: &'a RunConfig,
    /// Where θ lives.
    pub device: &'a Device,
    /// The parameter layout.
    pub layout: &'a ParamLayout,
}

/// The optimiser of segment `index`, starting from `theta`.
pub fn build(ctx: &Context<'_>, index: usize, _theta: &Tensor) -> Result<Box<dyn Optimizer>> {
    let seg = &ctx.cfg.schedule[index];
    Ok(match seg.optimizer.as_str() {
        "sgd" => Box::new(Sgd { lr: seg.lr }),
        other => bail!("optimizer {other} is not available"),
    })
}
