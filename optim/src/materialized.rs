//! RBD with a materialised basis Φ (d × D), for comparison with the fused operation
//! only: Φ is generated, c = Φ·g and θ ← θ − lr·Φᵀc are two matmuls. Refuses cleanly
//! when Φ would not fit (the device's storage-binding limit, or a host-memory cap).

use crate::config::ConfigError;
use crate::directions::DirectionsConfig;
use crate::{Compartments, Optimizer, Oracle, StepInfo, Target};
use rbd_engine::random_bases::{generate, rbd_scale, Bases, BasisFamily, Compartment, Stream};
use rbd_engine::{EngineError, Result, Tensor};

/// Host memory the cpu variant may use for Φ.
pub const CPU_BASIS_LIMIT_BYTES: u64 = 8 << 30;

/// RBD with Φ stored (one compartment).
pub struct MaterializedRbd {
    /// Learning rate.
    pub lr: f64,
    /// Direction stream (the same directions as the fused RBD).
    pub stream: Stream,
    /// Number of directions.
    pub dims: usize,
    /// Which random bases Φ holds.
    pub family: BasisFamily,
}

impl MaterializedRbd {
    /// Materialised RBD at rate `lr` (it takes the direction settings of RBD).
    pub fn build(lr: f64, directions: &DirectionsConfig, target: &Target) -> Result<Self> {
        let num_params = target.num_params();
        check_fits(&target.theta.device(), directions.dim, num_params)?;
        Ok(MaterializedRbd {
            lr,
            stream: directions.stream(target.seed),
            dims: directions.dim,
            family: directions.family(&Compartment::whole(num_params, directions.dim)),
        })
    }
}

/// Checks a configuration before anything is built: one compartment, and Φ within the
/// host limit (a device's own limit is checked when it is opened).
pub fn check_config(directions: &DirectionsConfig, num_params: usize) -> Result<(), ConfigError> {
    if directions.compartments != Compartments::Even(1) {
        return Err(ConfigError::new(
            "compartments",
            "rbd-materialized supports one compartment only",
        ));
    }
    let bytes = directions.dim as u128 * num_params as u128 * 4;
    if bytes > CPU_BASIS_LIMIT_BYTES as u128 {
        return Err(ConfigError::new(
            "dim",
            format!(
                "rbd-materialized would store {} × {num_params} floats ({:.1} GiB, over the {} GiB limit); use rbd, which never stores the basis",
                directions.dim,
                bytes as f64 / (1u64 << 30) as f64,
                CPU_BASIS_LIMIT_BYTES >> 30
            ),
        ));
    }
    Ok(())
}

/// Bytes Φ needs, or an error naming the limit it exceeds.
pub fn check_fits(device: &rbd_engine::Device, dims: usize, num_params: usize) -> Result<u64> {
    let bytes = dims as u64 * num_params as u64 * 4;
    let limit = match device {
        rbd_engine::Device::Wgpu(ctx) => ctx.max_binding_bytes(),
        rbd_engine::Device::Cpu => CPU_BASIS_LIMIT_BYTES,
    };
    if bytes > limit {
        return Err(EngineError::Invalid(format!(
            "the materialised basis needs d × D × 4 = {dims} × {num_params} × 4 = {bytes} bytes, over the limit of {limit} bytes on {}; use the fused rbd optimizer, which never stores the basis",
            device.describe()
        )));
    }
    Ok(bytes)
}

impl Optimizer for MaterializedRbd {
    fn step(&mut self, step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let num_params = theta.numel();
        let device = theta.device();
        check_fits(&device, self.dims, num_params)?;
        let g = oracle.gradient(theta)?;
        let comp = [Compartment::new(0, 0, num_params, self.dims)];
        let bases =
            Bases::new(self.stream, step, &comp, rbd_scale(num_params)).with_family(self.family);
        let phi = generate(&device, &bases)?.reshape(&[self.dims, num_params])?;
        let c = phi.matmul(&g.reshape(&[num_params, 1])?)?;
        let update = phi.matmul_t(&c, true, false)?.reshape(&[num_params])?;
        Ok(StepInfo {
            theta: update.axpy(-self.lr, theta)?,
            correlation: None,
        })
    }
}
