//! Checkpoints: one safetensors file holding θ (one tensor per parameter, named and
//! shaped as in the model's layout), the model's non-trainable state, the optimiser's
//! state (`optim.*`), and in the header metadata the trainer's position (`rbd`), the
//! run id (`rbd.run_id`, a hash of the configuration) and a SHA-256 of the tensors and
//! the position (`rbd.sha256`), both checked on load. Written atomically.

use super::oracle::EpochSums;
use super::run_dir::write_atomic;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// Where the trainer stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// Optimiser steps taken.
    pub step: u64,
    /// Current epoch (0-based; equal to the epoch count once the run is done).
    pub epoch: u64,
    /// Next batch index within the epoch (with straddling NES, past the epoch's end by
    /// the last step's overflow until the epoch is evaluated; see `train::steps`).
    pub batch: usize,
    /// Running sums of the epoch so far.
    pub sums: EpochSums,
    /// Running sums since the last logged step row.
    #[serde(default)]
    pub window: EpochSums,
    /// Training seconds of the epoch so far.
    pub epoch_seconds: f64,
    /// Correlation samples of the epoch so far (whole vector, then per tensor).
    pub correlations: Vec<Vec<f64>>,
    /// Metric rows written (completed epochs).
    pub metric_rows: usize,
    /// Step rows written.
    #[serde(default)]
    pub step_rows: usize,
}

/// Named f32 host tensors.
pub type HostTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// A checkpoint as read back.
pub struct Loaded {
    /// The tensors.
    pub tensors: HostTensors,
    /// The position.
    pub position: Position,
    /// The run id it was written for.
    pub run_id: String,
}

/// SHA-256 over the tensors in name order (name, shape, little-endian data) and the
/// position's JSON text: the `rbd.sha256` metadata of a checkpoint.
pub fn checksum(tensors: &HostTensors, position_json: &str) -> String {
    let mut order: Vec<&(String, Vec<usize>, Vec<f32>)> = tensors.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, shape, values) in order {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for &s in shape {
            h.update((s as u64).to_le_bytes());
        }
        h.update(bytemuck::cast_slice::<f32, u8>(values));
    }
    h.update(position_json.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `tensors` and `position` for run `run_id` to `path` atomically.
pub fn save(path: &Path, tensors: &HostTensors, position: &Position, run_id: &str) -> Result<()> {
    write_atomic(path, &to_bytes(tensors, position, run_id)?)
}

/// The bytes of the checkpoint file [`save`] writes.
pub fn to_bytes(tensors: &HostTensors, position: &Position, run_id: &str) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), bytemuck::cast_slice(v))?,
            ))
        })
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let position_json = serde_json::to_string(position)?;
    let mut meta = HashMap::new();
    meta.insert("rbd.sha256".to_string(), checksum(tensors, &position_json));
    meta.insert("rbd.run_id".to_string(), run_id.to_string());
    meta.insert("rbd".to_string(), position_json);
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// Reads a checkpoint back, refusing one whose checksum does not match.
pub fn load(path: &Path) -> Result<Loaded> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (_, meta) = SafeTensors::read_metadata(&data)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let field = |key: &str| -> Result<String> {
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .with_context(|| {
                format!(
                    "{}: no '{key}' metadata: not an rbd checkpoint",
                    path.display()
                )
            })
    };
    let position_json = field("rbd")?;
    let stored_sum = field("rbd.sha256")?;
    let run_id = field("rbd.run_id")?;
    let position: Position = serde_json::from_str(&position_json)
        .with_context(|| format!("{}: bad 'rbd' metadata", path.display()))?;
    let st = SafeTensors::deserialize(&data)
        .with_context(|| format!("{}: corrupt tensor data", path.display()))?;
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
    if checksum(&tensors, &position_json) != stored_sum {
        bail!(
            "{}: checksum mismatch: the checkpoint is corrupt (its tensors or position changed after it was written); it cannot be resumed",
            path.display()
        );
    }
    Ok(Loaded {
        tensors,
        position,
        run_id,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_flipped_bit_is_refused() {
        let dir = std::env::temp_dir().join(format!("rbd-ck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.safetensors");
        let tensors: HostTensors = vec![
            (
                "a".into(),
                vec![2, 3],
                (0..6).map(|i| i as f32 * 0.5).collect(),
            ),
            ("b".into(), vec![4], vec![1.0, -2.0, 3.0, 4.5]),
        ];
        let pos = Position {
            step: 78,
            epoch: 2,
            batch: 14,
            ..Position::default()
        };
        save(&path, &tensors, &pos, "abc").unwrap();
        let l = load(&path).unwrap();
        assert_eq!(l.position, pos);
        assert_eq!(l.run_id, "abc");
        assert_eq!(l.tensors.len(), 2);
        let good = std::fs::read(&path).unwrap();
        // Flip one bit in the last tensor byte, then one in the position's step.
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let e = load(&path).err().unwrap().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        let needle = b"\\\"step\\\":78";
        let at = good
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("step in the header");
        let mut bad = good.clone();
        bad[at + 10] = b'0'; // 78 -> 70
        std::fs::write(&path, &bad).unwrap();
        let e = load(&path).err().unwrap().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
