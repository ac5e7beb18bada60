//! Reverse-mode autodiff: every recorded op keeps its parents and a backward rule
//! (a closure next to the op's forward code); [`Tensor::backward`] walks the graph
//! from a scalar loss in reverse topological order and sums gradients per node.

use crate::error::{EngineError, Result};
use crate::tensor::{Tensor, TensorId};
use std::cell::Cell;
use std::collections::HashMap;

type BackwardFn = dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync;

/// The op that produced a tensor: its parents and the rule mapping the output's
/// gradient to one gradient per parent (`None` where a parent needs none).
pub struct GradFn {
    pub(crate) name: &'static str,
    /// The layer scope open when the op was recorded (only while profiling).
    pub(crate) layer: Option<std::sync::Arc<str>>,
    pub(crate) parents: Vec<Tensor>,
    pub(crate) backward: Box<BackwardFn>,
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record themselves for backward on this thread.
pub fn grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Evaluation mode: while the guard lives, nothing is recorded on this thread.
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    /// Turns recording off until the guard is dropped.
    pub fn new() -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { previous }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` with recording off.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Gradients of a loss with respect to every tensor it depends on.
#[derive(Default)]
pub struct Gradients {
    grads: HashMap<TensorId, Tensor>,
}

impl Gradients {
    /// The gradient of `t`, if the loss depends on it.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.grads.get(&t.id())
    }

    /// Takes the gradient of `t` out of the store.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.grads.remove(&t.id())
    }

    /// Number of stored gradients.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// Whether no gradient is stored.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

impl Tensor {
    /// Backpropagates from this scalar: the gradient of every tensor it was computed
    /// from (leaves made with [`Tensor::requires_grad`] and intermediate results).
    pub fn backward(&self) -> Result<Gradients> {
        if self.numel() != 1 {
            return Err(EngineError::Shape {
                op: "backward",
                msg: format!("needs a scalar loss, got shape {:?}", self.shape()),
            });
        }
        // Iterative DFS for a post-order; parents come before children in `order`.
        let mut order: Vec<Tensor> = Vec::new();
        let mut seen: HashMap<TensorId, ()> = HashMap::new();
        let mut stack: Vec<(Tensor, bool)> = vec![(self.clone(), false)];
        while let Some((t, expanded)) = stack.pop() {
            if expanded {
                order.push(t);
                continue;
            }
            if seen.insert(t.id(), ()).is_some() || !t.tracks_grad() {
                continue;
            }
            stack.push((t.clone(), true));
            if let Some(f) = &t.0.grad_fn {
                for p in f.parents.iter().rev() {
                    if !seen.contains_key(&p.id()) {
                        stack.push((p.clone(), false));
                    }
                }
            }
        }
        let _guard = NoGradGuard::new();
        let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
        grads.insert(self.id(), self.full_like(self.shape(), 1.0)?);
        for t in order.iter().rev() {
            let Some(f) = &t.0.grad_fn else { continue };
            let Some(g) = grads.get(&t.id()).cloned() else {
                continue;
            };
            let profiled = crate::profile::backward_scopes(f.layer.as_ref(), f.name);
            let parent_grads = (f.backward)(&g).map_err(|e| match e {
                EngineError::Shape { op, msg } => EngineError::Shape {
                    op,
                    msg: format!("{msg} (in the backward of {})", f.name),
                },
                other => other,
            })?;
            drop(profiled);
            for (p, pg) in f.parents.iter().zip(parent_grads) {
                let Some(pg) = pg else { continue };
                if !p.tracks_grad() {
                    continue;
                }
                if pg.shape() != p.shape() {
                    return Err(EngineError::Shape {
                        op: f.name,
                        msg: format!(
                            "backward produced a gradient of shape {:?} for an input of shape {:?}",
                            pg.shape(),
                            p.shape()
                        ),
                    });
                }
                let acc = match grads.remove(&p.id()) {
                    Some(prev) => prev.add(&pg)?,
                    None => pg,
                };
                grads.insert(p.id(), acc);
            }
            // Intermediate gradients are kept: users may ask for them.
        }
        Ok(Gradients { grads })
    }
}
