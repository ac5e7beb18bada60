//! Optimisers over the flat parameter vector θ: SGD, random bases descent (RBD),
//! fixed projection descent (FPD), natural evolution strategies (NES), with
//! compartments, direction distributions and hybrid schedules.
//!
//! An optimiser asks an [`Oracle`] for what it needs (a minibatch gradient, or
//! minibatch losses) and returns the next θ; the trainer owns data, model and metrics.
//! Optimisers speak engine tensors only: the random-bases ops are
//! [`rbd_engine::random_bases`].

pub mod compartments;
pub mod fpd;
pub mod materialized;
pub mod nes;
pub mod oracle;
pub mod rbd;
pub mod sgd;

pub use compartments::Compartments;
pub use fpd::FixedProjection;
pub use materialized::MaterializedRbd;
pub use nes::Nes;
pub use oracle::{Oracle, StepInfo};
pub use rbd::RandomBases;
pub use sgd::Sgd;

use rbd_engine::{Result, Tensor};

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
