//! Gradient checking: autodiff against central differences in f64 on the cpu
//! backend, plus proptest strategies for property-testing ops and models.
//!
//! ```
//! use rbd_engine::{gradcheck::{gradcheck, GradcheckConfig}, Tensor};
//! let x = Tensor::from_f64(&[0.3, -1.2, 2.0], &[3]).unwrap();
//! let report = gradcheck(|v| v[0].mul(&v[0])?.sum(), &[x], &GradcheckConfig::default()).unwrap();
//! assert!(report.max_abs_error < 1e-6);
//! ```

use crate::autodiff::no_grad;
use crate::error::{EngineError, Result};
use crate::tensor::{DType, Tensor};

/// Tolerances and limits of a check.
#[derive(Clone, Debug)]
pub struct GradcheckConfig {
    /// Central-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (to the larger of the two magnitudes).
    pub rtol: f64,
    /// At most this many elements per input are perturbed (evenly spaced), to bound
    /// the cost on large inputs; `usize::MAX` checks all.
    pub max_elements_per_input: usize,
}

impl Default for GradcheckConfig {
    fn default() -> Self {
        GradcheckConfig {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-4,
            max_elements_per_input: usize::MAX,
        }
    }
}

/// What a passing check measured.
#[derive(Clone, Debug, Default)]
pub struct GradcheckReport {
    /// Elements compared.
    pub checked: usize,
    /// Largest |autodiff − numeric|.
    pub max_abs_error: f64,
}

/// Checks the autodiff gradient of the scalar `f(inputs)` with respect to every input
/// (cpu f64 tensors) against central differences. Fails with a message naming the
/// input, its shape, the element and both values.
pub fn gradcheck<F>(f: F, inputs: &[Tensor], cfg: &GradcheckConfig) -> Result<GradcheckReport>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    for (i, t) in inputs.iter().enumerate() {
        if t.dtype() != DType::F64 || t.cpu_f64().is_none() {
            return Err(EngineError::Invalid(format!(
                "gradcheck: input {i} is {}, expected a cpu f64 tensor",
                t.describe()
            )));
        }
    }
    let vars: Vec<Tensor> = inputs.iter().map(|t| t.requires_grad()).collect();
    let loss = f(&vars)?;
    let grads = loss.backward()?;
    let mut report = GradcheckReport::default();
    for (i, var) in vars.iter().enumerate() {
        let analytic = match grads.get(var) {
            Some(g) => g.to_vec_f64()?,
            None => vec![0.0; var.numel()],
        };
        let base = inputs[i].to_vec_f64()?;
        let n = base.len();
        let stride = n.div_ceil(cfg.max_elements_per_input.max(1)).max(1);
        for j in (0..n).step_by(stride) {
            let eval = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += delta;
                let mut args: Vec<Tensor> = inputs.to_vec();
                args[i] = Tensor::from_f64(&v, inputs[i].shape())?;
                no_grad(|| f(&args))?.item()
            };
            let numeric = (eval(cfg.eps)? - eval(-cfg.eps)?) / (2.0 * cfg.eps);
            let a = analytic[j];
            let err = (a - numeric).abs();
            let bound = cfg.atol + cfg.rtol * a.abs().max(numeric.abs());
            // NaN errors fail too.
            if err.is_nan() || err > bound {
                return Err(EngineError::Invalid(format!(
                    "gradcheck: input {i} of shape {:?}, element {j}: autodiff {a:e}, central difference {numeric:e} (|error| {err:e})",
                    inputs[i].shape()
                )));
            }
            report.max_abs_error = report.max_abs_error.max(err);
            report.checked += 1;
        }
    }
    Ok(report)
}

/// Proptest strategies for shapes and values.
pub mod strategies {
    use crate::tensor::Tensor;
    use proptest::prelude::*;

    /// A dimension in `1..=max`, biased to awkward sizes (1, primes) by proptest's
    /// shrinking towards 1.
    pub fn dim(max: usize) -> impl Strategy<Value = usize> {
        1..=max.max(1)
    }

    /// `len` values uniform in [−2, 2], kept away from 0 by at least 1e-3 so kinks
    /// (ReLU, max) are not hit by a finite-difference step.
    pub fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(
            (0.001f64..2.0, any::<bool>()).prop_map(|(m, s)| if s { m } else { -m }),
            len,
        )
    }

    /// A cpu f64 tensor of `shape` with [`values`].
    pub fn tensor(shape: Vec<usize>) -> impl Strategy<Value = Tensor> {
        let n = shape.iter().product();
        values(n).prop_map(move |v| Tensor::from_f64(&v, &shape).expect("shape matches"))
    }

    /// A cpu f64 tensor of `shape` whose values are pairwise distinct (at least
    /// `gap` apart after sorting), so max-pooling has no ties.
    pub fn distinct_tensor(shape: Vec<usize>, gap: f64) -> impl Strategy<Value = Tensor> {
        let n: usize = shape.iter().product();
        Just(()).prop_perturb(move |_, mut rng| {
            let mut v: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) * gap).collect();
            for i in (1..n).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                v.swap(i, j);
            }
            let shift = n as f64 * gap / 2.0;
            let v: Vec<f64> = v.into_iter().map(|x| x - shift).collect();
            Tensor::from_f64(&v, &shape).expect("shape matches")
        })
    }
}
