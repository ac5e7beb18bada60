//! The parallelism a step offers a big GPU, visible on any adapter: every dispatch of
//! one step with its workgroups and work, and an estimate of its time on a reference
//! GPU (an H100: 132 multiprocessors).
//!
//! The estimate is a roofline stretched by under-filling: the dispatch's work at the
//! reference's rates, `max(flops / F, bytes / B)`, times `264 / workgroups` when the grid
//! has fewer than two workgroups per multiprocessor (a multiprocessor with one or no
//! workgroup runs at that share of its rate). F = 15 TFLOP/s is the f32 rate this
//! project aims for in its WGSL matmul (the datasheet's plain f32 is about 67), B =
//! 3.0 TB/s the device-to-device copy measured on this workplace's H100. The target
//! (issue 27): no dispatch below 264 workgroups unless its estimate is under 10 µs.

use rbd_kernels::gpu::DispatchRecord;
use rbd_kernels::launch::TARGET_WORKGROUPS;
use serde::Serialize;

/// The GPU the estimates are for.
const REFERENCE: &str = "NVIDIA H100 (132 SMs): 15 TFLOP/s f32 (the project's matmul goal), 3.0 TB/s (copy measured here)";
/// f32 operations per second of the reference.
const FLOPS_PER_S: f64 = 15e12;
/// Device-memory bytes per second of the reference.
const BYTES_PER_S: f64 = 3.0e12;
/// A dispatch below the target workgroups may take at most this long.
const MAX_US_BELOW_TARGET: f64 = 10.0;

/// One dispatch of the step.
#[derive(Serialize, Debug)]
pub struct DispatchRow {
    /// Entry point.
    pub kernel: String,
    /// Its WGSL module.
    pub module: String,
    /// Grid as dispatched (x, y, z).
    pub workgroups: [u32; 3],
    /// Workgroups in the grid.
    pub total_workgroups: u64,
    /// Threads per workgroup.
    pub threads_per_workgroup: u32,
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes of device memory read and written (the launcher's count, else the bound
    /// buffers once each).
    pub bytes: f64,
    /// Estimated time on the reference GPU with the whole chip.
    pub est_full_us: f64,
    /// Estimated time on the reference GPU with this grid.
    pub est_us: f64,
    /// Below the target workgroups with an estimate of 10 µs or more.
    pub misses_target: bool,
}

/// The step's dispatches and the target's verdict.
#[derive(Serialize, Debug)]
pub struct Parallelism {
    /// The GPU the estimates are for.
    pub reference: &'static str,
    /// Workgroups a dispatch should offer (two per multiprocessor).
    pub target_workgroups: usize,
    /// Estimated µs under which fewer workgroups are fine.
    pub max_us_below_target: f64,
    /// Dispatches of one step, in recording order.
    pub dispatches: Vec<DispatchRow>,
    /// Sum of the estimates: the step on the reference GPU, without host gaps.
    pub est_step_us: f64,
    /// Kernels that miss the target.
    pub misses: Vec<String>,
    /// Whether every dispatch meets the target.
    pub meets_target: bool,
}

/// The estimates and verdict for one step's dispatch log.
pub fn of(log: &[DispatchRecord]) -> Parallelism {
    let dispatches: Vec<DispatchRow> = log
        .iter()
        .map(|d| {
            let groups = d.total_workgroups();
            let full_s = (d.work.flops / FLOPS_PER_S).max(d.work.bytes / BYTES_PER_S);
            let stretch = (TARGET_WORKGROUPS as f64 / groups.max(1) as f64).max(1.0);
            let est_us = full_s * stretch * 1e6;
            DispatchRow {
                kernel: d.kernel.to_string(),
                module: d.module.to_string(),
                workgroups: d.workgroups,
                total_workgroups: groups,
                threads_per_workgroup: d.threads_per_workgroup,
                flops: d.work.flops,
                bytes: d.work.bytes,
                est_full_us: full_s * 1e6,
                est_us,
                misses_target: (groups as usize) < TARGET_WORKGROUPS
                    && est_us >= MAX_US_BELOW_TARGET,
            }
        })
        .collect();
    let misses: Vec<String> = dispatches
        .iter()
        .filter(|d| d.misses_target)
        .map(|d| {
            format!(
                "{} ({} workgroups, {:.1} µs)",
                d.kernel, d.total_workgroups, d.est_us
            )
        })
        .collect();
    Parallelism {
        reference: REFERENCE,
        target_workgroups: TARGET_WORKGROUPS,
        max_us_below_target: MAX_US_BELOW_TARGET,
        est_step_us: dispatches.iter().map(|d| d.est_us).sum(),
        meets_target: misses.is_empty(),
        misses,
        dispatches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbd_kernels::gpu::Work;

    fn record(kernel: &'static str, groups: u32, flops: f64, bytes: f64) -> DispatchRecord {
        DispatchRecord {
            module: "m",
            kernel,
            workgroups: [groups, 1, 1],
            threads_per_workgroup: 256,
            work: Work { flops, bytes },
        }
    }

    #[test]
    fn small_grids_pass_only_with_little_work() {
        let p = of(&[
            // 300 MFLOP on 264 workgroups: 20 µs, but the grid fills the chip.
            record("big_full", 264, 3e8, 0.0),
            // 60 MB on 1 workgroup: 20 µs at full rate, 264 times that on one SM.
            record("bandwidth_starved", 1, 0.0, 6e7),
            // 1 MFLOP on 32 workgroups: 0.067 µs · 8.25 = 0.55 µs.
            record("tiny", 32, 1e6, 0.0),
            // 50 MFLOP on 57 workgroups: 3.33 µs · 4.63 = 15.4 µs.
            record("conv1_weight_before", 57, 4.98e7, 0.0),
        ]);
        let miss: Vec<bool> = p.dispatches.iter().map(|d| d.misses_target).collect();
        assert_eq!(miss, [false, true, false, true]);
        assert!(!p.meets_target);
        assert_eq!(p.misses.len(), 2);
        assert!((p.dispatches[0].est_us - 20.0).abs() < 1e-9);
        assert!((p.dispatches[2].est_us - 1e6 / 15e12 * 8.25 * 1e6).abs() < 1e-9);
        assert!(of(&[record("tiny", 32, 1e6, 0.0)]).meets_target);
    }
}
