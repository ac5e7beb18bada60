//! Checkpoints: safetensors with rbd's metadata (`rbd` position JSON, `rbd.run_id`,
//! `rbd.sha256`). Mutations edit the 8-byte header length, the header JSON (dtypes,
//! shapes, offsets, duplicated or missing keys, non-finite numbers), the position JSON
//! inside it (and then, half the time, recompute the checksum so the mutation reaches
//! the position's parser), or the tensor bytes. The oracle: a checkpoint accepted
//! without a recomputed checksum reads back the tensors and position that were saved.

use super::{keep_valid, Case, Target, Verdict};
use crate::json::Json;
use crate::mutate;
use crate::rng::Rng;
use rbd::train::checkpoint::{self, HostTensors, Position};
use rbd::train::oracle::EpochSums;
use std::path::Path;

/// `checkpoint::load` on a generated checkpoint.
pub struct Checkpoint;

const NAMES: [&str; 6] = [
    "fc1.weight",
    "fc1.bias",
    "conv2.kernel",
    "optim.momentum.fc1.weight",
    "bn.running_mean",
    "x",
];

fn tensors(rng: &mut Rng) -> HostTensors {
    let mut names = NAMES.to_vec();
    let n = rng.range(1, 4);
    (0..n)
        .map(|_| {
            let name = names.remove(rng.below(names.len())).to_string();
            let shape: Vec<usize> = (0..rng.range(0, 3)).map(|_| rng.range(1, 5)).collect();
            let len = shape.iter().product();
            let values = (0..len).map(|_| rng.f64() as f32).collect();
            (name, shape, values)
        })
        .collect()
}

fn position(rng: &mut Rng) -> Position {
    let sums = |rng: &mut Rng| EpochSums {
        loss_sum: rng.f64().abs(),
        correct: rng.below(1000) as u64,
        seen: rng.below(2000) as u64,
    };
    Position {
        step: rng.below(100_000) as u64,
        epoch: rng.below(100) as u64,
        batch: rng.below(2000),
        sums: sums(rng),
        window: sums(rng),
        epoch_seconds: rng.f64().abs(),
        correlations: (0..rng.below(3))
            .map(|_| (0..rng.range(1, 4)).map(|_| rng.f64()).collect())
            .collect(),
        metric_rows: rng.below(100),
        step_rows: rng.below(100),
    }
}

/// The header length, the header JSON and the tensor bytes of a safetensors file.
fn split(file: &[u8]) -> (Json, Vec<u8>) {
    let n = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
    let header = std::str::from_utf8(&file[8..8 + n]).expect("UTF-8 header");
    (Json::parse(header), file[8 + n..].to_vec())
}

fn join(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The metadata value `key` of a header.
fn meta_mut<'a>(header: &'a mut Json, key: &str) -> Option<&'a mut String> {
    let Json::Obj(top) = header else { return None };
    let (_, Json::Obj(meta)) = top.iter_mut().find(|(k, _)| k == "__metadata__")? else {
        return None;
    };
    match meta.iter_mut().find(|(k, _)| k == key)? {
        (_, Json::Str(s)) => Some(s),
        _ => None,
    }
}

impl Target for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn about(&self) -> &'static str {
        "checkpoints: safetensors with rbd's position, run id and checksum (checkpoint::load)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let (t, p) = (tensors(rng), position(rng));
        let run_id = format!("{:016x}", rng.next_u64());
        let good = checkpoint::to_bytes(&t, &p, &run_id).expect("a checkpoint serialises");
        let valid = keep_valid(rng);
        let mut file = good.clone();
        let mut resummed = false;
        let what = if valid {
            "valid".to_string()
        } else {
            match rng.below(20) {
                0..=4 => mutate::bytes(rng, &mut file),
                5..=7 => {
                    let old = u64::from_le_bytes(file[..8].try_into().expect("8 bytes"));
                    let v = match rng.below(3) {
                        0 => old.wrapping_add(rng.range(1, 16) as u64),
                        1 => old.wrapping_sub(rng.range(1, 16) as u64),
                        _ => mutate::interesting(rng),
                    };
                    mutate::write_int(&mut file, 0, 8, v, false);
                    format!("header length = {v}")
                }
                8..=12 => {
                    let (mut header, data) = split(&good);
                    let what = header.mutate(rng);
                    file = join(&header.write(false), &data);
                    format!("header: {what}")
                }
                13..=17 => {
                    let (mut header, data) = split(&good);
                    let pos = meta_mut(&mut header, "rbd").expect("rbd metadata").clone();
                    let mut tree = Json::parse(&pos);
                    let mut what = format!("position: {}", tree.mutate(rng));
                    let new_pos = tree.write(false);
                    *meta_mut(&mut header, "rbd").expect("rbd metadata") = new_pos.clone();
                    if rng.chance(1, 2) {
                        *meta_mut(&mut header, "rbd.sha256").expect("sum") =
                            checkpoint::checksum(&t, &new_pos);
                        resummed = true;
                        what += " (checksum recomputed)";
                    }
                    file = join(&header.write(false), &data);
                    what
                }
                _ => {
                    // A tensor value made non-finite, the checksum recomputed: a file
                    // rbd could have written from a diverged run.
                    let mut t2 = t.clone();
                    let i = rng.below(t2.len());
                    let v = *rng.pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
                    if let Some(x) = t2[i].2.first_mut() {
                        *x = v;
                    }
                    file = checkpoint::to_bytes(&t2, &p, &run_id).expect("serialises");
                    resummed = true;
                    format!("tensor {} holds {v} (checksum recomputed)", t2[i].0)
                }
            }
        };
        let mut case = Case::one("epoch-3.safetensors", file, what, valid);
        if !resummed {
            case.expect.push(("saved".into(), good));
        }
        case
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        Verdict::of(checkpoint::load(&dir.join(&case.named)), |got| {
            let Some(saved) = case.expected("saved") else {
                return Verdict::Accepted;
            };
            // What was saved, read from memory by the same code path.
            let scratch = dir.join("saved.safetensors");
            if std::fs::write(&scratch, saved).is_err() {
                return Verdict::Wrong("cannot write the saved copy".into());
            }
            let want = match checkpoint::load(&scratch) {
                Ok(w) => w,
                Err(e) => return Verdict::Wrong(format!("the saved file does not load: {e:#}")),
            };
            let bits = |t: &HostTensors| -> Vec<(String, Vec<usize>, Vec<u32>)> {
                let mut v: Vec<_> = t
                    .iter()
                    .map(|(n, s, x)| {
                        (
                            n.clone(),
                            s.clone(),
                            x.iter().map(|f| f.to_bits()).collect(),
                        )
                    })
                    .collect();
                v.sort();
                v
            };
            // The run id is outside the checksum; a wrong one is refused on resume,
            // where it is compared with the run's configuration.
            if bits(&got.tensors) != bits(&want.tensors) {
                Verdict::Wrong("a corrupt checkpoint was accepted with other tensors".into())
            } else if serde_json::to_string(&got.position).ok()
                != serde_json::to_string(&want.position).ok()
            {
                Verdict::Wrong("a corrupt checkpoint was accepted with another position".into())
            } else {
                Verdict::Accepted
            }
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // JSON arrays of integers (shapes, offsets) take 8 bytes per element of 2
        // characters, doubled while their vectors grow.
        32 * input + (256 << 10)
    }
}
