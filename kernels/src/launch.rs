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

/// Workgroups a dispatch should offer a big GPU: two per streaming multiprocessor of a
/// 132-SM H100 or H200, so that each multiprocessor has a second workgroup to switch to
/// while one waits on memory. Reductions are split until they reach it.
pub const TARGET_WORKGROUPS: usize = 264;

/// How a reduction of length `len` is split for a kernel with `tiles` output tiles:
/// `(chunk, splits)`, chunks of whole `slice`-deep slices and at least `min_chunk` long,
/// the shortest such chunk with `tiles · splits ≥` [`TARGET_WORKGROUPS`] (one split when
/// the tiles alone reach it). The partial results are added in split order by a second
/// pass. Depends on the shape only, never on the adapter: every adapter adds the same
/// numbers in the same order.
pub fn reduction_splits(
    tiles: usize,
    len: usize,
    slice: usize,
    min_chunk: usize,
) -> (usize, usize) {
    let whole = len.div_ceil(slice).max(1) * slice;
    let want = TARGET_WORKGROUPS.div_ceil(tiles.max(1));
    if want <= 1 {
        return (whole, 1);
    }
    let chunk = (len / want / slice * slice).max(min_chunk.div_ceil(slice) * slice);
    if chunk >= len {
        return (whole, 1);
    }
    (chunk, len.div_ceil(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_splits_reach_the_target_with_whole_slices() {
        for tiles in [1, 3, 18, 113, 263, 264, 600] {
            for len in [1, 15, 16, 17, 100, 576, 5408, 28_800, 131_072] {
                let (chunk, splits) = reduction_splits(tiles, len, 16, 32);
                assert_eq!(chunk % 16, 0, "{tiles} {len}");
                assert!(
                    chunk * splits >= len && chunk * (splits - 1) < len,
                    "{tiles} {len}"
                );
                if splits > 1 {
                    assert!(chunk >= 32, "{tiles} {len}");
                }
                // Below the target only when the chunks are already the shortest.
                if tiles * splits < TARGET_WORKGROUPS && tiles < TARGET_WORKGROUPS {
                    assert!(
                        chunk <= 32 || splits == 1 && len <= 32,
                        "{tiles} {len}: {chunk} × {splits}"
                    );
                }
            }
        }
        // The CNN's conv2 backward-data at batch 32: 113 tiles reducing over 576.
        assert_eq!(reduction_splits(113, 576, 16, 32), (192, 3));
        assert_eq!(reduction_splits(264, 576, 16, 32), (576, 1));
    }
}
