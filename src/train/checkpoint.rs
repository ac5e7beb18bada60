//! Checkpoints: one safetensors file holding θ (one tensor per parameter, named and
//! shaped as in the model's layout), the model's non-trainable state, the optimiser's
//! state (`optim.*`), and in the header metadata the trainer's position (`rbd`), the
//! run id (`rbd.run_id`, a hash of the configuration) and a SHA-256 of the tensors and
//! the position (`rbd.sha256`), both checked on load. Written atomically, with the
//! metadata in key order, so identical runs write identical bytes. A checkpoint holding
//! a non-finite value is never written and is refused on load.

use super::oracle::EpochSums;
use super::run_dir::write_atomic;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
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
    /// Training seconds of the epoch so far (0 at an epoch's start: only a checkpoint
    /// written inside an epoch carries the clock).
    #[serde(with = "crate::nonfinite::float")]
    pub epoch_seconds: f64,
    /// Correlation samples of the epoch so far (whole vector, then per tensor).
    #[serde(with = "crate::nonfinite::rows")]
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

/// The first non-finite value of `tensors`, as `name[index] = value`.
pub fn first_non_finite(tensors: &HostTensors) -> Option<String> {
    tensors.iter().find_map(|(name, _, values)| {
        let i = values.iter().position(|v| !v.is_finite())?;
        Some(format!("{name}[{i}] = {}", values[i]))
    })
}

/// Writes `tensors` and `position` for run `run_id` to `path` atomically.
pub fn save(path: &Path, tensors: &HostTensors, position: &Position, run_id: &str) -> Result<()> {
    if let Some(at) = first_non_finite(tensors) {
        bail!(
            "{}: not written: the parameter {at} is not finite",
            path.display()
        );
    }
    write_atomic(path, &to_bytes(tensors, position, run_id)?)
}

/// The bytes of the checkpoint file [`save`] writes.
pub fn to_bytes(tensors: &HostTensors, position: &Position, run_id: &str) -> Result<Vec<u8>> {
    let position_json = serde_json::to_string(position)?;
    let meta = BTreeMap::from([
        ("rbd.sha256", checksum(tensors, &position_json)),
        ("rbd.run_id", run_id.to_string()),
        ("rbd", position_json),
    ]);
    serialize(tensors, &meta)
}

/// The safetensors bytes of `tensors` with `meta` as the header's `__metadata__`, its
/// keys in order. The crate writes its metadata from a `HashMap`, in an order that
/// changes from run to run, so it serialises the tensors alone and the metadata is put
/// in front of them here; the tensors' entries and data are the crate's own.
fn serialize(tensors: &HostTensors, meta: &BTreeMap<&str, String>) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), bytemuck::cast_slice(v))?,
            ))
        })
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let plain = safetensors::serialize(views, None)?;
    let n = u64::from_le_bytes(plain[..8].try_into().expect("8 bytes")) as usize;
    let entries = std::str::from_utf8(&plain[8..8 + n])?.trim_end();
    let entries = entries
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .context("safetensors wrote a header that is not a JSON object")?;
    let mut header = format!("{{\"__metadata__\":{}", serde_json::to_string(meta)?);
    if !entries.is_empty() {
        header.push(',');
        header.push_str(entries);
    }
    header.push('}');
    // The format's alignment of the data: the header padded with spaces to 8 bytes.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + plain.len() - 8 - n);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&plain[8 + n..]);
    Ok(out)
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
    if let Some(at) = first_non_finite(&tensors) {
        bail!(
            "{}: the parameter {at} is not finite: the run diverged or the file was altered; it cannot be resumed",
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

    #[test]
    fn identical_checkpoints_are_identical_bytes_and_non_finite_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("rbd-ck-bytes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tensors: HostTensors = vec![
            ("w".into(), vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            ("b".into(), vec![3], vec![0.5, -0.5, 0.25]),
        ];
        let pos = Position {
            step: 3,
            ..Position::default()
        };
        // The crate's metadata map is a HashMap, randomly seeded per map: many writes
        // give every order it would produce.
        let first = {
            save(&dir.join("a.safetensors"), &tensors, &pos, "id").unwrap();
            std::fs::read(dir.join("a.safetensors")).unwrap()
        };
        for _ in 0..20 {
            save(&dir.join("a.safetensors"), &tensors, &pos, "id").unwrap();
            assert_eq!(std::fs::read(dir.join("a.safetensors")).unwrap(), first);
        }
        // Readable as safetensors, the metadata first and in key order.
        let st = SafeTensors::deserialize(&first).unwrap();
        assert_eq!(st.tensor("b").unwrap().shape(), &[3]);
        let n = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&first[8..8 + n]).unwrap();
        assert!(
            header.starts_with("{\"__metadata__\":{\"rbd\":"),
            "{header}"
        );
        let at = |k: &str| header.find(k).unwrap();
        assert!(at("\"rbd\"") < at("rbd.run_id") && at("rbd.run_id") < at("rbd.sha256"));
        assert_eq!(load(&dir.join("a.safetensors")).unwrap().position, pos);

        let mut nan = tensors.clone();
        nan[1].2[2] = f32::NAN;
        let e = save(&dir.join("n.safetensors"), &nan, &pos, "id")
            .unwrap_err()
            .to_string();
        assert!(e.contains("b[2] = NaN"), "{e}");
        assert!(!dir.join("n.safetensors").exists());
        // A NaN written by hand with its checksum recomputed is still refused.
        let position_json = serde_json::to_string(&pos).unwrap();
        let meta = BTreeMap::from([
            ("rbd.sha256", checksum(&nan, &position_json)),
            ("rbd.run_id", "id".to_string()),
            ("rbd", position_json),
        ]);
        std::fs::write(dir.join("n.safetensors"), serialize(&nan, &meta).unwrap()).unwrap();
        let e = load(&dir.join("n.safetensors")).err().unwrap().to_string();
        assert!(
            e.contains("n.safetensors") && e.contains("b[2] = NaN"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
