//! The processes a run is trained by: one ([`Team::single`]), or the K ranks of a
//! distributed run (`rbd::distributed`, feature `mpi`). The trainer asks its team to
//! shard batches, reduce metric sums, agree on stopping and compare θ; with one
//! process every call is the identity, so single-process runs are unchanged.

use super::oracle::EpochSums;
use anyhow::{bail, Result};
use rbd_datasets::Batch;
use rbd_engine::{no_grad, Device, Labels, Tensor};
use rbd_models::{Mode, Model};
use rbd_optim::exchange::{allgather_f64, allgather_u64, Metered, Single, Traffic};
use rbd_optim::{BaseSharing, Exchange};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The distributed part of a run's configuration (part of its identity: a run
/// resumes only on the same number of ranks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributedSpec {
    /// K, the number of ranks.
    pub ranks: usize,
    /// Random-bases sharing (RBD and FPD).
    pub rbd_base: BaseSharing,
}

/// Communication of an epoch, in the metric rows of distributed runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommStats {
    /// K.
    pub ranks: usize,
    /// Bytes rank 0 sent per optimiser step (see `rbd_optim::exchange::Traffic`).
    #[serde(with = "crate::nonfinite::float")]
    pub bytes_per_step: f64,
    /// Seconds of the epoch's training spent in the optimiser's collectives: only in
    /// rows written before the time moved to `provenance.jsonl`
    /// ([`super::metrics::EpochTiming`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::nonfinite::option"
    )]
    pub comm_seconds: Option<f64>,
    /// The rest of the training seconds, likewise.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::nonfinite::option"
    )]
    pub compute_seconds: Option<f64>,
}

/// The processes training one run.
#[derive(Clone)]
pub struct Team {
    /// The collectives of the trainer's bookkeeping (sums, hashes, stop flags).
    exchange: Arc<dyn Exchange>,
    /// The same, metered: handed to the optimisers.
    metered: Arc<Metered>,
    /// The hash of θ at the last [`Team::check_theta`].
    last_hash: Arc<AtomicU64>,
}

impl Team {
    /// One process.
    pub fn single() -> Team {
        Team::new(Arc::new(Single))
    }

