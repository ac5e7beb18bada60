//! The cpu convolution's data movement: im2col (input patches as the columns of a
//! `[c·kh·kw, positions]` matrix), col2im (its transpose, summing overlaps in a fixed
//! order) and the NCHW <-> `[o, n·P]` layout transposes of the batched path.

use super::Conv2dShape;
use crate::real::Real;
use rayon::prelude::*;

/// The outputs `o` in `0..out` whose input coordinate `o·stride + k − pad` lies in
/// `0..size`, as a half-open range (empty ranges have `lo == hi`).
pub(super) fn valid_range(
    out: usize,
    stride: usize,
    k: usize,
    pad: usize,
    size: usize,
) -> (usize, usize) {
    let lo = if pad > k {
        (pad - k).div_ceil(stride)
    } else {
        0
    };
    let hi = if size + pad > k {
        (size + pad - k).div_ceil(stride).min(out)
    } else {
        0
    };
    (lo.min(out), hi.max(lo).min(out))
}

/// Valid output ranges per kernel row (`ys[ki]`) and column (`xs[kj]`), computed once
/// per call: the divisions in [`valid_range`] would otherwise dominate small layers.
pub(super) struct Windows {
    ys: Vec<(usize, usize)>,
    xs: Vec<(usize, usize)>,
}

impl Windows {
    pub(super) fn new(s: &Conv2dShape) -> Self {
        Windows {
            ys: (0..s.kh)
                .map(|ki| valid_range(s.oh, s.stride, ki, s.pad_top, s.h))
                .collect(),
            xs: (0..s.kw)
                .map(|kj| valid_range(s.ow, s.stride, kj, s.pad_left, s.w))
                .collect(),
        }
    }
}

/// Fills one im2col row for one image: `out[oy·ow + ox] = plane[iy, ix]` with
/// `iy = oy·stride + ki − pad_top`, `ix = ox·stride + kj − pad_left` (zero outside).
fn im2col_row<T: Real>(
    s: &Conv2dShape,
    win: &Windows,
    plane: &[T],
    ki: usize,
    kj: usize,
    out: &mut [T],
) {
    let (ylo, yhi) = win.ys[ki];
    let (xlo, xhi) = win.xs[kj];
    out[..ylo * s.ow].fill(T::ZERO);
    out[yhi * s.ow..].fill(T::ZERO);
    if xlo == xhi {
        out[ylo * s.ow..yhi * s.ow].fill(T::ZERO);
        return;
    }
    let ix0 = xlo * s.stride + kj - s.pad_left;
    let len = xhi - xlo;
    for oy in ylo..yhi {
        let src = &plane[(oy * s.stride + ki - s.pad_top) * s.w..][..s.w];
        let dst = &mut out[oy * s.ow..][..s.ow];
        dst[..xlo].fill(T::ZERO);
        dst[xhi..].fill(T::ZERO);
        if s.stride == 1 {
            dst[xlo..xhi].copy_from_slice(&src[ix0..ix0 + len]);
        } else {
            for (d, ix) in dst[xlo..xhi].iter_mut().zip((ix0..).step_by(s.stride)) {
                *d = src[ix];
            }
        }
    }
}

/// (ci, ki, kj) of im2col row `row`.
fn row_coords(s: &Conv2dShape, row: usize) -> (usize, usize, usize) {
    (row / (s.kh * s.kw), (row / s.kw) % s.kh, row % s.kw)
}

/// im2col of one image `x_img [c, h, w]` into `col [K, P]`.
pub(super) fn im2col_image<T: Real>(s: &Conv2dShape, win: &Windows, x_img: &[T], col: &mut [T]) {
    for (row, out) in col.chunks_mut(s.p()).enumerate() {
        let (ci, ki, kj) = row_coords(s, row);
        im2col_row(s, win, &x_img[ci * s.h * s.w..][..s.h * s.w], ki, kj, out);
    }
}

/// Batched im2col into `col [K, N·P]` (column `img·P + p`), parallel over rows.
pub(super) fn im2col_batched<T: Real>(s: &Conv2dShape, win: &Windows, x: &[T], col: &mut [T]) {
    let (p, np, hw) = (s.p(), s.n * s.p(), s.h * s.w);
    col.par_chunks_mut(np).enumerate().for_each(|(row, out)| {
        let (ci, ki, kj) = row_coords(s, row);
        for img in 0..s.n {
            let plane = &x[(img * s.c + ci) * hw..][..hw];
            im2col_row(s, win, plane, ki, kj, &mut out[img * p..][..p]);
        }
    });
}

/// col2im of one input plane: `plane = Σ_{ki,kj} scatter(rows(ki, kj))`, where
/// `rows(ki, kj)` is that kernel offset's im2col row (`P` values) for this plane's
/// channel. The order (ki, kj, oy, ox) is fixed.
pub(super) fn col2im_plane<'a, T: Real>(
    s: &Conv2dShape,
    win: &Windows,
    rows: impl Fn(usize, usize) -> &'a [T],
    plane: &mut [T],
) {
    plane.fill(T::ZERO);
    for (ki, &(ylo, yhi)) in win.ys.iter().enumerate() {
        for (kj, &(xlo, xhi)) in win.xs.iter().enumerate() {
            if xlo == xhi {
                continue;
            }
            let src = rows(ki, kj);
            let ix0 = xlo * s.stride + kj - s.pad_left;
            for oy in ylo..yhi {
                let iy = oy * s.stride + ki - s.pad_top;
                let d = &mut plane[iy * s.w..][..s.w];
                let sr = &src[oy * s.ow + xlo..oy * s.ow + xhi];
                if s.stride == 1 {
                    for (d, &v) in d[ix0..ix0 + sr.len()].iter_mut().zip(sr) {
                        *d += v;
                    }
                } else {
                    for (ix, &v) in (ix0..).step_by(s.stride).zip(sr) {
                        d[ix] += v;
                    }
                }
            }
        }
    }
}

/// `t[m, img·P + p] = a[img, m, p]`: NCHW (`[n, o, P]`) to the GEMM layout `[o, n·P]`.
pub(super) fn nchw_to_rows<T: Real>(s: &Conv2dShape, a: &[T], t: &mut [T]) {
    let (p, np) = (s.p(), s.n * s.p());
    t.par_chunks_mut(np).enumerate().for_each(|(m, row)| {
        for img in 0..s.n {
            row[img * p..][..p].copy_from_slice(&a[(img * s.o + m) * p..][..p]);
        }
    });
}

/// Inverse of [`nchw_to_rows`].
pub(super) fn rows_to_nchw<T: Real>(s: &Conv2dShape, t: &[T], a: &mut [T]) {
    let (p, np) = (s.p(), s.n * s.p());
    a.par_chunks_mut(p).enumerate().for_each(|(q, dst)| {
        let (img, m) = (q / s.o, q % s.o);
        dst.copy_from_slice(&t[m * np + img * p..][..p]);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_matches_brute_force() {
        for out in 1..6 {
            for stride in 1..4 {
                for k in 0..4 {
                    for pad in 0..4 {
                        for size in 1..8 {
                            let want: Vec<usize> = (0..out)
                                .filter(|&o| {
                                    let c = (o * stride + k) as isize - pad as isize;
                                    c >= 0 && (c as usize) < size
                                })
                                .collect();
                            let (lo, hi) = valid_range(out, stride, k, pad, size);
                            assert_eq!(
                                (lo..hi).collect::<Vec<_>>(),
                                want,
                                "{out} {stride} {k} {pad} {size}"
                            );
                        }
                    }
                }
            }
        }
    }
}
