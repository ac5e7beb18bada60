//! Recording and submission: dispatches share one open compute pass (until a copy,
//! clear or timestamp query ends it) in one command encoder, each dispatch's `Info`
//! goes to the host copy of the uniform ring (written with one `queue.write_buffer` per
//! submit), and the work is submitted when the step flushes, a ring fills, or
//! [`DISPATCHES_PER_SUBMIT`] dispatches have queued. Waits are bounded.

use super::buffer_pool::GpuBuffer;
use super::counters::{bump, COUNTERS};
use super::pipelines::{Kernel, MAX_BUFFERS};
use super::profiler::{DispatchRecord, Work};
use super::GpuContext;
use crate::GpuError;

/// Submit the open command buffer after this many dispatches (the step's own flush
/// normally comes first; this bounds the work queued behind a long recording).
const DISPATCHES_PER_SUBMIT: usize = 256;

/// Bytes of the uniform ring: each dispatch's `Info` lands at the next aligned offset;
/// a full ring submits. Written once per submit (`queue.write_buffer`), which the
/// queue orders after earlier submissions and before this one's commands.
pub(crate) const UNIFORM_RING_BYTES: u64 = 64 * 1024;

/// Largest `Info` struct (the binding size of the ring's dynamic-offset binding).
pub(crate) const MAX_INFO_BYTES: u64 = 256;

/// What has been recorded and not yet submitted.
pub(crate) struct Pending {
    pub encoder: Option<wgpu::CommandEncoder>,
    /// The open compute pass (one per submit unless a copy, clear or timestamp
    /// query ends it).
    pub pass: Option<wgpu::ComputePass<'static>>,
    pub dispatches: usize,
    /// `Info` structs of this submission at their ring offsets.
    pub uniforms: Vec<u8>,
    /// Uploads of this submission, copied from the upload ring by recorded copies.
    pub uploads: Vec<u8>,
    /// The upload ring the recorded copies read (grown between submissions).
    pub upload_ring: Option<wgpu::Buffer>,
}

impl Pending {
    pub fn new() -> Self {
        Pending {
            encoder: None,
            pass: None,
            dispatches: 0,
            uniforms: Vec::with_capacity(UNIFORM_RING_BYTES as usize),
            uploads: Vec::new(),
            upload_ring: None,
        }
    }

    /// Ends the open pass, so that copies and clears can be recorded.
    pub fn end_pass(&mut self) {
        self.pass = None;
    }
}

