//! [`Exchange`] over MPI (rsmpi): `MPI_Allgather` and `MPI_Alltoall` on bytes of
//! `MPI_COMM_WORLD`, whose default error handler (`MPI_ERRORS_ARE_FATAL`) ends the
//! whole job on any MPI error. MPI has no timeout on collectives, so a watchdog thread
//! ends this process when one waits too long (a rank died or hangs); `mpirun` then
//! ends the other ranks.

use anyhow::{bail, Result};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;
use rbd_optim::Exchange;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// MPI, initialised for this process; finalised when dropped.
pub struct MpiEnvironment {
    world: SimpleCommunicator,
    // Declared last: dropped (MPI_Finalize) after everything else.
    _universe: Universe,
}

impl MpiEnvironment {
    /// Initialises MPI (only the main thread calls it) and a watchdog of `timeout`.
    pub fn initialize(timeout: Duration) -> Result<(MpiEnvironment, Arc<dyn Exchange>)> {
        let Some((universe, _threading)) = mpi::initialize_with_threading(Threading::Funneled)
        else {
            bail!("--distributed: MPI was already initialised in this process");
        };
        let world = universe.world();
        let exchange = MpiExchange {
            world: universe.world(),
            rank: world.rank() as usize,
            size: world.size() as usize,
            watchdog: Watchdog::start(world.rank() as usize, timeout),
        };
        Ok((
            MpiEnvironment {
                world,
                _universe: universe,
            },
            Arc::new(exchange),
        ))
    }

    /// MPI_Abort on the world: every rank ends with `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// Time since the watchdog started at which the current collective began (0: none).
struct Watchdog {
    started: Instant,
    entered_ms: AtomicU64,
}

impl Watchdog {
    fn start(rank: usize, timeout: Duration) -> Arc<Watchdog> {
        let w = Arc::new(Watchdog {
            started: Instant::now(),
            entered_ms: AtomicU64::new(0),
        });
        let watched = w.clone();
        let period = (timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(5));
        std::thread::Builder::new()
            .name("rbd-collective-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(period);
                let entered = watched.entered_ms.load(Ordering::Acquire);
                let now = watched.started.elapsed().as_millis() as u64;
                if entered != 0 && now.saturating_sub(entered) > timeout.as_millis() as u64 {
                    eprintln!(
                        "error on rank {rank}: a collective waited more than {} s for the other ranks (one died, hangs or is far slower); stopping (--collective-timeout)",
                        timeout.as_secs()
                    );
                    // Not MPI_Abort: only the main thread may call MPI. mpirun ends the
                    // other ranks when this one exits without finalising.
                    std::process::exit(124);
                }
            })
            .expect("spawning the watchdog thread");
        w
    }

    fn guard<T>(&self, f: impl FnOnce() -> T) -> T {
        let now = (self.started.elapsed().as_millis() as u64).max(1);
        self.entered_ms.store(now, Ordering::Release);
        let out = f();
        self.entered_ms.store(0, Ordering::Release);
        out
    }
}

struct MpiExchange {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    watchdog: Arc<Watchdog>,
}

// SAFETY: MPI is initialised with MPI_THREAD_FUNNELED and only the trainer's main
// thread calls these collectives (the optimisers run on it); the communicator handle
// itself is plain data.
unsafe impl Send for MpiExchange {}
unsafe impl Sync for MpiExchange {}

impl Exchange for MpiExchange {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn allgather_bytes(&self, send: &[u8], recv: &mut [u8]) -> rbd_engine::Result<()> {
        if recv.len() != send.len() * self.size {
            return Err(rbd_engine::EngineError::Invalid(format!(
                "allgather: {} bytes for {} ranks of {}",
                recv.len(),
                self.size,
                send.len()
            )));
        }
        self.watchdog
            .guard(|| self.world.all_gather_into(send, recv));
        Ok(())
    }
    fn alltoall_bytes(&self, send: &[u8], recv: &mut [u8]) -> rbd_engine::Result<()> {
        if recv.len() != send.len() || !send.len().is_multiple_of(self.size) {
            return Err(rbd_engine::EngineError::Invalid(format!(
                "alltoall: {} bytes sent, {} received, over {} ranks",
                send.len(),
                recv.len(),
                self.size
            )));
        }
        self.watchdog
            .guard(|| self.world.all_to_all_into(send, recv));
        Ok(())
    }
}
