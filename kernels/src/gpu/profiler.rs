//! What the device did, for `rbd profile` and the benchmarks:
//!
//! - per-kernel GPU time from timestamp queries written at compute-pass boundaries
//!   ([`GpuContext::start_profiling`]; adapters without `TIMESTAMP_QUERY` give none, and
//!   say so through [`GpuContext::has_timestamps`]);
//! - a log of every dispatch with its workgroups, threads per workgroup and work
//!   ([`GpuContext::start_dispatch_log`]), so the parallelism a step offers a big GPU is
//!   visible on any adapter;
//! - [`GpuContext::time_kernels`], one timed region: kernel time where the adapter has
//!   timestamps, and the wall-clock beside it.

use super::buffer_pool::GpuBuffer;
use super::GpuContext;
use crate::GpuError;
use std::sync::Mutex;
use std::time::Instant;

/// Passes timed per submission; a full query set forces a submit.
const PASSES_PER_SET: u32 = 64;

/// Total GPU time of one entry point over a profiling window.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTiming {
    /// Entry point name.
    pub kernel: &'static str,
    /// Number of dispatches.
    pub dispatches: u64,
    /// Summed GPU time in nanoseconds.
    pub nanos: f64,
}

/// The work of one dispatch as its launcher states it (or, by default, one pass over
/// its buffers and no arithmetic).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Floating-point operations (an fma counts 2).
    pub flops: f64,
    /// Bytes read and written in device memory.
    pub bytes: f64,
}

impl Work {
    /// One pass over `buffers` (each read or written once), no arithmetic.
    pub fn of_buffers(buffers: &[&GpuBuffer]) -> Work {
        Work {
            flops: 0.0,
            bytes: buffers.iter().map(|b| b.bytes() as f64).sum(),
        }
    }

    /// `flops` of arithmetic over one pass of `buffers`.
    pub fn compute(flops: f64, buffers: &[&GpuBuffer]) -> Work {
        Work {
            flops,
            ..Work::of_buffers(buffers)
        }
    }
}

/// One recorded dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchRecord {
    /// The kernel's module.
    pub module: &'static str,
    /// Its entry point.
    pub kernel: &'static str,
    /// The grid (x, y, z) as dispatched.
    pub workgroups: [u32; 3],
    /// Threads per workgroup (the entry point's workgroup size).
    pub threads_per_workgroup: u32,
    /// What it computes and moves.
    pub work: Work,
}

impl DispatchRecord {
    /// Workgroups in the grid.
    pub fn total_workgroups(&self) -> u64 {
        self.workgroups.iter().map(|&w| w as u64).product()
    }
}

/// Kernel time and wall-clock of one region (see [`GpuContext::time_kernels`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegionTime {
    /// Summed GPU time of the region's dispatches from timestamp queries; `None` where
    /// the adapter has no `TIMESTAMP_QUERY`.
    pub kernel_ns: Option<f64>,
    /// Wall-clock from the start of the region to the end of its work (a synchronize
    /// before and after; the recording, submission and waiting included).
    pub wall_ns: f64,
    /// Dispatches recorded in the region (process-wide counter: other threads'
    /// dispatches meanwhile count too).
    pub dispatches: u64,
}

pub(crate) struct Readout {
    buffer: wgpu::Buffer,
    names: Vec<&'static str>,
}

/// The profiling state of one context.
#[derive(Default)]
pub(crate) struct Profiling {
    pub timestamps: Mutex<Option<Profiler>>,
    dispatch_log: Mutex<Option<Vec<DispatchRecord>>>,
}

impl Profiling {
    /// Appends the record `make` builds when the dispatch log is on.
    pub fn log(&self, make: impl FnOnce() -> DispatchRecord) {
        if let Some(log) = self.dispatch_log.lock().unwrap().as_mut() {
            log.push(make());
        }
    }
}

pub(crate) struct Profiler {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    names: Vec<&'static str>,
    period_ns: f64,
    totals: Vec<KernelTiming>,
    /// Readouts of submitted work, mapped and summed when profiling stops (so timing
    /// does not wait for the GPU after every submit).
    pending: Vec<Readout>,
}

impl Profiler {
    fn new(ctx: &GpuContext) -> Self {
        let count = PASSES_PER_SET * 2;
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamp resolve"),
            size: count as u64 * wgpu::QUERY_SIZE as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Profiler {
            set,
            resolve,
            names: Vec::new(),
            period_ns: ctx.queue.get_timestamp_period() as f64,
            totals: Vec::new(),
            pending: Vec::new(),
        }
    }

