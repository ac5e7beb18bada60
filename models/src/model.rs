//! The model interface and the layers the paper's networks are built from.

use crate::params::{Init, ParamLayout};
use rbd_engine::{Padding, Result, Tensor};
use std::sync::Mutex;

/// Whether a forward pass trains (batch statistics, running-stat updates) or evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training.
    Train,
    /// Evaluation.
    Eval,
}

/// A network over a flat parameter vector.
pub trait Model: Send + Sync {
    /// Short name (`fc`, `cnn`, `resnet8`, `resnet32`).
    fn name(&self) -> &str;
    /// Where each trainable tensor lives in θ.
    fn layout(&self) -> &ParamLayout;
    /// Logits `[N, 10]` for NCHW input `x`, with `params` the per-tensor views of θ
    /// (in layout order).
    fn forward(&self, params: &[Tensor], x: &Tensor, mode: Mode) -> Result<Tensor>;
    /// Non-trainable state (batch-norm running statistics), as `(name, tensor)` pairs.
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// Replaces the non-trainable state (from a checkpoint), matched by name.
    fn set_state(&self, _state: &[(String, Tensor)]) -> Result<()> {
        Ok(())
    }
    /// Parameter count as Keras reports it (trainable plus batch-norm running stats).
    fn keras_param_count(&self) -> usize {
        self.layout().total + self.state().iter().map(|(_, t)| t.numel()).sum::<usize>()
    }
}

/// Adds a dense layer (kernel `[in, out]`, Glorot uniform; bias zeros) to `layout`.
pub(crate) fn dense(layout: &mut ParamLayout, name: &str, fan_in: usize, out: usize) -> usize {
    layout.begin_layer();
    let k = layout.add(
        format!("{name}.kernel"),
        &[fan_in, out],
        Init::GlorotUniform {
            fan_in,
            fan_out: out,
        },
    );
    layout.add(format!("{name}.bias"), &[out], Init::Zeros);
    k
}

/// Adds a 3×3-style conv layer with bias (Glorot uniform kernel `[O, C, K, K]`).
pub(crate) fn conv_with_bias(
    layout: &mut ParamLayout,
    name: &str,
    c: usize,
    o: usize,
    k: usize,
) -> usize {
    layout.begin_layer();
    let i = layout.add(
        format!("{name}.kernel"),
        &[o, c, k, k],
        Init::GlorotUniform {
            fan_in: c * k * k,
            fan_out: o * k * k,
        },
    );
    layout.add(format!("{name}.bias"), &[o], Init::Zeros);
    i
}

/// Runs `f` inside the profiler's layer scope `name` (free when not profiling).
pub(crate) fn layer<R>(name: &str, f: impl FnOnce() -> R) -> R {
    let _scope = rbd_engine::profile::layer(name);
    f()
}

/// `x · W + b` with `p[i]` the kernel and `p[i + 1]` the bias.
pub(crate) fn apply_dense(p: &[Tensor], i: usize, x: &Tensor) -> Result<Tensor> {
    x.matmul(&p[i])?.bias_add(&p[i + 1])
}

/// `relu(x · W + b)`, fused: bitwise [`apply_dense`] then ReLU, in fewer passes.
pub(crate) fn apply_dense_relu(p: &[Tensor], i: usize, x: &Tensor) -> Result<Tensor> {
    x.matmul(&p[i])?.bias_relu(&p[i + 1])
}

/// `relu(conv(x) + b)` (valid, stride 1), fused: bitwise `bias_add` then ReLU, in
/// fewer passes.
pub(crate) fn apply_conv_relu(p: &[Tensor], i: usize, x: &Tensor) -> Result<Tensor> {
    x.conv2d(&p[i], 1, Padding::Valid)?.bias_relu(&p[i + 1])
}

/// `maxpool2x2(relu(conv(x) + b))` (valid, stride 1), fused: bitwise the separate
/// ops, in fewer passes.
pub(crate) fn apply_conv_relu_pool(p: &[Tensor], i: usize, x: &Tensor) -> Result<Tensor> {
    x.conv2d(&p[i], 1, Padding::Valid)?
        .bias_relu_maxpool2x2(&p[i + 1])
}

/// Running statistics of one batch-norm layer.
pub(crate) struct RunningStats {
    pub(crate) name: String,
    pub(crate) mean: Mutex<Tensor>,
    pub(crate) var: Mutex<Tensor>,
}

/// Keras defaults.
pub(crate) const BN_MOMENTUM: f64 = 0.99;
pub(crate) const BN_EPS: f64 = 1e-3;

impl RunningStats {
    /// Batch norm in `mode`, updating the running statistics when training:
    /// r ← m·r + (1 − m)·batch.
    pub(crate) fn apply(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        mode: Mode,
    ) -> Result<Tensor> {
        match mode {
            Mode::Train => {
                let (y, mean, invstd) = x.batch_norm_train(gamma, beta, BN_EPS)?;
                rbd_engine::no_grad(|| -> Result<()> {
                    let var = invstd.inv_square_minus(BN_EPS)?;
                    // Statistics follow the activations' dtype (f64 in gradient checks).
                    let mut m = self.mean.lock().unwrap();
                    let old = m.to_dtype(mean.dtype())?;
                    *m = mean.axpy(1.0 - BN_MOMENTUM, &old.scale(BN_MOMENTUM)?)?;
                    let mut v = self.var.lock().unwrap();
                    let old = v.to_dtype(var.dtype())?;
                    *v = var.axpy(1.0 - BN_MOMENTUM, &old.scale(BN_MOMENTUM)?)?;
                    Ok(())
                })?;
                Ok(y)
            }
            Mode::Eval => {
                let m = self.mean.lock().unwrap().clone();
                let v = self.var.lock().unwrap().clone();
                x.batch_norm_eval(gamma, beta, &m, &v, BN_EPS)
            }
        }
    }
}
