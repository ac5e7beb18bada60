//! A run's `provenance.jsonl`: one line per start or resume (commit, device, machine,
//! where it started) and one per epoch (its training seconds), as the trainer writes
//! them, then mutated line by line or inside a line. The readers are
//! `trainer::timings` (the summaries' epoch times, an error naming the file and line)
//! and `trainer::stretches` (the commits and machines a README names, lenient); a valid
//! file reads back the epochs' times and the stretches that were written.

use super::metrics::mutate_lines;
use super::{keep_valid, Case, Target, Verdict};
use crate::rng::Rng;
use rbd::train::metrics::EpochTiming;
use rbd::train::trainer::{stretches, timings, PROVENANCE};
use std::path::Path;

/// `trainer::timings` and `trainer::stretches` on a generated `provenance.jsonl`.
pub struct ProvenanceJsonl;

impl Target for ProvenanceJsonl {
    fn name(&self) -> &'static str {
        "provenance"
    }

    fn about(&self) -> &'static str {
        "a run's provenance.jsonl (trainer::timings, trainer::stretches)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let mut text = String::new();
        // By epoch: a resume that trains epochs again writes their lines again, and the
        // last line of an epoch counts.
        let mut expect_times = std::collections::BTreeMap::new();
        let mut expect_commits = String::new();
        let mut epoch = 0u64;
        for stretch in 0..rng.range(1, 4) {
            if stretch > 0 && rng.chance(1, 3) {
                // Resumed from an earlier checkpoint than the last epoch written.
                epoch -= rng.below(epoch as usize + 1) as u64;
            }
            let commit = format!("{:07x}", rng.below(1 << 28));
            let machine = rng.chance(2, 3).then(|| {
                rng.pick(&[
                    "AMD EPYC, 2 cores, avx512",
                    "Intel(R) Xeon(R) Processor, 2 cores",
                ])
                .to_string()
            });
            let mut line = serde_json::json!({
                "commit": commit,
                "device": "cpu: native Rust (2 threads, matrixmultiply GEMM)",
                "from_epoch": epoch,
                "from_step": epoch * 1250,
            });
            if let Some(m) = &machine {
                line["machine"] = serde_json::Value::String(m.clone());
            }
            text.push_str(&line.to_string());
            text.push('\n');
            expect_commits.push_str(&format!("{commit} {machine:?}\n"));
            for _ in 0..rng.below(4) {
                epoch += 1;
                let t = EpochTiming {
                    epoch,
                    seconds: rng.f64().abs() * 100.0,
                    images_per_second: rng.f64().abs() * 1000.0,
                    comm_seconds: rng.chance(1, 5).then(|| rng.f64().abs()),
                    compute_seconds: None,
                };
                let line = serde_json::to_string(&t).expect("a timing serialises");
                text.push_str(&line);
                text.push('\n');
                expect_times.insert(epoch, line + "\n");
            }
        }
        let expect_times: String = expect_times.into_values().collect();
        if keep_valid(rng) {
            let mut case = Case::one(PROVENANCE, text.into_bytes(), "valid".into(), true);
            case.expect
                .push(("times".into(), expect_times.into_bytes()));
            case.expect
                .push(("commits".into(), expect_commits.into_bytes()));
            return case;
        }
        let (bytes, what) = mutate_lines(rng, &text);
        Case::one(PROVENANCE, bytes, what, false)
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        // Lenient: never an error, whatever the file holds.
        let found: String = stretches(dir)
            .iter()
            .map(|s| format!("{} {:?}\n", s.commit, s.machine))
            .collect();
        Verdict::of(timings(dir), |t| {
            let times: String = t
                .values()
                .map(|t| serde_json::to_string(t).expect("a timing serialises") + "\n")
                .collect();
            match (case.expected("times"), case.expected("commits")) {
                (Some(want), _) if want != times.as_bytes() => {
                    Verdict::Wrong("a valid file read back other epoch times".into())
                }
                (_, Some(want)) if want != found.as_bytes() => {
                    Verdict::Wrong("a valid file read back other stretches".into())
                }
                _ => Verdict::Accepted,
            }
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // The text and its parsed lines (a few hundred bytes for lines of ~20).
        32 * input + (64 << 10)
    }
}
