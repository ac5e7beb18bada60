//! Optimisers over the flat parameter vector θ: SGD, random bases descent (RBD),
//! fixed projection descent (FPD), natural evolution strategies (NES), with
//! compartments, direction distributions and hybrid schedules.
//!
//! An optimiser asks an [`Oracle`] for what it needs (a minibatch gradient, or
//! minibatch losses) and returns the next θ; the trainer owns data, model and metrics.
//! Optimisers speak engine tensors only: the random-bases ops are
//! [`rbd_engine::random_bases`].
//!
//! Each optimiser's file opens with its formula and holds its settings (a serde and
//! clap struct, as burn's `SgdConfig`), its state and its `build`. [`Settings`] gathers
//! every optimiser's settings: a run's configuration, the command line and the
//! manifests flatten it, so a setting is declared once. [`build`] makes the optimiser
//! an [`OptimizerKind`] names.

pub mod compartments;
pub mod config;
pub mod directions;
pub mod distributed;
pub mod exchange;
pub mod fpd;
pub mod materialized;
pub mod nes;
pub mod oracle;
pub mod rbd;
pub mod sgd;

pub use compartments::Compartments;
pub use config::ConfigError;
pub use directions::{BasesKind, DirectionsConfig};
pub use distributed::{BaseSharing, DataParallelSgd, DistributedFpd, DistributedRbd};
pub use exchange::Exchange;
pub use fpd::{FixedProjection, FpdConfig, FpdVariant};
pub use materialized::MaterializedRbd;
pub use nes::{Nes, NesConfig, NesEpochs};
pub use oracle::{Oracle, StepInfo};
pub use rbd::{RandomBases, RbdConfig};
pub use sgd::Sgd;

