//! `rbd bench`: repeated measurements of kernels (`kernels`) and of the random-bases
//! step and whole optimiser steps (`rbd`), with warm-up, as a table or JSON.

pub mod kernels;
pub mod peak;
pub mod peer;
pub mod phases;
pub mod rbd;

use clap::Args;
use std::path::PathBuf;

/// Options shared by benchmarks.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Print machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed repeats per measurement (after warm-up).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Backends: all, cpu, wgpu (every adapter), gpu (adapters that are not CPUs), or
    /// wgpu-cpu (the first CPU adapter).
    #[arg(long, default_value = "all")]
    pub backends: String,
    /// Smaller problem sizes (for a quick look, or slow adapters).
    #[arg(long)]
    pub quick: bool,
    /// `bench rbd`: also measure a peer in the same run and print ratios: torch or jax,
    /// optionally with its interpreter (`--peer jax=/venv-jax/bin/python`); repeatable.
    #[arg(long)]
    pub peer: Vec<String>,
    /// Python interpreter of peers named without one (default: $RBD_PEER_PYTHON, else
    /// python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
}