impl GpuContext {
    pub(super) fn encoder<'p>(&self, p: &'p mut Pending) -> &'p mut wgpu::CommandEncoder {
        p.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        })
    }

    /// Runs `f` on the open encoder after ending the open compute pass.
    pub(super) fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut p = self.pending.lock().unwrap();
        p.end_pass();
        f(self.encoder(&mut p))
    }

    /// Splits `groups` workgroups over x and y so neither exceeds the per-dimension
    /// limit; shaders recover the linear index as `wid.x + wid.y * nwg.x` and skip
    /// indices past the end.
    pub fn grid(&self, groups: u64) -> Result<[u32; 3], GpuError> {
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= max {
            return Ok([groups.max(1) as u32, 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(GpuError::TooLarge {
                what: "dispatch (workgroups)".into(),
                bytes: groups,
                limit: max * max,
            });
        }
        Ok([max as u32, y as u32, 1])
    }

    /// Records one dispatch of `kernel` specialised by `constants` (WGSL `override`s),
    /// with `info` at binding 0 and `buffers` at bindings 1..=n. Its work, for the
    /// dispatch log, is taken to be one pass over the bound buffers and no arithmetic
    /// (see [`GpuContext::dispatch_with_work`] for kernels that compute).
    ///
    /// Host cost per dispatch: a pipeline lookup (no allocation), a bind-group lookup
    /// by buffer identity (created once per distinct set of buffers), `info` appended
    /// to the uniform ring's host copy, and three commands in the open compute pass.
    pub fn dispatch(
        &self,
        kernel: &Kernel,
        constants: &[(&str, f64)],
        info: &[u8],
        buffers: &[&GpuBuffer],
        workgroups: [u32; 3],
    ) -> Result<(), GpuError> {
        let work = Work::of_buffers(buffers);
        self.dispatch_with_work(kernel, constants, info, buffers, workgroups, work)
    }

    /// [`GpuContext::dispatch`] with the dispatch's work stated by its launcher.
    pub fn dispatch_with_work(
        &self,
        kernel: &Kernel,
        constants: &[(&str, f64)],
        info: &[u8],
        buffers: &[&GpuBuffer],
        workgroups: [u32; 3],
        work: Work,
    ) -> Result<(), GpuError> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(GpuError::TooLarge {
                what: format!(
                    "{}::{} workgroups {workgroups:?}",
                    kernel.module, kernel.entry
                ),
                bytes: *workgroups.iter().max().unwrap() as u64,
                limit: max as u64,
            });
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        if info.len() as u64 > MAX_INFO_BYTES || buffers.len() > MAX_BUFFERS {
            return Err(GpuError::Invalid(format!(
                "{}::{}: {} info bytes and {} buffers (at most {MAX_INFO_BYTES} and {MAX_BUFFERS})",
                kernel.module,
                kernel.entry,
                info.len(),
                buffers.len()
            )));
        }
        let started = std::time::Instant::now();
        let pipeline = self
            .pipelines
            .pipeline(&self.device, kernel, constants, buffers.len())?;
        let bind_group = self.pipelines.bind_group(
            &self.device,
            &self.uniform_ring,
            pipeline.layout,
            buffers,
        )?;
        self.profiling.log(|| DispatchRecord {
            module: kernel.module,
            kernel: kernel.entry,
            workgroups,
            threads_per_workgroup: pipeline.threads,
            work,
        });
        let mut timestamps = self.profiling.timestamps.lock().unwrap();
        let mut p = self.pending.lock().unwrap();
        let mut offset = p.uniforms.len().div_ceil(self.uniform_align) * self.uniform_align;
        if offset as u64 >= UNIFORM_RING_BYTES {
            drop(p);
            drop(timestamps);
            self.flush()?;
            timestamps = self.profiling.timestamps.lock().unwrap();
            p = self.pending.lock().unwrap();
            offset = 0;
        }
        p.uniforms.resize(offset, 0);
        p.uniforms.extend_from_slice(info);
        bump(&COUNTERS.uniform_bytes, info.len() as u64);
        // Per-kernel timing needs a pass per dispatch (timestamps sit at pass bounds).
        let timed = timestamps
            .as_mut()
            .and_then(|prof| prof.next_pass(kernel.entry));
        if timed.is_some() {
            p.end_pass();
        }
        if p.pass.is_none() {
            let enc = self.encoder(&mut p);
            let pass = enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: timed,
                })
                .forget_lifetime();
            p.pass = Some(pass);
            bump(&COUNTERS.compute_passes, 1);
        }
        let pass = p.pass.as_mut().expect("open pass");
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset as u32]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        if timestamps.is_some() {
            p.end_pass();
        }
        p.dispatches += 1;
        bump(&COUNTERS.dispatches, 1);
        let full = p.dispatches >= DISPATCHES_PER_SUBMIT
            || timestamps.as_ref().is_some_and(|prof| prof.is_full());
        drop(p);
        drop(timestamps);
        bump(&COUNTERS.record_ns, started.elapsed().as_nanos() as u64);
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Submits everything recorded so far (does not wait).
    pub fn flush(&self) -> Result<(), GpuError> {
        self.submit().map(|_| ())
    }

    pub(super) fn submit(&self) -> Result<Option<wgpu::SubmissionIndex>, GpuError> {
        let mut timestamps = self.profiling.timestamps.lock().unwrap();
        let mut p = self.pending.lock().unwrap();
        p.end_pass();
        let Some(mut enc) = p.encoder.take() else {
            return Ok(None);
        };
        let readout = timestamps
            .as_mut()
            .and_then(|prof| prof.resolve(self, &mut enc));
        // Queue writes land before this submission's commands and after earlier ones.
        if !p.uniforms.is_empty() {
            self.queue.write_buffer(&self.uniform_ring, 0, &p.uniforms);
        }
        if !p.uploads.is_empty() {
            let ring = p.upload_ring.as_ref().expect("upload ring");
            self.queue.write_buffer(ring, 0, &p.uploads);
        }
        let index = self.queue.submit([enc.finish()]);
        bump(&COUNTERS.submits, 1);
        p.dispatches = 0;
        p.uniforms.clear();
        p.uploads.clear();
        drop(p);
        if let (Some(prof), Some(readout)) = (timestamps.as_mut(), readout) {
            prof.collect(readout);
        }
        drop(timestamps);
        self.check()?;
        Ok(Some(index))
    }

    /// Waits (bounded by `readback_timeout`) until `index` or all work has finished.
    pub fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: Some(self.readback_timeout),
            })
            .map_err(|e| GpuError::Timeout(format!("waiting for the GPU: {e}")))?;
        self.check()
    }

    /// Submits pending work and waits for it to finish.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        let index = self.submit()?;
        self.wait(index)
    }
}