    pub(crate) fn next_pass(
        &mut self,
        name: &'static str,
    ) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let i = self.names.len() as u32;
        if i >= PASSES_PER_SET {
            return None;
        }
        self.names.push(name);
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        })
    }

    pub(crate) fn is_full(&self) -> bool {
        self.names.len() as u32 >= PASSES_PER_SET
    }

    /// Records the resolve of every query written since the last submit.
    pub(crate) fn resolve(
        &mut self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
    ) -> Option<Readout> {
        if self.names.is_empty() {
            return None;
        }
        let n = self.names.len() as u32 * 2;
        let bytes = n as u64 * wgpu::QUERY_SIZE as u64;
        enc.resolve_query_set(&self.set, 0..n, &self.resolve, 0);
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamp readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.copy_buffer_to_buffer(&self.resolve, 0, &buffer, 0, bytes);
        Some(Readout {
            buffer,
            names: std::mem::take(&mut self.names),
        })
    }

    /// Queues the mapping of a submitted readout; [`Profiler::finish`] reads it.
    pub(crate) fn collect(&mut self, readout: Readout) {
        readout
            .buffer
            .slice(..)
            .map_async(wgpu::MapMode::Read, |_| {});
        self.pending.push(readout);
    }

    fn read(&mut self, readout: Readout) -> Result<(), GpuError> {
        let slice = readout.buffer.slice(..);
        let stamps: Vec<u64> = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&view)
        };
        for (i, name) in readout.names.iter().enumerate() {
            let ns = stamps[2 * i + 1].saturating_sub(stamps[2 * i]) as f64 * self.period_ns;
            match self.totals.iter_mut().find(|t| t.kernel == *name) {
                Some(t) => {
                    t.dispatches += 1;
                    t.nanos += ns;
                }
                None => self.totals.push(KernelTiming {
                    kernel: name,
                    dispatches: 1,
                    nanos: ns,
                }),
            }
        }
        Ok(())
    }

    /// The totals, once every submitted readout is mapped.
    fn finish(mut self, ctx: &GpuContext) -> Result<Vec<KernelTiming>, GpuError> {
        ctx.wait(None)?;
        for readout in std::mem::take(&mut self.pending) {
            self.read(readout)?;
        }
        Ok(self.totals)
    }
}

impl GpuContext {
    /// Starts per-kernel GPU timing with timestamp queries (no-op without the feature);
    /// returns whether timing is active.
    pub fn start_profiling(&self) -> bool {
        if !self.has_timestamps() {
            return false;
        }
        let _ = self.flush();
        *self.profiling.timestamps.lock().unwrap() = Some(Profiler::new(self));
        true
    }

    /// Stops timing and returns the total GPU time per entry point, in first-seen order.
    pub fn stop_profiling(&self) -> Result<Vec<KernelTiming>, GpuError> {
        self.synchronize()?;
        let prof = self.profiling.timestamps.lock().unwrap().take();
        match prof {
            Some(p) => p.finish(self),
            None => Ok(Vec::new()),
        }
    }

    /// Starts (or restarts, emptied) the log of dispatches.
    pub fn start_dispatch_log(&self) {
        *self.profiling.dispatch_log.lock().unwrap() = Some(Vec::new());
    }

    /// Stops the log of dispatches and returns it in recording order.
    pub fn take_dispatch_log(&self) -> Vec<DispatchRecord> {
        self.profiling
            .dispatch_log
            .lock()
            .unwrap()
            .take()
            .unwrap_or_default()
    }

    /// Runs `region` once and times it: the summed kernel time from timestamp queries
    /// where the adapter has them, and the wall-clock from a synchronize before to a
    /// synchronize after. The hook every benchmark figure on wgpu goes through.
    pub fn time_kernels<R>(
        &self,
        region: impl FnOnce() -> Result<R, GpuError>,
    ) -> Result<(R, RegionTime), GpuError> {
        self.synchronize()?;
        let stamped = self.start_profiling();
        let before = super::counters();
        let t = Instant::now();
        let out = region();
        let sync = self.synchronize();
        let wall_ns = t.elapsed().as_secs_f64() * 1e9;
        let dispatches = super::counters().since(&before).dispatches;
        let kernels = self.stop_profiling();
        let out = out?;
        sync?;
        let kernels = kernels?;
        Ok((
            out,
            RegionTime {
                kernel_ns: stamped.then(|| kernels.iter().map(|k| k.nanos).sum()),
                wall_ns,
                dispatches,
            },
        ))
    }
}
