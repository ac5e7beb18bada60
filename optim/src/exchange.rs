//! What the optimisers of a distributed run ask of the other processes: two byte
//! collectives ([`Exchange`]), and on top of them the typed, fixed-order reductions the
//! optimisers use. No MPI here: the MPI implementation lives in the `rbd` package
//! (feature `mpi`); [`Single`] is the one-process implementation.
//!
//! Determinism: MPI's own `MPI_Allreduce` may add in an order that depends on the
//! algorithm, the rank and the message size. [`allreduce_sum_f32`] therefore never
//! uses it: element i is always summed as `((v₀ + v₁) + v₂) + …` over ranks 0, 1, …,
//! by the rank that owns i's block, and the sums are then gathered, so every rank
//! ends with bitwise the same vector whatever K and the MPI library.

use rbd_engine::{EngineError, Result};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The collectives of a group of K processes (ranks 0..K−1). Every rank must call the
/// same collectives in the same order with the same lengths.
pub trait Exchange: Send + Sync {
    /// This process's rank.
    fn rank(&self) -> usize;
    /// K, the number of processes.
    fn size(&self) -> usize;
    /// Every rank's `send` (same length on all ranks) into `recv`, in rank order
    /// (`recv.len()` = K·`send.len()`).
    fn allgather_bytes(&self, send: &[u8], recv: &mut [u8]) -> Result<()>;
    /// Block r of `send` (`send.len()`/K bytes) goes to rank r; block w of `recv`
    /// comes from rank w (`recv.len()` = `send.len()`).
    fn alltoall_bytes(&self, send: &[u8], recv: &mut [u8]) -> Result<()>;
}

/// One process: rank 0 of 1; the collectives copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Exchange for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn allgather_bytes(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        check_len("allgather", recv.len(), send.len())?;
        recv.copy_from_slice(send);
        Ok(())
    }
    fn alltoall_bytes(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        check_len("alltoall", recv.len(), send.len())?;
        recv.copy_from_slice(send);
        Ok(())
    }
}

fn check_len(op: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(EngineError::Invalid(format!(
            "{op}: receive buffer of {got} bytes, expected {want}"
        )));
    }
    Ok(())
}

