//! The cpu GEMM helpers shared by the convolution and matmul: bounds-checked strided
//! calls into matrixmultiply, and the scheduling that keeps its threads and rayon's
//! from competing.

use crate::real::Real;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Threads matrixmultiply gives one GEMM: `MATMUL_NUM_THREADS` if set (the variable
/// it reads itself), else assumed more than one (it uses the physical cores).
fn gemm_pool_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("MATMUL_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(2, |n| n.max(1))
    })
}

/// Whether matrixmultiply splits a GEMM of this size over its own threads (its
/// heuristic: `m·k + k·n ≥ 2¹⁵` for two threads). Work made of such GEMMs runs them
/// one after another; work made of smaller ones spreads them over rayon tasks, so
/// that the two thread pools never compete. This only schedules: every GEMM computes
/// the same bits wherever and however it runs.
pub(crate) fn gemm_is_threaded(m: usize, k: usize, n: usize) -> bool {
    gemm_pool_threads() > 1 && m * k + k * n >= 1 << 15
}

/// A matrix operand: a slice with row and column strides.
pub(crate) type Operand<'a, T> = (&'a [T], usize, usize);

/// Largest index a `rows × cols` matrix with these strides touches.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// `C[m, n] = A[m, k]·B[k, n] (+ C if accumulate)` on strided slices, the bounds
/// checked up front so that the unsafe call cannot read or write outside them.
pub(crate) fn gemm<T: Real>(
    (m, k, n): (usize, usize, usize),
    (a, rsa, csa): Operand<T>,
    (b, rsb, csb): Operand<T>,
    (c, rsc, csc): (&mut [T], usize, usize),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(extent(m, n, rsc, csc) < c.len(), "gemm: C out of bounds");
    if k > 0 {
        assert!(extent(m, k, rsa, csa) < a.len(), "gemm: A out of bounds");
        assert!(extent(k, n, rsb, csb) < b.len(), "gemm: B out of bounds");
    }
    let beta = if accumulate { T::ONE } else { T::ZERO };
    let i = |v: usize| v as isize;
    // SAFETY: every index the GEMM forms lies within the slices (checked above).
    unsafe {
        T::gemm(
            m,
            k,
            n,
            T::ONE,
            a.as_ptr(),
            i(rsa),
            i(csa),
            b.as_ptr(),
            i(rsb),
            i(csb),
            beta,
            c.as_mut_ptr(),
            i(rsc),
            i(csc),
        );
    }
}

/// [`gemm`] into a row-major `C` (`ldc` = n), cut into row blocks run as rayon tasks
/// when matrixmultiply would not thread it itself. Row blocks change no bits: each
/// output is computed the same way in any block.
pub(crate) fn gemm_rows_par<T: Real>(
    (m, k, n): (usize, usize, usize),
    (a, rsa, csa): Operand<T>,
    b: Operand<T>,
    c: &mut [T],
) {
    if gemm_is_threaded(m, k, n) || m < 32 {
        gemm((m, k, n), (a, rsa, csa), b, (c, n, 1), false);
        return;
    }
    // At least 32 rows per block: each block packs B again.
    let rows = (m.div_ceil(4).div_ceil(16) * 16).max(32);
    c[..m * n]
        .par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(i, c)| {
            let r0 = i * rows;
            let mb = c.len() / n;
            gemm((mb, k, n), (&a[r0 * rsa..], rsa, csa), b, (c, n, 1), false);
        });
}
