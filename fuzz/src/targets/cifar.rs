//! CIFAR-10 binary batches: records of a label byte and 3072 pixel bytes. Mutations cut
//! a record, add bytes or whole records, and put labels out of range.

use super::{keep_valid, Case, Target, Verdict};
use crate::mutate;
use crate::rng::Rng;
use rbd_datasets::{read_cifar_batch, CIFAR_PIXELS, CIFAR_RECORD};
use std::path::Path;

/// `read_cifar_batch` on a batch of 1 to 3 records.
pub struct CifarBatch;

impl Target for CifarBatch {
    fn name(&self) -> &'static str {
        "cifar-batch"
    }

    fn about(&self) -> &'static str {
        "CIFAR-10 binary batch files (read_cifar_batch)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let records = rng.range(1, 3);
        let mut b = Vec::with_capacity(records * CIFAR_RECORD);
        for r in 0..records {
            b.push(rng.below(10) as u8);
            b.extend((0..CIFAR_PIXELS).map(|i| (i * 7 + r * 13) as u8));
        }
        let original = b.clone();
        let valid = keep_valid(rng);
        let what = if valid {
            "valid".to_string()
        } else {
            match rng.below(5) {
                0 => {
                    let r = rng.below(records);
                    let v = rng.range(10, 255) as u8;
                    b[r * CIFAR_RECORD] = v;
                    format!("label of record {r} = {v}")
                }
                1 => {
                    let keep = rng.below(b.len());
                    b.truncate(keep);
                    format!("cut to {keep} bytes")
                }
                2 => {
                    let extra = if rng.chance(1, 2) {
                        CIFAR_RECORD
                    } else {
                        rng.range(1, 100)
                    };
                    b.extend(std::iter::repeat_n(3u8, extra));
                    format!("{extra} extra bytes")
                }
                _ => mutate::bytes(rng, &mut b),
            }
        };
        let mut case = Case::one("data_batch_1.bin", b, what, valid);
        case.expect.push(("records".into(), vec![records as u8]));
        case.expect.push(("plain".into(), original));
        case
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        let records = case.expected("records").map_or(1, |r| r[0] as usize);
        let plain = case.expected("plain").unwrap_or_default();
        Verdict::of(read_cifar_batch(&dir.join(&case.named), records), |b| {
            if b.labels.len() != records || b.images.len() != records * CIFAR_PIXELS {
                return Verdict::Wrong(format!(
                    "accepted {} labels and {} pixel bytes for {records} records",
                    b.labels.len(),
                    b.images.len()
                ));
            }
            if let Some(l) = b.labels.iter().find(|&&l| l > 9) {
                return Verdict::Wrong(format!("accepted label {l}"));
            }
            let same = plain
                .chunks_exact(CIFAR_RECORD)
                .enumerate()
                .all(|(r, rec)| {
                    rec[0] == b.labels[r]
                        && rec[1..] == b.images[r * CIFAR_PIXELS..(r + 1) * CIFAR_PIXELS]
                });
            if case.valid && !same {
                return Verdict::Wrong("a valid file read back other records".into());
            }
            Verdict::Accepted
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        2 * input + (64 << 10)
    }
}
