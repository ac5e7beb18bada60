//! The flat parameter vector θ and its per-tensor views.
//!
//! Every model's trainable parameters live in one vector of length D, in layer
//! creation order (kernel, then bias or gamma/beta, per layer), so optimisers can
//! treat θ as a single vector. [`ParamLayout`] records where each tensor sits.

use rand_core::Rng;
use rand_pcg::Pcg64;
use rbd_engine::{Device, Gradients, Result, Tensor};

/// How a parameter tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Glorot (Xavier) uniform: U(−l, l), l = √(6 / (fan_in + fan_out)).
    GlorotUniform {
        /// Inputs per output unit.
        fan_in: usize,
        /// Outputs per input unit.
        fan_out: usize,
    },
    /// He normal as Keras draws it: a normal truncated at 2σ with
    /// σ = √(2 / fan_in) / 0.87962566.
    HeNormal {
        /// Inputs per output unit.
        fan_in: usize,
    },
    /// All zeros (biases, batch-norm beta).
    Zeros,
    /// All ones (batch-norm gamma).
    Ones,
}

/// One parameter tensor inside θ.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Name, e.g. `conv2d_1.kernel` (also the safetensors name).
    pub name: String,
    /// Shape (PyTorch layouts: dense kernels `[in, out]`, conv kernels `[O, C, KH, KW]`).
    pub shape: Vec<usize>,
    /// Offset of the first element in θ.
    pub offset: usize,
    /// Index of the layer this tensor belongs to (for per-layer compartments).
    pub layer: usize,
    /// Initialiser.
    pub init: Init,
}

impl ParamSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where every parameter tensor lives in θ.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamLayout {
    /// Tensors in creation order.
    pub specs: Vec<ParamSpec>,
    /// D, the length of θ.
    pub total: usize,
    layers: usize,
}

impl ParamLayout {
    /// Starts a new layer; tensors added until the next call belong to it.
    pub fn begin_layer(&mut self) -> usize {
        self.layers += 1;
        self.layers - 1
    }

    /// Appends a tensor to the current layer and returns its index.
    pub fn add(&mut self, name: impl Into<String>, shape: &[usize], init: Init) -> usize {
        let spec = ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            offset: self.total,
            layer: self.layers.saturating_sub(1),
            init,
        };
        self.total += spec.len();
        self.specs.push(spec);
        self.specs.len() - 1
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// `(name, offset, len)` of each parameter tensor in θ, in layout order.
    pub fn tensor_ranges(&self) -> Vec<(String, usize, usize)> {
        self.specs
            .iter()
            .map(|s| (s.name.clone(), s.offset, s.len()))
            .collect()
    }

    /// `(offset, len)` of each parameter tensor in θ.
    pub fn tensor_offsets(&self) -> Vec<(usize, usize)> {
        self.specs.iter().map(|s| (s.offset, s.len())).collect()
    }

    /// `[offset, offset + len)` of each layer in θ (layers are contiguous).
    pub fn layer_ranges(&self) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for s in &self.specs {
            if s.layer == out.len() {
                out.push((s.offset, s.len()));
            } else {
                out[s.layer].1 += s.len();
            }
        }
        out
    }

    /// Draws θ₀ on the host from `seed` (rand_pcg), tensor by tensor in order.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = Pcg64::new(
            0xcafe_f00d_d15e_a5e5 ^ seed as u128,
            0xa02b_dbf7_bb3c_0a7a_c28f_a64a_5d3e_8c5b,
        );
        let mut theta = Vec::with_capacity(self.total);
        for s in &self.specs {
            let n = s.len();
            match s.init {
                Init::GlorotUniform { fan_in, fan_out } => {
                    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
                    theta.extend((0..n).map(|_| ((uniform(&mut rng) * 2.0 - 1.0) * limit) as f32));
                }
                Init::HeNormal { fan_in } => {
                    let sigma = (2.0 / fan_in as f64).sqrt() / 0.879_625_66;
                    theta.extend((0..n).map(|_| (truncated_normal(&mut rng) * sigma) as f32));
                }
                Init::Zeros => theta.extend(std::iter::repeat_n(0.0, n)),
                Init::Ones => theta.extend(std::iter::repeat_n(1.0, n)),
            }
        }
        theta
    }

    /// Per-tensor leaves over θ that record gradients (views on the cpu, copies on wgpu).
    pub fn views(&self, theta: &Tensor) -> Result<Vec<Tensor>> {
        self.specs
            .iter()
            .map(|s| Ok(theta.flat_slice(s.offset, &s.shape)?.requires_grad()))
            .collect()
    }

    /// The gradient of every view concatenated into one vector g of length D
    /// (zeros where the loss did not depend on a tensor).
    pub fn flat_grad(
        &self,
        grads: &Gradients,
        views: &[Tensor],
        device: &Device,
    ) -> Result<Tensor> {
        let zeros: Vec<Option<Tensor>> = views
            .iter()
            .map(|v| match grads.get(v) {
                Some(_) => Ok(None),
                None => Tensor::zeros(device, v.shape(), v.dtype()).map(Some),
            })
            .collect::<Result<_>>()?;
        let parts: Vec<&Tensor> = views
            .iter()
            .zip(&zeros)
            .map(|(v, z)| grads.get(v).or(z.as_ref()).expect("gradient or zeros"))
            .collect();
        Tensor::cat_flat(&parts)
    }
}

/// Uniform in [0, 1) from 53 random bits.
pub(crate) fn uniform(rng: &mut Pcg64) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal truncated at ±2 (Box–Muller, resampling outside).
fn truncated_normal(rng: &mut Pcg64) -> f64 {
    loop {
        let u1 = 1.0 - uniform(rng); // (0, 1]: never ln(0)
        let u2 = uniform(rng);
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        if z.abs() <= 2.0 {
            return z;
        }
    }
}
