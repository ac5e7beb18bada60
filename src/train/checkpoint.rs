//! Checkpoints: one safetensors file holding θ (one tensor per parameter, named and
//! shaped as in the model's layout), the model's non-trainable state, the optimiser's
//! state (`optim.*`), and the trainer's position and counters as JSON in the header
//! metadata under `rbd`. Written atomically: temporary file, fsync, rename.

use super::oracle::EpochSums;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Where the trainer stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// Optimiser steps taken.
    pub step: u64,
    /// Current epoch.
    pub epoch: u64,
    /// Next batch index within the epoch.
    pub batch: usize,
    /// Running sums of the epoch so far.
    pub sums: EpochSums,
    /// Training seconds of the epoch so far.
    pub epoch_seconds: f64,
    /// Correlation samples of the epoch so far (whole vector, then per tensor).
    pub correlations: Vec<Vec<f64>>,
    /// Metric rows written (completed epochs).
    pub metric_rows: usize,
}

/// Named f32 host tensors.
pub type HostTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Writes `tensors` and `position` to `path` atomically.
pub fn save(path: &Path, tensors: &HostTensors, position: &Position) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), bytemuck::cast_slice(v).to_vec(), s.clone()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, b, s)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let mut meta = HashMap::new();
    meta.insert("rbd".to_string(), serde_json::to_string(position)?);
    let data = safetensors::serialize(views, Some(meta))?;
    write_atomic(path, &data)
}

/// Writes `data` to `path` through a temporary file, fsync and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads a checkpoint back.
pub fn load(path: &Path) -> Result<(HostTensors, Position)> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (_, meta) = SafeTensors::read_metadata(&data)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let Some(json) = meta.metadata().as_ref().and_then(|m| m.get("rbd")) else {
        bail!(
            "{}: no 'rbd' metadata: not an rbd checkpoint",
            path.display()
        );
    };
    let position: Position = serde_json::from_str(json)
        .with_context(|| format!("{}: bad 'rbd' metadata", path.display()))?;
    let st = SafeTensors::deserialize(&data)?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!(
                "{}: tensor {name} is {:?}, expected F32",
                path.display(),
                view.dtype()
            );
        }
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
        tensors.push((name, view.shape().to_vec(), values));
    }
    Ok((tensors, position))
}

/// Finds tensor `name`.
pub fn take<'a>(
    tensors: &'a HostTensors,
    name: &str,
    path: &Path,
) -> Result<&'a (String, Vec<usize>, Vec<f32>)> {
    tensors
        .iter()
        .find(|(n, _, _)| n == name)
        .with_context(|| format!("{}: tensor '{name}' missing", path.display()))
}
