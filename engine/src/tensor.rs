//! Tensors: a shape, immutable storage on one backend, and (when recorded for
//! autodiff) the op that made them.

use crate::autodiff::{self, GradFn};
use crate::device::Device;
use crate::error::{EngineError, Result};
use rbd_kernels::{GpuBuffer, GpuContext, Real};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float (both backends).
    F32,
    /// 64-bit float (cpu backend; gradient checking).
    F64,
    /// 16-bit float storage on wgpu adapters with SHADER_F16 (matmul only, computed
    /// in f32; not differentiated).
    F16,
}

/// Where the values are. Tensors never change their values after creation; views
/// share storage (cpu only: a wgpu view is copied out when it is made).
#[derive(Clone)]
pub(crate) enum Storage {
    F32(Arc<Vec<f32>>, usize),
    F64(Arc<Vec<f64>>, usize),
    Gpu(Arc<GpuContext>, Arc<GpuBuffer>),
    GpuF16(Arc<GpuContext>, Arc<GpuBuffer>),
}

/// Identifies a tensor node for autodiff.
pub type TensorId = usize;

fn next_id() -> TensorId {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) shape: Vec<usize>,
    pub(crate) storage: Storage,
    pub(crate) grad_fn: Option<GradFn>,
    pub(crate) requires_grad: bool,
}

/// An n-dimensional array on a [`Device`]. Cloning is cheap (shared storage).
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

/// The cpu element types, and how to wrap a vector of them as storage.
pub trait CpuElement: Real {
    /// Wraps `v` as cpu storage.
    fn wrap(v: Vec<Self>) -> CpuStorage;
}

/// Opaque storage handle produced by [`CpuElement::wrap`].
pub struct CpuStorage(pub(crate) Storage);

