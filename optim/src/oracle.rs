//! What an optimiser may ask of the model and data.

use rbd_engine::{Result, Tensor};

/// Evaluates the model on successive training minibatches.
pub trait Oracle {
    /// The minibatch gradient g = ∇L(θ) (length D) on the next training batch.
    fn gradient(&mut self, theta: &Tensor) -> Result<Tensor>;
    /// The minibatch loss L(θ) on the next training batch, without a backward pass.
    fn loss(&mut self, theta: &Tensor) -> Result<f64>;
    /// `(name, offset, len)` of each parameter tensor in θ.
    fn tensors(&self) -> Vec<(String, usize, usize)>;
}

/// What a step produced.
pub struct StepInfo {
    /// The new θ.
    pub theta: Tensor,
    /// Cosine similarity of the update direction with the minibatch gradient, for the
    /// whole vector and then per parameter tensor (only when asked for).
    pub correlation: Option<Vec<f64>>,
}
