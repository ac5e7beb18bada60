//! FC: flatten → Dense 128 (ReLU) → Dense 10.

use crate::model::{apply_dense, apply_dense_relu, dense, layer, Mode, Model};
use crate::params::ParamLayout;
use rbd_engine::{Result, Tensor};

/// The paper's fully-connected network.
pub struct Fc {
    layout: ParamLayout,
}

impl Fc {
    /// For inputs of `c × h × w` pixels.
    pub fn new(c: usize, h: usize, w: usize) -> Fc {
        let mut layout = ParamLayout::default();
        dense(&mut layout, "dense_1", c * h * w, 128);
        dense(&mut layout, "dense_2", 128, 10);
        Fc { layout }
    }
}

impl Model for Fc {
    fn name(&self) -> &str {
        "fc"
    }
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    fn forward(&self, p: &[Tensor], x: &Tensor, _mode: Mode) -> Result<Tensor> {
        let h = layer("dense_1", || apply_dense_relu(p, 0, &x.flatten()?))?;
        layer("dense_2", || apply_dense(p, 2, &h))
    }
}