use rbd_engine::{EngineError, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A named tensor of optimiser state, saved in checkpoints.
pub type StateTensor = (String, Tensor);

/// An optimiser over θ.
pub trait Optimizer: Send {
    /// One update at global step `step` (0-based); returns the new θ.
    fn step(&mut self, step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo>;
    /// Training batches one step consumes (NES: one per offspring).
    fn batches_per_step(&self) -> usize {
        1
    }
    /// State to checkpoint (beyond θ and the step counter).
    fn state(&self) -> Vec<StateTensor> {
        Vec::new()
    }
    /// Restores [`Optimizer::state`].
    fn load_state(&mut self, _state: &[StateTensor]) -> Result<()> {
        Ok(())
    }
}

rbd_engine::named_enum!(
    /// The optimiser of a schedule segment.
    pub OptimizerKind, "optimizer" {
        /// Plain minibatch SGD.
        Sgd = "sgd",
        /// Random bases descent with fused, regenerated directions.
        Rbd = "rbd",
        /// Fixed projection descent (one base for the whole run).
        Fpd = "fpd",
        /// Natural evolution strategies.
        Nes = "nes",
        /// RBD with the d × D basis stored (a baseline for benchmarks).
        RbdMaterialized = "rbd-materialized",
    }
);

impl OptimizerKind {
    /// Whether the optimiser draws random directions (and so uses d, compartments,
    /// distribution and generator).
    pub fn uses_directions(self) -> bool {
        !matches!(self, OptimizerKind::Sgd)
    }

    /// Whether it can train on the K ranks of a distributed run.
    pub fn distributes(self) -> bool {
        matches!(
            self,
            OptimizerKind::Sgd | OptimizerKind::Rbd | OptimizerKind::Fpd
        )
    }

    /// Training batches one step consumes (NES: its population d).
    pub fn batches_per_step(self, settings: &Settings) -> usize {
        match self {
            OptimizerKind::Nes => settings.directions.dim,
            _ => 1,
        }
    }
}

/// Every optimiser's settings. A run holds all of them (flattened into its
/// configuration, so `config.json` has one key per setting); each optimiser reads its
/// own and the shared [`DirectionsConfig`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct Settings {
    /// d, compartments, distribution, generator.
    #[serde(flatten)]
    #[command(flatten)]
    pub directions: DirectionsConfig,
    /// RBD's.
    #[serde(flatten)]
    #[command(flatten)]
    pub rbd: RbdConfig,
    /// NES's.
    #[serde(flatten)]
    #[command(flatten)]
    pub nes: NesConfig,
    /// FPD's.
    #[serde(flatten)]
    #[command(flatten)]
    pub fpd: FpdConfig,
}

impl Settings {
    /// Checks the values alone (d, p, σ).
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        self.directions.validate()?;
        self.nes.validate()
    }

    /// Checks the settings of a schedule of `runs` against a model of `num_params`
    /// parameters (D) cut into `k` compartments.
    pub fn check_fit(
        &self,
        runs: &[OptimizerKind],
        num_params: usize,
        k: usize,
    ) -> std::result::Result<(), ConfigError> {
        self.directions.check_fit(runs, num_params, k)?;
        if runs.contains(&OptimizerKind::RbdMaterialized) {
            materialized::check_config(&self.directions, num_params)?;
        }
        Ok(())
    }

    /// The variant settings (by field) that change nothing in a schedule of `runs`:
    /// the FPD variant without FPD, NES's epoch accounting without NES. They are no part
    /// of a run's identity.
    pub fn inert(&self, runs: &[OptimizerKind]) -> Vec<&'static str> {
        let mut inert = Vec::new();
        if !runs.contains(&OptimizerKind::Fpd) {
            inert.push("fpd_variant");
        }
        if !runs.contains(&OptimizerKind::Nes) {
            inert.push("nes_epochs");
        }
        inert
    }

    /// Puts the [`Settings::inert`] settings back to their defaults (a configuration
    /// then records only the variants it runs).
    pub fn clear_inert(&mut self, runs: &[OptimizerKind]) {
        let inert = self.inert(runs);
        if inert.contains(&"fpd_variant") {
            self.fpd.fpd_variant = FpdConfig::default().fpd_variant;
        }
        if inert.contains(&"nes_epochs") {
            self.nes.nes_epochs = NesConfig::default().nes_epochs;
        }
    }

    /// What a schedule of `runs` draws and runs, in words (one line each, for logs).
    pub fn describe(&self, runs: &[OptimizerKind]) -> Vec<String> {
        let uses = |o| runs.contains(&o);
        let mut lines = Vec::new();
        // NES draws Gaussian offspring whatever the distribution.
        if runs
            .iter()
            .any(|o| o.uses_directions() && *o != OptimizerKind::Nes)
        {
            let d = &self.directions;
            lines.push(format!(
                "directions: {}",
                d.distribution.describe(d.bernoulli_p)
            ));
        }
        if runs.iter().any(|o| o.uses_directions()) {
            lines.push(format!("bases: {}", self.directions.bases.describe()));
        }
        if uses(OptimizerKind::Fpd) {
            lines.push(format!("FPD: {}", self.fpd.fpd_variant.describe()));
        }
        if uses(OptimizerKind::Nes) {
            let e = self.nes.nes_epochs;
            lines.push(format!("NES epochs: {e} ({})", e.describe()));
        }
        lines
    }
}

/// What an optimiser is built for: θ at the start (FPD's base; its device is the
/// optimiser's), the model's layers and parameter tensors as `(offset, len)` ranges of
/// θ (compartments are cut from them), and the run's seed.
pub struct Target<'a> {
    /// θ now.
    pub theta: &'a Tensor,
    /// `(offset, len)` of each layer.
    pub layers: Vec<(usize, usize)>,
    /// `(offset, len)` of each parameter tensor.
    pub tensors: Vec<(usize, usize)>,
    /// Seed of the direction stream.
    pub seed: u64,
}

impl Target<'_> {
    /// D.
    pub fn num_params(&self) -> usize {
        self.theta.numel()
    }
}

