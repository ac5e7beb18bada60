//! The cpu GEMM helpers shared by the convolution and matmul: bounds-checked strided
//! calls into matrixmultiply, single-threaded, and [`gemm_par`], which cuts one product
//! into row or column blocks run as rayon tasks.
//!
//! matrixmultiply is built without its own thread pool: every cpu kernel parallelises
//! over rayon only, so tests, benchmarks and the CLI schedule GEMMs the same way and
//! two pools never compete for the cores. Blocks change no bits: matrixmultiply sums
//! each output over k in an order fixed by k alone, whichever block holds it.

use crate::real::Real;
use rayon::prelude::*;

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

/// Products below this many multiply-adds run as one call (a rayon task costs a few
/// µs; 2¹⁷ multiply-adds take about 10 µs on one core).
const PAR_MIN_MACS: usize = 1 << 17;
/// Blocks [`gemm_par`] aims for: enough to balance 2–8 threads; fixed, so the split
/// depends on the shape alone.
const PAR_BLOCKS: usize = 8;
/// Smallest row block (each row block packs B again) and column block (each packs A).
const MIN_BLOCK: usize = 32;

/// Size of the blocks that cut `len` into about [`PAR_BLOCKS`] pieces: a multiple of
/// 16 (matrixmultiply's register tiles) and at least [`MIN_BLOCK`].
fn block_size(len: usize) -> usize {
    (len.div_ceil(PAR_BLOCKS).div_ceil(16) * 16).max(MIN_BLOCK)
}

/// A raw pointer that may cross to rayon tasks; each task writes a disjoint block.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: only used to write disjoint blocks of one `&mut [T]` from rayon tasks that
// end before the borrow does.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the whole `SendPtr`).
    fn get(self) -> *mut T {
        self.0
    }
}

/// [`gemm`] into a row-major `C` with leading dimension `ldc ≥ n`, cut into row
/// blocks (m ≥ n) or column blocks (m < n) run as rayon tasks when the product is
/// large enough. Each output is computed exactly as by one [`gemm`] call.
pub(crate) fn gemm_par<T: Real>(
    (m, k, n): (usize, usize, usize),
    (a, rsa, csa): Operand<T>,
    (b, rsb, csb): Operand<T>,
    (c, ldc): (&mut [T], usize),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n, "gemm_par: ldc {ldc} < n {n}");
    let (rows, cols) = if m >= n {
        (block_size(m), n)
    } else {
        (m, block_size(n))
    };
    if m.saturating_mul(k).saturating_mul(n) < PAR_MIN_MACS || (rows >= m && cols >= n) {
        gemm(
            (m, k, n),
            (a, rsa, csa),
            (b, rsb, csb),
            (c, ldc, 1),
            accumulate,
        );
        return;
    }
    // The whole product's bounds, checked once; each block lies inside them.
    assert!(extent(m, n, ldc, 1) < c.len(), "gemm: C out of bounds");
    if k > 0 {
        assert!(extent(m, k, rsa, csa) < a.len(), "gemm: A out of bounds");
        assert!(extent(k, n, rsb, csb) < b.len(), "gemm: B out of bounds");
    }
    let beta = if accumulate { T::ONE } else { T::ZERO };
    let i = |v: usize| v as isize;
    let cp = SendPtr(c.as_mut_ptr());
    let blocks: Vec<(usize, usize)> = if rows < m {
        (0..m).step_by(rows).map(|r0| (r0, 0)).collect()
    } else {
        (0..n).step_by(cols).map(|c0| (0, c0)).collect()
    };
    blocks.into_par_iter().for_each(|(r0, c0)| {
        let (mb, nb) = (rows.min(m - r0), cols.min(n - c0));
        // SAFETY: the block [r0, r0 + mb) × [c0, c0 + nb) lies inside the matrices
        // checked above; blocks are disjoint and C is row-major with ldc ≥ n, so no
        // two tasks write the same element; `c` stays borrowed until all tasks end.
        unsafe {
            T::gemm(
                mb,
                k,
                nb,
                T::ONE,
                a.as_ptr().add(r0 * rsa),
                i(rsa),
                i(csa),
                b.as_ptr().add(c0 * csb),
                i(rsb),
                i(csb),
                beta,
                cp.get().add(r0 * ldc + c0),
                i(ldc),
                1,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let x = i.wrapping_mul(0x9E37_79B9) ^ seed.wrapping_mul(0x85EB_CA6B);
                (x >> 8) as f32 / (1 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Row blocks (m ≥ n), column blocks (m < n), ragged last blocks, transposed
    /// operands, accumulation and a leading dimension wider than n: every block
    /// computes bitwise what one call computes.
    #[test]
    fn blocks_give_the_bits_of_one_call() {
        for (m, k, n, ldc, trans, acc) in [
            (300, 70, 40, 40, false, false),
            (33, 300, 517, 517, true, false),
            (40, 129, 1000, 1003, false, true),
            (250, 600, 1, 1, true, false),
            (1, 4096, 77, 77, false, true),
        ] {
            assert!(m * k * n >= PAR_MIN_MACS, "{m} {k} {n} would not split");
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let (rsa, csa) = if trans { (1, m) } else { (k, 1) };
            let start = values(m * ldc, 3);
            let mut one = start.clone();
            let mut par = start.clone();
            gemm(
                (m, k, n),
                (&a, rsa, csa),
                (&b, n, 1),
                (&mut one, ldc, 1),
                acc,
            );
            gemm_par((m, k, n), (&a, rsa, csa), (&b, n, 1), (&mut par, ldc), acc);
            assert!(
                one.iter()
                    .zip(&par)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}×{k}×{n} ldc {ldc}"
            );
        }
    }
}
