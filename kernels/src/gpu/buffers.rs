//! Device buffers: pooled storage allocations (see `buffer_pool`), uploads through an
//! upload ring and a recorded copy (no submit), copies, and bounded readback through
//! pooled staging buffers.

use super::buffer_pool::GpuBuffer;
use super::counters::{bump, COUNTERS};
use super::queue::Pending;
use super::GpuContext;
use crate::GpuError;

/// Smallest upload ring; it grows to the largest upload of a submission.
const MIN_UPLOAD_RING_BYTES: u64 = 4 << 20;

impl GpuContext {
    /// A storage buffer of at least `bytes` (contents undefined), refused past the
    /// binding limit.
    pub fn alloc(&self, bytes: u64) -> Result<GpuBuffer, GpuError> {
        let max = self.max_binding_bytes();
        if bytes > max {
            return Err(GpuError::TooLarge {
                what: "storage buffer".into(),
                bytes,
                limit: max,
            });
        }
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        self.pool.take(bytes, usage, |class| {
            bump(&COUNTERS.buffer_creations, 1);
            let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: class.min(max.div_ceil(4) * 4),
                usage,
                mapped_at_creation: false,
            });
            match pollster::block_on(scope.pop()) {
                Some(e) => Err(GpuError::OutOfMemory(format!("{bytes} bytes: {e}"))),
                None => Ok(buffer),
            }
        })
    }

    /// A zero-filled storage buffer.
    pub fn zeros(&self, bytes: u64) -> Result<GpuBuffer, GpuError> {
        let buf = self.alloc(bytes)?;
        self.with_encoder(|enc| enc.clear_buffer(buf.raw(), 0, None));
        Ok(buf)
    }

    /// Copies `data` into a new storage buffer, without a submit: the bytes go to the
    /// host side of the upload ring and a recorded copy moves them into the buffer, in
    /// command order (so a recycled buffer is never overwritten under a pending reader).
    pub fn upload(&self, data: &[u8]) -> Result<GpuBuffer, GpuError> {
        let buf = self.alloc(data.len() as u64)?;
        if data.is_empty() {
            return Ok(buf);
        }
        bump(&COUNTERS.upload_bytes, data.len() as u64);
        let padded = data.len().div_ceil(4) as u64 * 4;
        let capacity = |p: &Pending| p.upload_ring.as_ref().map_or(0, |r| r.size());
        let mut p = self.pending.lock().unwrap();
        if p.uploads.len() as u64 + padded > capacity(&p) && !p.uploads.is_empty() {
            drop(p);
            self.flush()?;
            p = self.pending.lock().unwrap();
        }
        if padded > capacity(&p) {
            let size = padded
                .next_power_of_two()
                .max(MIN_UPLOAD_RING_BYTES)
                .min(self.limits.max_buffer_size / 4 * 4)
                .max(padded);
            if size > self.limits.max_buffer_size {
                return Err(GpuError::TooLarge {
                    what: "upload".into(),
                    bytes: padded,
                    limit: self.limits.max_buffer_size,
                });
            }
            bump(&COUNTERS.buffer_creations, 1);
            p.upload_ring = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("upload ring"),
                size,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let offset = p.uploads.len() as u64;
        p.uploads.extend_from_slice(data);
        p.uploads.resize((offset + padded) as usize, 0);
        let ring = p.upload_ring.clone().expect("upload ring");
        p.end_pass();
        let enc = self.encoder(&mut p);
        enc.copy_buffer_to_buffer(&ring, offset, buf.raw(), 0, padded);
        Ok(buf)
    }

    /// Records a buffer-to-buffer copy (offsets and length in bytes, multiples of 4).
    pub fn copy(
        &self,
        src: &GpuBuffer,
        src_offset: u64,
        dst: &GpuBuffer,
        dst_offset: u64,
        bytes: u64,
    ) -> Result<(), GpuError> {
        if src_offset + bytes > src.raw().size() || dst_offset + bytes > dst.raw().size() {
            return Err(GpuError::Invalid(format!(
                "copy of {bytes} bytes out of range (src {src_offset}/{}, dst {dst_offset}/{})",
                src.bytes(),
                dst.bytes()
            )));
        }
        if bytes == 0 {
            return Ok(());
        }
        self.with_encoder(|enc| {
            enc.copy_buffer_to_buffer(src.raw(), src_offset, dst.raw(), dst_offset, bytes)
        });
        Ok(())
    }

    /// Reads the first `bytes` bytes of `buf` back to the host through a pooled
    /// staging buffer.
    pub fn read_bytes(&self, buf: &GpuBuffer, bytes: u64) -> Result<Vec<u8>, GpuError> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let padded = bytes.div_ceil(4) * 4;
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging = self.staging.take(padded, usage, |class| {
            bump(&COUNTERS.buffer_creations, 1);
            Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: class,
                usage,
                mapped_at_creation: false,
            }))
        })?;
        self.with_encoder(|enc| enc.copy_buffer_to_buffer(buf.raw(), 0, staging.raw(), 0, padded));
        let index = self.submit()?;
        bump(&COUNTERS.readbacks, 1);
        let slice = staging.raw().slice(0..padded);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        match rx.recv_timeout(self.readback_timeout) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Readback(e.to_string())),
            Err(_) => return Err(GpuError::Timeout("mapping a staging buffer".into())),
        }
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            view[..bytes as usize].to_vec()
        };
        staging.raw().unmap();
        Ok(out)
    }

    /// Reads `len` values of `T` from the start of `buf`.
    pub fn read<T: bytemuck::Pod>(&self, buf: &GpuBuffer, len: usize) -> Result<Vec<T>, GpuError> {
        let bytes = self.read_bytes(buf, (len * std::mem::size_of::<T>()) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
