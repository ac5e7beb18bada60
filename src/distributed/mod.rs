//! Distributed training over MPI: `mpirun -n K rbd train --distributed …`.
//!
//! This module joins the K processes that `mpirun` started into a
//! [`Team`](crate::train::Team) and hands it to the [`Trainer`](crate::train::Trainer);
//! the optimisers exchange gradients or random-bases coordinates through
//! `rbd_optim::exchange`. MPI itself (the `mpi` crate, rsmpi) is only compiled with
//! the cargo feature `mpi`; without it `--distributed` is refused with the command that
//! builds it. See docs/distributed.md.

#[cfg(feature = "mpi")]
mod mpi_exchange;

use crate::train::Team;
use anyhow::Result;
use std::time::Duration;

/// How to get a build that can train distributed.
pub const BUILD_HINT: &str = "install MPI and libclang (Debian/Ubuntu: apt-get install mpich libmpich-dev libclang-dev) and build with `cargo build --release --features mpi`";

/// The processes of this run: one, or the ranks of an MPI job.
pub struct Session {
    // Dropped before the MPI environment below (which finalises MPI).
    team: Team,
    #[cfg(feature = "mpi")]
    _mpi: Option<mpi_exchange::MpiEnvironment>,
}

impl Session {
    /// One process.
    pub fn single() -> Session {
        Session {
            team: Team::single(),
            #[cfg(feature = "mpi")]
            _mpi: None,
        }
    }

    /// The ranks `mpirun` started (rank and size from MPI); a collective that waits
    /// longer than `timeout` for the other ranks ends this process (and so the job).
    /// Without the `mpi` feature: an error saying how to build it.
    pub fn join_mpi(timeout: Duration) -> Result<Session> {
        #[cfg(feature = "mpi")]
        {
            let (env, exchange) = mpi_exchange::MpiEnvironment::initialize(timeout)?;
            Ok(Session {
                team: Team::new(exchange),
                _mpi: Some(env),
            })
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = timeout;
            anyhow::bail!("--distributed: this rbd was built without MPI; {BUILD_HINT}")
        }
    }

    /// The team to train with.
    pub fn team(&self) -> Team {
        self.team.clone()
    }

    /// Ends every rank of the job after `error` on this one (MPI_Abort), so that no
    /// rank waits forever for this one; returns for a single process.
    pub fn abort_all(&self, error: &anyhow::Error) {
        #[cfg(feature = "mpi")]
        if let Some(env) = &self._mpi {
            if self.team.size() > 1 {
                eprintln!(
                    "error on rank {} of {}: {error:#}",
                    self.team.rank(),
                    self.team.size()
                );
                env.abort(1);
            }
        }
        let _ = error;
    }
}