impl CpuElement for f32 {
    fn wrap(v: Vec<f32>) -> CpuStorage {
        CpuStorage(Storage::F32(Arc::new(v), 0))
    }
}
impl CpuElement for f64 {
    fn wrap(v: Vec<f64>) -> CpuStorage {
        CpuStorage(Storage::F64(Arc::new(v), 0))
    }
}

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    pub(crate) fn from_storage(shape: Vec<usize>, storage: Storage) -> Tensor {
        Tensor(Arc::new(Inner {
            id: next_id(),
            shape,
            storage,
            grad_fn: None,
            requires_grad: false,
        }))
    }

    /// A cpu tensor from host values (f32 or f64).
    pub fn from_cpu<T: CpuElement>(values: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        if values.len() != numel(shape) {
            return Err(EngineError::Shape {
                op: "from_cpu",
                msg: format!("{} values for shape {shape:?}", values.len()),
            });
        }
        Ok(Tensor::from_storage(shape.to_vec(), T::wrap(values).0))
    }

    /// An f32 tensor on `device` from host values.
    pub fn from_f32(device: &Device, values: &[f32], shape: &[usize]) -> Result<Tensor> {
        if values.len() != numel(shape) {
            return Err(EngineError::Shape {
                op: "from_f32",
                msg: format!("{} values for shape {shape:?}", values.len()),
            });
        }
        match device {
            Device::Cpu => Tensor::from_cpu(values.to_vec(), shape),
            Device::Wgpu(ctx) => {
                let buf = ctx.upload(bytemuck::cast_slice(values))?;
                Ok(Tensor::from_storage(
                    shape.to_vec(),
                    Storage::Gpu(ctx.clone(), Arc::new(buf)),
                ))
            }
        }
    }

    /// An f64 tensor on the cpu backend.
    pub fn from_f64(values: &[f64], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_cpu(values.to_vec(), shape)
    }

    /// Zeros of `dtype` on `device` (wgpu supports f32 only).
    pub fn zeros(device: &Device, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let n = numel(shape);
        match (device, dtype) {
            (Device::Cpu, DType::F32) => Tensor::from_cpu(vec![0f32; n], shape),
            (Device::Cpu, DType::F64) => Tensor::from_cpu(vec![0f64; n], shape),
            (Device::Wgpu(ctx), DType::F32) => {
                let buf = ctx.zeros(n as u64 * 4)?;
                Ok(Tensor::from_storage(
                    shape.to_vec(),
                    Storage::Gpu(ctx.clone(), Arc::new(buf)),
                ))
            }
            (_, dtype) => Err(EngineError::Unsupported(format!(
                "zeros of {dtype:?} on {}: f64 exists on the cpu backend only, f16 comes from to_f16()",
                device.describe()
            ))),
        }
    }

    /// A tensor filled with `value`, of the same device and dtype as `self`.
    pub fn full_like(&self, shape: &[usize], value: f64) -> Result<Tensor> {
        let n = numel(shape);
        match &self.0.storage {
            Storage::F32(..) => Tensor::from_cpu(vec![value as f32; n], shape),
            Storage::F64(..) => Tensor::from_cpu(vec![value; n], shape),
            Storage::Gpu(ctx, _) | Storage::GpuF16(ctx, _) => {
                Tensor::from_f32(&Device::Wgpu(ctx.clone()), &vec![value as f32; n], shape)
            }
        }
    }

    /// Wraps a device buffer holding `numel(shape)` f32 values.
    pub fn from_gpu(ctx: &Arc<GpuContext>, buf: GpuBuffer, shape: &[usize]) -> Result<Tensor> {
        if (buf.bytes() as usize) < numel(shape) * 4 {
            return Err(EngineError::Shape {
                op: "from_gpu",
                msg: format!("buffer of {} bytes for shape {shape:?}", buf.bytes()),
            });
        }
        Ok(Tensor::from_storage(
            shape.to_vec(),
            Storage::Gpu(ctx.clone(), Arc::new(buf)),
        ))
    }

    /// The autodiff node id.
    pub fn id(&self) -> TensorId {
        self.0.id
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match &self.0.storage {
            Storage::F64(..) => DType::F64,
            Storage::GpuF16(..) => DType::F16,
            _ => DType::F32,
        }
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> Device {
        match &self.0.storage {
            Storage::Gpu(ctx, _) | Storage::GpuF16(ctx, _) => Device::Wgpu(ctx.clone()),
            _ => Device::Cpu,
        }
    }

    /// `cpu f32[2, 3]`-style description for error messages.
    pub fn describe(&self) -> String {
        let place = match &self.0.storage {
            Storage::F32(..) => "cpu f32",
            Storage::F64(..) => "cpu f64",
            Storage::Gpu(..) => "wgpu f32",
            Storage::GpuF16(..) => "wgpu f16",
        };
        format!("{place}{:?}", self.0.shape)
    }

    /// The values as f32 (reads back from the device; converts f64).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let n = self.numel();
        Ok(match &self.0.storage {
            Storage::F32(v, off) => v[*off..*off + n].to_vec(),
            Storage::F64(v, off) => v[*off..*off + n].iter().map(|&x| x as f32).collect(),
            Storage::Gpu(ctx, buf) => ctx.read::<f32>(buf, n)?,
            Storage::GpuF16(ctx, buf) => {
                let bits: Vec<u8> = ctx.read_bytes(buf, n as u64 * 2)?;
                bits.chunks_exact(2)
                    .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                    .collect()
            }
        })
    }

    /// An f16-storage copy of a wgpu f32 tensor (needs SHADER_F16). Only `matmul`
    /// takes f16 operands (accumulating in f32); it is not differentiated.
    pub fn to_f16(&self) -> Result<Tensor> {
        match &self.0.storage {
            Storage::Gpu(ctx, buf) => {
                let out = rbd_kernels::matmul::cast_f32_to_f16_gpu(ctx, buf, self.numel())?;
                Ok(Tensor::from_storage(
                    self.0.shape.clone(),
                    Storage::GpuF16(ctx.clone(), Arc::new(out)),
                ))
            }
            Storage::GpuF16(..) => Ok(self.detach()),
            _ => Err(EngineError::Unsupported(format!(
                "to_f16: f16 storage exists on wgpu adapters only, not for {}",
                self.describe()
            ))),
        }
    }

    /// An f16 wgpu tensor from host `half::f16` values.
    pub fn from_f16(device: &Device, values: &[half::f16], shape: &[usize]) -> Result<Tensor> {
        let Device::Wgpu(ctx) = device else {
            return Err(EngineError::Unsupported(
                "from_f16: f16 storage exists on wgpu adapters only".into(),
            ));
        };
        if !ctx.has_f16() {
            return Err(EngineError::Unsupported(format!(
                "{} lacks SHADER_F16",
                ctx.describe()
            )));
        }
        if values.len() != numel(shape) {
            return Err(EngineError::Shape {
                op: "from_f16",
                msg: format!("{} values for shape {shape:?}", values.len()),
            });
        }
        let buf = ctx.upload(bytemuck::cast_slice(values))?;
        Ok(Tensor::from_storage(
            shape.to_vec(),
            Storage::GpuF16(ctx.clone(), Arc::new(buf)),
        ))
    }

    /// The values as f64.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        let n = self.numel();
        Ok(match &self.0.storage {
            Storage::F64(v, off) => v[*off..*off + n].to_vec(),
            _ => self.to_vec_f32()?.into_iter().map(f64::from).collect(),
        })
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(EngineError::Shape {
                op: "item",
                msg: format!("tensor of shape {:?} is not a scalar", self.shape()),
            });
        }
        Ok(self.to_vec_f64()?[0])
    }

    /// Copies to `device` as f32 (an f64 cpu tensor is rounded).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        Tensor::from_f32(device, &self.to_vec_f32()?, self.shape())
    }

    /// Converts a cpu tensor to `dtype` (the values, not the graph).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        match (self.device(), dtype) {
            (Device::Cpu, DType::F32) => Tensor::from_cpu(self.to_vec_f32()?, self.shape()),
            (Device::Cpu, DType::F64) => Tensor::from_cpu(self.to_vec_f64()?, self.shape()),
            (Device::Wgpu(d), DType::F32) => match self.dtype() {
                DType::F16 => Tensor::from_f32(&Device::Wgpu(d), &self.to_vec_f32()?, self.shape()),
                _ => Ok(self.detach()),
            },
            (Device::Wgpu(_), DType::F16) => self.to_f16(),
            (Device::Wgpu(_), DType::F64) => Err(EngineError::Unsupported(
                "f64 tensors exist on the cpu backend only".into(),
            )),
            (Device::Cpu, DType::F16) => Err(EngineError::Unsupported(
                "f16 storage exists on wgpu adapters only".into(),
            )),
        }
    }

    /// The same values as a new leaf that records gradients.
    pub fn requires_grad(&self) -> Tensor {
        Tensor(Arc::new(Inner {
            id: next_id(),
            shape: self.0.shape.clone(),
            storage: self.0.storage.clone(),
            grad_fn: None,
            requires_grad: true,
        }))
    }

    /// The same values, cut from the graph.
    pub fn detach(&self) -> Tensor {
        Tensor::from_storage(self.0.shape.clone(), self.0.storage.clone())
    }

    /// Whether gradients flow to or through this tensor.
    pub fn tracks_grad(&self) -> bool {
        self.0.requires_grad || self.0.grad_fn.is_some()
    }

    /// The device buffer of a wgpu tensor.
    pub fn gpu_buffer(&self) -> Option<(&Arc<GpuContext>, &Arc<GpuBuffer>)> {
        match &self.0.storage {
            Storage::Gpu(ctx, buf) => Some((ctx, buf)),
            _ => None,
        }
    }

    /// The device buffer of a wgpu f16 tensor.
    pub(crate) fn gpu_f16(&self) -> Option<(&Arc<GpuContext>, &Arc<GpuBuffer>)> {
        match &self.0.storage {
            Storage::GpuF16(ctx, buf) => Some((ctx, buf)),
            _ => None,
        }
    }

    /// The host values of a cpu f32 tensor, without copying.
    pub fn cpu_f32(&self) -> Option<&[f32]> {
        match &self.0.storage {
            Storage::F32(v, off) => Some(&v[*off..*off + self.numel()]),
            _ => None,
        }
    }

    /// The host values of a cpu f64 tensor, without copying.
    pub fn cpu_f64(&self) -> Option<&[f64]> {
        match &self.0.storage {
            Storage::F64(v, off) => Some(&v[*off..*off + self.numel()]),
            _ => None,
        }
    }

    /// Records `self` as the output of an op with `parents` and a backward rule, if
    /// grad mode is on and any parent tracks gradients.
    pub(crate) fn record(
        self,
        name: &'static str,
        parents: &[&Tensor],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        if !autodiff::grad_enabled() || !parents.iter().any(|p| p.tracks_grad()) {
            return self;
        }
        let inner = Arc::try_unwrap(self.0).unwrap_or_else(|arc| Inner {
            id: next_id(),
            shape: arc.shape.clone(),
            storage: arc.storage.clone(),
            grad_fn: None,
            requires_grad: false,
        });
        Tensor(Arc::new(Inner {
            grad_fn: Some(GradFn {
                name,
                parents: parents.iter().map(|&p| p.clone()).collect(),
                backward: Box::new(backward),
            }),
            ..inner
        }))
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor(#{} {})", self.0.id, self.describe())
    }
}

