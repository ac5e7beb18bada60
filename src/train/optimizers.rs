//! The optimiser of a schedule segment: `rbd_optim`'s factory, for the run's model and
//! processes.

use super::config::RunConfig;
use anyhow::Result;
use rbd_engine::Tensor;
use rbd_models::ParamLayout;
use rbd_optim::{Optimizer, Target};

/// What the run's optimisers train: θ over the model's layers and tensors.
pub fn target<'a>(cfg: &RunConfig, layout: &ParamLayout, theta: &'a Tensor) -> Target<'a> {
    Target {
        theta,
        layers: layout.layer_ranges(),
        tensors: layout.tensor_offsets(),
        seed: cfg.seed,
    }
}

/// The optimiser of segment `index`, starting from `theta`, for this process of `team`
/// (the distributed variant, `rbd_optim::distributed`, in a distributed run).
pub fn build(
    cfg: &RunConfig,
    layout: &ParamLayout,
    index: usize,
    theta: &Tensor,
    team: &super::Team,
) -> Result<Box<dyn Optimizer>> {
    let seg = &cfg.schedule[index];
    let target = target(cfg, layout, theta);
    Ok(match &cfg.distributed {
        None => rbd_optim::build(seg.optimizer, seg.lr, &cfg.settings, &target)?,
        Some(d) => rbd_optim::build_distributed(
            seg.optimizer,
            seg.lr,
            &cfg.settings,
            &target,
            d.rbd_base,
            team.optimizer_exchange(),
        )?,
    })
}
