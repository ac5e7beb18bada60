//! Small helpers shared by the launchers.

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::GpuError;

/// Threads per workgroup of the 1-D kernels.
pub const WG_1D: u64 = 256;

/// Dispatches a 1-D kernel over `threads` threads (workgroups of [`WG_1D`], grid folded
/// onto x and y past the per-dimension limit).
pub fn launch_1d(
    ctx: &GpuContext,
    kernel: &Kernel,
    info: &[u8],
    buffers: &[&GpuBuffer],
    threads: u64,
) -> Result<(), GpuError> {
    let grid = ctx.grid(threads.div_ceil(WG_1D))?;
    ctx.dispatch(kernel, &[], info, buffers, grid)
}

/// Checks that a buffer holds at least `len` f32 values.
pub fn check_len(what: &str, buf: &GpuBuffer, len: usize) -> Result<(), GpuError> {
    if (buf.bytes() as usize) < len * 4 {
        return Err(GpuError::Invalid(format!(
            "{what}: buffer of {} bytes holds fewer than {len} f32 values",
            buf.bytes()
        )));
    }
    Ok(())
}

/// Refuses element counts that WGSL's u32 indexing cannot address.
pub fn check_u32(what: &str, n: usize) -> Result<u32, GpuError> {
    u32::try_from(n).map_err(|_| GpuError::TooLarge {
        what: what.to_string(),
        bytes: n as u64,
        limit: u32::MAX as u64,
    })
}
