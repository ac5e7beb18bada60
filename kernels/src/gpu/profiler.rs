//! Per-kernel GPU time from timestamp queries written at compute-pass boundaries.

use super::GpuContext;
use crate::GpuError;

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

pub(crate) struct Readout {
    buffer: wgpu::Buffer,
    names: Vec<&'static str>,
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
    pub(crate) fn new(ctx: &GpuContext) -> Self {
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

    /// The totals, once every submitted readout is mapped (the caller has waited for
    /// the GPU).
    pub(crate) fn finish(mut self, ctx: &GpuContext) -> Result<Vec<KernelTiming>, GpuError> {
        ctx.wait(None)?;
        for readout in std::mem::take(&mut self.pending) {
            self.read(readout)?;
        }
        Ok(self.totals)
    }
}
