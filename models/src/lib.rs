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

/// The model names `build` accepts.
pub const MODEL_NAMES: [&str; 4] = ["fc", "cnn", "resnet8", "resnet32"];

/// Builds model `name` for inputs of `c × h × w` pixels on `device`.
pub fn build(name: &str, c: usize, h: usize, w: usize, device: &Device) -> Result<Box<dyn Model>> {
    match name {
        "fc" => Ok(Box::new(fc::Fc::new(c, h, w))),
        "cnn" => Ok(Box::new(cnn::Cnn::new(c, h, w)?)),
        "resnet8" | "resnet32" => {
            if (c, h, w) != (3, 32, 32) {
                return Err(EngineError::Invalid(format!(
                    "model {name}: the CIFAR ResNets need 32×32×3 inputs (CIFAR-10), got {h}×{w}×{c}"
                )));
            }
            let n = if name == "resnet8" { 1 } else { 5 };
            Ok(Box::new(resnet::ResNet::new(n, device)?))
        }
        other => Err(EngineError::Invalid(format!(
            "unknown model '{other}' (expected one of {})",
            MODEL_NAMES.join(", ")
        ))),
    }
}
