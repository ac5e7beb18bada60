//! CNN: Conv 3×3 valid 32 (ReLU) → maxpool 2×2 → Conv 3×3 valid 64 (ReLU) → maxpool
//! 2×2 → Conv 3×3 valid 64 (ReLU) → flatten → Dense 64 (ReLU) → Dense 10.

use crate::model::{
    apply_conv_relu, apply_conv_relu_pool, apply_dense, apply_dense_relu, conv_with_bias, dense,
    layer, Mode, Model,
};
use crate::params::ParamLayout;
use rbd_engine::{EngineError, Result, Tensor};

/// The paper's convolutional network.
pub struct Cnn {
    layout: ParamLayout,
}

impl Cnn {
    /// For inputs of `c × h × w` pixels (28×28×1 or 32×32×3 in the paper).
    pub fn new(c: usize, h: usize, w: usize) -> Result<Cnn> {
        // Spatial size after conv(3, valid) → pool → conv → pool → conv.
        let side = |s: usize| -> Option<usize> {
            ((s.checked_sub(2)? / 2).checked_sub(2)? / 2).checked_sub(2)
        };
        let (Some(oh), Some(ow)) = (side(h), side(w)) else {
            return Err(EngineError::Invalid(format!(
                "cnn: input {h}×{w} is too small for three 3×3 convolutions and two pools"
            )));
        };
        if oh == 0 || ow == 0 {
            return Err(EngineError::Invalid(format!(
                "cnn: input {h}×{w} is too small"
            )));
        }
        let mut layout = ParamLayout::default();
        conv_with_bias(&mut layout, "conv2d_1", c, 32, 3);
        conv_with_bias(&mut layout, "conv2d_2", 32, 64, 3);
        conv_with_bias(&mut layout, "conv2d_3", 64, 64, 3);
        dense(&mut layout, "dense_1", 64 * oh * ow, 64);
        dense(&mut layout, "dense_2", 64, 10);
        Ok(Cnn { layout })
    }
}

impl Model for Cnn {
    fn name(&self) -> &str {
        "cnn"
    }
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    fn forward(&self, p: &[Tensor], x: &Tensor, _mode: Mode) -> Result<Tensor> {
        let h = layer("conv2d_1", || apply_conv_relu_pool(p, 0, x))?;
        let h = layer("conv2d_2", || apply_conv_relu_pool(p, 2, &h))?;
        let h = layer("conv2d_3", || apply_conv_relu(p, 4, &h))?;
        let h = layer("dense_1", || apply_dense_relu(p, 6, &h.flatten()?))?;
        layer("dense_2", || apply_dense(p, 8, &h))
    }
}