    /// The ranks `exchange` connects.
    pub fn new(exchange: Arc<dyn Exchange>) -> Team {
        Team {
            metered: Arc::new(Metered::new(exchange.clone())),
            exchange,
            last_hash: Arc::new(AtomicU64::new(0)),
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.exchange.rank()
    }

    /// K.
    pub fn size(&self) -> usize {
        self.exchange.size()
    }

    /// Whether this process writes the run directory (rank 0 only).
    pub fn writes(&self) -> bool {
        self.rank() == 0
    }

    /// The exchange the optimisers use (metered).
    pub fn optimizer_exchange(&self) -> Arc<dyn Exchange> {
        self.metered.clone()
    }

    /// The optimisers' traffic since the last call.
    pub fn take_traffic(&self) -> Traffic {
        self.metered.take()
    }

    /// Checks that the run's configuration was made for this many ranks.
    pub fn check_ranks(&self, spec: Option<&DistributedSpec>) -> Result<()> {
        let configured = spec.map_or(1, |s| s.ranks);
        match spec {
            Some(s) if s.ranks != self.size() => bail!(
                "distributed: this run was trained on {} ranks; it must continue on {0} (mpirun -n {0} rbd train --distributed --resume ...), not {}",
                s.ranks,
                self.size()
            ),
            None if self.size() > 1 => bail!(
                "distributed: this run was trained by one process; it cannot continue on {} ranks (resume it without mpirun and --distributed)",
                self.size()
            ),
            _ => {}
        }
        debug_assert_eq!(configured, self.size());
        Ok(())
    }

    /// This rank's share of a sequence of batches: items r, r + K, r + 2K, …
    pub fn shard<I: Iterator>(&self, items: I) -> impl Iterator<Item = I::Item> {
        items.skip(self.rank()).step_by(self.size())
    }

    /// The sums of all ranks, added in rank order.
    pub fn reduce_sums(&self, s: EpochSums) -> Result<EpochSums> {
        if self.size() == 1 {
            return Ok(s);
        }
        let all = allgather_f64(
            self.exchange.as_ref(),
            &[s.loss_sum, s.correct as f64, s.seen as f64],
        )?;
        let mut out = EpochSums::default();
        for r in all.chunks_exact(3) {
            out.loss_sum += r[0];
            out.correct += r[1] as u64;
            out.seen += r[2] as u64;
        }
        Ok(out)
    }

    /// The first stop signal any rank has seen (every rank stops at the same step).
    pub fn agree_stop(&self, local: Option<i32>) -> Result<Option<i32>> {
        if self.size() == 1 {
            return Ok(local);
        }
        let code = local.map_or(0, |s| s as u64 + 1);
        let all = allgather_u64(self.exchange.as_ref(), &[code])?;
        Ok(all.into_iter().find(|&c| c != 0).map(|c| (c - 1) as i32))
    }

    /// Rank 0's `bytes` on every rank (e.g. the run directory rank 0 chose).
    pub fn from_rank0(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        if self.size() == 1 {
            return Ok(bytes.to_vec());
        }
        let ex = self.exchange.as_ref();
        let lens = allgather_u64(ex, &[bytes.len() as u64])?;
        let longest = *lens.iter().max().expect("at least one rank") as usize;
        let mut send = bytes.to_vec();
        send.resize(longest, 0);
        let mut recv = vec![0u8; longest * self.size()];
        ex.allgather_bytes(&send, &mut recv)?;
        Ok(recv[..lens[0] as usize].to_vec())
    }

    /// FNV-1a hash of θ's bits; with several ranks, an error unless every rank holds
    /// the same θ.
    pub fn check_theta(&self, theta: &Tensor, when: &str) -> Result<u64> {
        let hash = theta_hash(&theta.to_vec_f32()?);
        if self.size() > 1 {
            let all = allgather_u64(self.exchange.as_ref(), &[hash])?;
            if all.iter().any(|&h| h != hash) {
                let list: Vec<String> = all
                    .iter()
                    .enumerate()
                    .map(|(r, h)| format!("rank {r}: {h:016x}"))
                    .collect();
                bail!(
                    "distributed: the ranks hold different parameters {when} ({}); the run cannot continue",
                    list.join(", ")
                );
            }
        }
        self.last_hash.store(hash, Ordering::Relaxed);
        Ok(hash)
    }

    /// The hash of θ that every rank held at the last comparison (after the last
    /// evaluated epoch).
    pub fn last_theta_hash(&self) -> u64 {
        self.last_hash.load(Ordering::Relaxed)
    }

    /// Mean loss and accuracy over evaluation batches: each rank evaluates its share
    /// (batches r, r + K, …) and the sums are added in rank order.
    pub fn evaluate(
        &self,
        model: &dyn Model,
        device: &Device,
        theta: &Tensor,
        batches: impl Iterator<Item = Batch>,
        classes: usize,
    ) -> Result<(f64, f64)> {
        if self.size() == 1 {
            return Ok(super::oracle::evaluate(
                model, device, theta, batches, classes,
            )?);
        }
        let mine = no_grad(|| -> rbd_engine::Result<EpochSums> {
            let views = model.layout().views(theta)?;
            let mut s = EpochSums::default();
            for batch in self.shard(batches) {
                let n = batch.len();
                let x = Tensor::from_f32(device, &batch.images, &batch.shape)?;
                let labels = Labels::new(device, batch.labels, classes)?;
                let logits = model.forward(&views, &x, Mode::Eval)?;
                s.loss_sum += logits.softmax_cross_entropy(&labels)?.item()? * n as f64;
                s.correct += logits.correct_count(&labels)? as u64;
                s.seen += n as u64;
            }
            Ok(s)
        })?;
        let all = self.reduce_sums(mine)?;
        if all.seen == 0 {
            bail!("evaluation set is empty");
        }
        Ok((all.mean_loss(), all.accuracy()))
    }
}

/// FNV-1a (64-bit) over the bits of `values`, in order.
pub fn theta_hash(values: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_team_is_the_identity() {
        let t = Team::single();
        assert_eq!((t.rank(), t.size(), t.writes()), (0, 1, true));
        let s = EpochSums {
            loss_sum: 0.1 + 0.2,
            correct: 3,
            seen: 7,
        };
        assert_eq!(t.reduce_sums(s).unwrap(), s);
        assert_eq!(t.agree_stop(Some(15)).unwrap(), Some(15));
        assert_eq!(t.shard(0..5).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!(t.check_ranks(None).is_ok());
        let two = DistributedSpec {
            ranks: 2,
            rbd_base: BaseSharing::PerWorker,
        };
        let e = t.check_ranks(Some(&two)).unwrap_err().to_string();
        assert!(
            e.contains("trained on 2 ranks") && e.contains("mpirun -n 2"),
            "{e}"
        );
    }

    #[test]
    fn thread_ranks_shard_reduce_and_compare() {
        let handles: Vec<_> = rbd_optim::exchange::threads::group(3)
            .into_iter()
            .map(|ex| {
                std::thread::spawn(move || {
                    let t = Team::new(Arc::new(ex));
                    let r = t.rank();
                    let shard: Vec<usize> = t.shard(0..8).collect();
                    let sums = t
                        .reduce_sums(EpochSums {
                            loss_sum: r as f64,
                            correct: 1,
                            seen: 10,
                        })
                        .unwrap();
                    let stop = t.agree_stop((r == 2).then_some(2)).unwrap();
                    let same =
                        t.check_theta(&Tensor::from_cpu(vec![1f32, 2.0], &[2]).unwrap(), "x");
                    let theta = Tensor::from_cpu(vec![1f32, r as f32], &[2]).unwrap();
                    let differ = t.check_theta(&theta, "after epoch 1");
                    (
                        shard,
                        sums,
                        stop,
                        same.is_ok(),
                        differ.map_err(|e| e.to_string()),
                    )
                })
            })
            .collect();
        let out: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(out[0].0, vec![0, 3, 6]);
        assert_eq!(out[1].0, vec![1, 4, 7]);
        assert_eq!(out[2].0, vec![2, 5]);
        for (_, sums, stop, same, differ) in &out {
            assert_eq!(sums.loss_sum, 3.0);
            assert_eq!((sums.correct, sums.seen), (3, 30));
            assert_eq!(*stop, Some(2));
            assert!(same);
            let e = differ.as_ref().unwrap_err();
            assert!(e.contains("different parameters after epoch 1"), "{e}");
        }
    }
}