/// Every rank's `send` (same length everywhere), concatenated in rank order.
pub fn allgather_f32(ex: &dyn Exchange, send: &[f32]) -> Result<Vec<f32>> {
    let bytes: Vec<u8> = send.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut recv = vec![0u8; bytes.len() * ex.size()];
    ex.allgather_bytes(&bytes, &mut recv)?;
    Ok(recv
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

/// Every rank's `send` (same length everywhere), concatenated in rank order.
pub fn allgather_f64(ex: &dyn Exchange, send: &[f64]) -> Result<Vec<f64>> {
    let bytes: Vec<u8> = send.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut recv = vec![0u8; bytes.len() * ex.size()];
    ex.allgather_bytes(&bytes, &mut recv)?;
    Ok(recv
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

/// Every rank's `send` (same length everywhere), concatenated in rank order.
pub fn allgather_u64(ex: &dyn Exchange, send: &[u64]) -> Result<Vec<u64>> {
    let bytes: Vec<u8> = send.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut recv = vec![0u8; bytes.len() * ex.size()];
    ex.allgather_bytes(&bytes, &mut recv)?;
    Ok(recv
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

/// `buf` ← Σ over ranks of `buf`, each element summed in rank order 0, 1, …, K−1,
/// identical on every rank. A reduce-scatter (all-to-all, then the owner of each block
/// of ⌈n/K⌉ elements sums it) followed by an allgather: each rank sends 2·(K−1)/K·n
/// floats, like a ring allreduce.
pub fn allreduce_sum_f32(ex: &dyn Exchange, buf: &mut [f32]) -> Result<()> {
    let k = ex.size();
    if k == 1 {
        return Ok(());
    }
    let n = buf.len();
    let block = n.div_ceil(k);
    let mut send = vec![0u8; 4 * block * k];
    for (i, x) in buf.iter().enumerate() {
        send[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    let mut recv = vec![0u8; send.len()];
    ex.alltoall_bytes(&send, &mut recv)?;
    // recv holds block `rank` of every rank's vector, rank-major.
    let value = |w: usize, i: usize| {
        let at = 4 * (w * block + i);
        f32::from_le_bytes(recv[at..at + 4].try_into().expect("4 bytes"))
    };
    let mut mine = vec![0f32; block];
    for (i, m) in mine.iter_mut().enumerate() {
        let mut acc = value(0, i);
        for w in 1..k {
            acc += value(w, i);
        }
        *m = acc;
    }
    let all = allgather_f32(ex, &mine)?;
    buf.copy_from_slice(&all[..n]);
    Ok(())
}

/// What the collectives of a [`Metered`] exchange cost since the last
/// [`Metered::take`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Bytes this rank sent: K−1 copies of an allgather's input, and the (K−1)/K of an
    /// all-to-all's input that leaves the rank (what any algorithm must move out of it).
    pub bytes_sent: u64,
    /// Wall-clock seconds inside collectives (waiting for slower ranks included).
    pub seconds: f64,
    /// Collective calls.
    pub calls: u64,
}

/// An exchange that counts the bytes and time of its collectives.
pub struct Metered {
    inner: Arc<dyn Exchange>,
    traffic: Mutex<Traffic>,
}

impl Metered {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn Exchange>) -> Self {
        Metered {
            inner,
            traffic: Mutex::new(Traffic::default()),
        }
    }

    /// The traffic since the last call, resetting the counters.
    pub fn take(&self) -> Traffic {
        std::mem::take(&mut *self.traffic.lock().expect("traffic lock"))
    }

    fn record(&self, bytes: u64, started: Instant) {
        let mut t = self.traffic.lock().expect("traffic lock");
        t.bytes_sent += bytes;
        t.seconds += started.elapsed().as_secs_f64();
        t.calls += 1;
    }
}

impl Exchange for Metered {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn allgather_bytes(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let started = Instant::now();
        self.inner.allgather_bytes(send, recv)?;
        let k = self.size() as u64;
        self.record(send.len() as u64 * (k - 1), started);
        Ok(())
    }
    fn alltoall_bytes(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let started = Instant::now();
        self.inner.alltoall_bytes(send, recv)?;
        let k = self.size() as u64;
        self.record(send.len() as u64 / k * (k - 1), started);
        Ok(())
    }
}

/// K ranks as K threads of one process, for tests of the distributed optimisers
/// without MPI: every collective waits until all K ranks have contributed.
pub mod threads {
    use super::{check_len, Exchange};
    use rbd_engine::Result;
    use std::sync::{Arc, Condvar, Mutex};

    struct Round {
        generation: u64,
        arrived: usize,
        inputs: Vec<Vec<u8>>,
        outputs: Vec<Vec<u8>>,
    }

    struct Shared {
        k: usize,
        round: Mutex<Round>,
        turn: Condvar,
    }

    /// One rank of a group of threads.
    pub struct ThreadExchange {
        rank: usize,
        shared: Arc<Shared>,
    }

    /// The K ranks of a new group (hand one to each thread).
    pub fn group(k: usize) -> Vec<ThreadExchange> {
        let shared = Arc::new(Shared {
            k,
            round: Mutex::new(Round {
                generation: 0,
                arrived: 0,
                inputs: vec![Vec::new(); k],
                outputs: Vec::new(),
            }),
            turn: Condvar::new(),
        });
        (0..k)
            .map(|rank| ThreadExchange {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    impl ThreadExchange {
        /// Deposits `send`, waits for every rank, returns what `combine` made of all
        /// inputs (rank order) for this rank.
        fn collective(
            &self,
            send: &[u8],
            combine: impl Fn(&[Vec<u8>], usize) -> Vec<u8>,
        ) -> Vec<u8> {
            let s = &self.shared;
            let mut r = s.round.lock().expect("exchange lock");
            // Wait while the previous round's outputs are still being collected.
            while r.arrived == s.k {
                r = s.turn.wait(r).expect("exchange lock");
            }
            let generation = r.generation;
            r.inputs[self.rank] = send.to_vec();
            r.arrived += 1;
            if r.arrived == s.k {
                r.outputs = (0..s.k).map(|w| combine(&r.inputs, w)).collect();
                r.generation += 1;
                s.turn.notify_all();
            } else {
                while r.generation == generation {
                    r = s.turn.wait(r).expect("exchange lock");
                }
            }
            let out = std::mem::take(&mut r.outputs[self.rank]);
            // The last rank to collect opens the next round.
            if r.outputs.iter().all(Vec::is_empty) {
                r.arrived = 0;
                s.turn.notify_all();
            }
            out
        }
    }

    impl Exchange for ThreadExchange {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.shared.k
        }
        fn allgather_bytes(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
            check_len("allgather", recv.len(), send.len() * self.size())?;
            let out = self.collective(send, |inputs, _| inputs.concat());
            recv.copy_from_slice(&out);
            Ok(())
        }
        fn alltoall_bytes(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
            check_len("alltoall", recv.len(), send.len())?;
            let out = self.collective(send, |inputs, me| {
                let block = inputs[0].len() / inputs.len();
                inputs
                    .iter()
                    .flat_map(|v| v[me * block..(me + 1) * block].to_vec())
                    .collect()
            });
            recv.copy_from_slice(&out);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::threads::group;
    use super::*;

    fn on_ranks<T: Send + 'static>(
        k: usize,
        f: impl Fn(Arc<dyn Exchange>) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let f = Arc::new(f);
        let handles: Vec<_> = group(k)
            .into_iter()
            .map(|ex| {
                let f = f.clone();
                std::thread::spawn(move || f(Arc::new(ex)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn allreduce_sums_in_rank_order_and_agrees_bitwise() {
        for k in [1, 2, 3, 4] {
            // Values whose sum depends on the order of addition.
            let out = on_ranks(k, move |ex| {
                let r = ex.rank() as f32;
                let mut v: Vec<f32> = (0..11)
                    .map(|i| (1.0 + r) * 1e7f32.powi(i % 2) * (0.1 + i as f32) + r * 0.3)
                    .collect();
                allreduce_sum_f32(ex.as_ref(), &mut v).unwrap();
                v
            });
            for i in 0..11 {
                let mut want = 0f32;
                for w in 0..k {
                    let r = w as f32;
                    let x = (1.0 + r) * 1e7f32.powi(i % 2) * (0.1 + i as f32) + r * 0.3;
                    want = if w == 0 { x } else { want + x };
                }
                for (rank, v) in out.iter().enumerate() {
                    assert_eq!(
                        v[i as usize].to_bits(),
                        want.to_bits(),
                        "k {k} rank {rank} i {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn allgather_is_in_rank_order_and_metered() {
        let out = on_ranks(3, |ex| {
            let rank = ex.rank() as u64;
            let m = Metered::new(ex);
            let g = allgather_u64(&m, &[rank, 7]).unwrap();
            (g, m.take())
        });
        for (g, t) in out {
            assert_eq!(g, vec![0, 7, 1, 7, 2, 7]);
            assert_eq!(t.bytes_sent, 16 * 2);
            assert_eq!(t.calls, 1);
        }
    }
}