/// The optimiser `kind` at rate `lr` with its `settings`, for `target`.
pub fn build(
    kind: OptimizerKind,
    lr: f64,
    settings: &Settings,
    target: &Target,
) -> Result<Box<dyn Optimizer>> {
    let s = settings;
    let d = &s.directions;
    Ok(match kind {
        OptimizerKind::Sgd => Box::new(Sgd::build(lr)),
        OptimizerKind::Rbd => Box::new(RandomBases::build(lr, &s.rbd, d, target)?),
        OptimizerKind::Fpd => Box::new(FixedProjection::build(lr, &s.fpd, d, target)?),
        OptimizerKind::Nes => Box::new(Nes::build(lr, &s.nes, d, target)),
        OptimizerKind::RbdMaterialized => Box::new(MaterializedRbd::build(lr, d, target)?),
    })
}

/// The optimiser `kind` for one rank of a distributed run whose ranks talk through
/// `exchange` and share directions as `sharing` says (`rbd_optim::distributed`).
pub fn build_distributed(
    kind: OptimizerKind,
    lr: f64,
    settings: &Settings,
    target: &Target,
    sharing: BaseSharing,
    exchange: Arc<dyn Exchange>,
) -> Result<Box<dyn Optimizer>> {
    let d = &settings.directions;
    let (stream, num_params) = (d.stream(target.seed), target.num_params());
    Ok(match kind {
        OptimizerKind::Sgd => Box::new(DataParallelSgd { lr, exchange }),
        OptimizerKind::Rbd => {
            let comps = d.compartments(target)?;
            let family = d.family(&comps);
            Box::new(
                DistributedRbd::new(lr, stream, comps, num_params, sharing, exchange)
                    .with_family(family),
            )
        }
        OptimizerKind::Fpd => {
            let comps = d.compartments(target)?;
            let family = d.family(&comps);
            Box::new(
                DistributedFpd::new(lr, stream, comps, target.theta, sharing, exchange)?
                    .with_family(family),
            )
        }
        other => {
            return Err(EngineError::Invalid(format!(
                "distributed: {other} cannot train distributed (sgd, rbd and fpd can)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_to_their_flags_and_read_missing_keys_as_defaults() {
        let s = Settings::default();
        assert_eq!(s.directions.dim, 250);
        assert_eq!(s.directions.compartments, Compartments::Even(1));
        assert_eq!(s.nes.nes_sigma, 0.01);
        assert_eq!(s.nes.nes_epochs, NesEpochs::Whole);
        assert_eq!(s.fpd.fpd_variant, FpdVariant::Paper);
        assert!(!s.rbd.correlation);
        // Every field is a flag (its id is the field) and a key.
        let fields = config::fields::<Settings>();
        for key in [
            "dim",
            "generator",
            "bases",
            "correlation",
            "nes_sigma",
            "fpd_variant",
        ] {
            assert!(fields.iter().any(|f| f == key), "{key} not in {fields:?}");
        }
        assert_eq!(fields.len(), 11, "{fields:?}");
    }

    #[test]
    fn kinds_read_back_their_text_and_name_the_accepted_forms() {
        for &o in OptimizerKind::ALL {
            assert_eq!(o.to_string().parse::<OptimizerKind>(), Ok(o));
        }
        for &e in NesEpochs::ALL {
            assert_eq!(e.to_string().parse::<NesEpochs>(), Ok(e));
        }
        let e = "adam".parse::<OptimizerKind>().unwrap_err();
        assert!(
            e.contains("'adam'") && e.contains("rbd-materialized"),
            "{e}"
        );
    }

    #[test]
    fn inert_variants_are_cleared_and_the_others_kept() {
        let mut s = Settings::default();
        s.fpd.fpd_variant = FpdVariant::Released;
        s.nes.nes_epochs = NesEpochs::Update;
        s.nes.nes_sigma = 0.02;
        let mut only_rbd = s.clone();
        only_rbd.clear_inert(&[OptimizerKind::Rbd]);
        assert_eq!(only_rbd.fpd.fpd_variant, FpdVariant::Paper);
        assert_eq!(only_rbd.nes.nes_epochs, NesEpochs::Whole);
        // σ was always part of a run's identity: it stays.
        assert_eq!(only_rbd.nes.nes_sigma, 0.02);
        let mut both = s.clone();
        both.clear_inert(&[OptimizerKind::Fpd, OptimizerKind::Nes]);
        assert_eq!(both, s);
    }
}