/// The operands of an op, resolved to one backend.
pub(crate) enum Operands<'a> {
    F32(Vec<&'a [f32]>),
    F64(Vec<&'a [f64]>),
    Gpu(Arc<GpuContext>, Vec<Arc<GpuBuffer>>),
}

/// Resolves `inputs` to one backend and dtype, or says which op got mixed operands.
pub(crate) fn operands<'a>(op: &'static str, inputs: &[&'a Tensor]) -> Result<Operands<'a>> {
    let first = inputs[0];
    if let Some(t) = inputs
        .iter()
        .find(|t| matches!(t.0.storage, Storage::GpuF16(..)))
    {
        return Err(EngineError::Unsupported(format!(
            "{op}: f16 storage ({}) is taken by matmul only; convert with to_dtype(DType::F32)",
            t.describe()
        )));
    }
    for t in &inputs[1..] {
        let same = match (&first.0.storage, &t.0.storage) {
            (Storage::F32(..), Storage::F32(..)) | (Storage::F64(..), Storage::F64(..)) => true,
            (Storage::Gpu(a, _), Storage::Gpu(b, _)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if !same {
            return Err(EngineError::Mismatch {
                op,
                a: first.describe(),
                b: t.describe(),
            });
        }
    }
    Ok(match &first.0.storage {
        Storage::F32(..) => Operands::F32(inputs.iter().map(|t| t.cpu_f32().unwrap()).collect()),
        Storage::F64(..) => Operands::F64(inputs.iter().map(|t| t.cpu_f64().unwrap()).collect()),
        Storage::GpuF16(..) => unreachable!("refused above"),
        Storage::Gpu(ctx, _) => Operands::Gpu(
            ctx.clone(),
            inputs
                .iter()
                .map(|t| t.gpu_buffer().unwrap().1.clone())
                .collect(),
        ),
    })
}

/// Builds a cpu tensor from a generic result.
pub(crate) fn cpu_tensor<T: CpuElement>(values: Vec<T>, shape: &[usize]) -> Tensor {
    Tensor::from_storage(shape.to_vec(), T::wrap(values).0)
}

/// Builds a wgpu tensor.
pub(crate) fn gpu_tensor(ctx: &Arc<GpuContext>, buf: GpuBuffer, shape: &[usize]) -> Tensor {
    Tensor::from_storage(shape.to_vec(), Storage::Gpu(ctx.clone(), Arc::new(buf)))
}
