//! The paper's networks (FC, CNN, ResNet-8, ResNet-32) over one flat parameter
//! vector θ, in layer creation order, with per-tensor views.

pub mod cnn;
pub mod fc;
pub mod model;
pub mod params;
pub mod resnet;

pub use model::{Mode, Model};
pub use params::{Init, ParamLayout, ParamSpec};

use rbd_engine::{Device, EngineError, Result};

rbd_engine::named_enum!(
    /// The network.
    pub ModelKind, "model" {
        /// Dense 128 → Dense 10.
        Fc = "fc",
        /// The paper's three-convolution network.
        Cnn = "cnn",
        /// Keras ResNet v1 with n = 1 (CIFAR-10).
        Resnet8 = "resnet8",
        /// Keras ResNet v1 with n = 5 (CIFAR-10).
        Resnet32 = "resnet32",
    }
);

/// Builds `model` for inputs of `c × h × w` pixels on `device`.
pub fn build(
    model: ModelKind,
    c: usize,
    h: usize,
    w: usize,
    device: &Device,
) -> Result<Box<dyn Model>> {
    match model {
        ModelKind::Fc => Ok(Box::new(fc::Fc::new(c, h, w))),
        ModelKind::Cnn => Ok(Box::new(cnn::Cnn::new(c, h, w)?)),
        ModelKind::Resnet8 | ModelKind::Resnet32 => {
            if (c, h, w) != (3, 32, 32) {
                return Err(EngineError::Invalid(format!(
                    "model {model}: the CIFAR ResNets need 32×32×3 inputs (CIFAR-10), got {h}×{w}×{c}"
                )));
            }
            let n = if model == ModelKind::Resnet8 { 1 } else { 5 };
            Ok(Box::new(resnet::ResNet::new(n, device)?))
        }
    }
}
