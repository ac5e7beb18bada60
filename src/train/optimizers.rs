//! The optimiser of a schedule segment: `rbd_optim`'s factory, for the run's model and
//! processes.

use super::config::RunConfig;
use anyhow::Result;
use rbd_engine::Tensor;
use rbd_models::ParamLayout;
use rbd_optim::{Optimizer, OptimizerKind, Settings, Target};

/// What a run seeded `seed` trains: θ over the model's layers and tensors.
pub fn target<'a>(seed: u64, layout: &ParamLayout, theta: &'a Tensor) -> Target<'a> {
    Target {
        theta,
        layers: layout.layer_ranges(),
        tensors: layout.tensor_offsets(),
        seed,
    }
}

/// An optimiser as a schedule segment names it: its kind, its rate and the settings.
#[derive(Clone, Copy, Debug)]
pub struct SegmentOptimizer<'a> {
    /// Which optimiser.
    pub kind: OptimizerKind,
    /// Its learning rate.
    pub lr: f64,
    /// Every optimiser's settings (it reads its own).
    pub settings: &'a Settings,
}

/// `segment`'s optimiser for one process of a run seeded `seed`, starting from `theta`.
pub fn single(
    segment: &SegmentOptimizer,
    seed: u64,
    layout: &ParamLayout,
    theta: &Tensor,
) -> Result<Box<dyn Optimizer>> {
    let target = target(seed, layout, theta);
    Ok(rbd_optim::build(
        segment.kind,
        segment.lr,
        segment.settings,
        &target,
    )?)
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
    let segment = SegmentOptimizer {
        kind: seg.optimizer,
        lr: seg.lr,
        settings: &cfg.settings,
    };
    let target = target(cfg.seed, layout, theta);
    Ok(match &cfg.distributed {
        None => single(&segment, cfg.seed, layout, theta)?,
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
