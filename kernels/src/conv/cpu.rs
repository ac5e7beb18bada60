//! The cpu convolution: im2col + GEMM (matrixmultiply), per image for large feature
//! maps, batched for small ones.

use super::direct::{self, ConvPath};
use super::im2col::{
    col2im_plane, im2col_batched, im2col_image, nchw_to_rows, rows_to_nchw, Windows,
};
use super::Conv2dShape;
use crate::gemm::{gemm, gemm_par};
use crate::real::{Real, CPU_CHUNK as CHUNK};
use crate::scratch::with_scratch;
use rayon::prelude::*;

fn check_lens<T>(what: &str, s: &Conv2dShape, bufs: &[(&str, &[T], usize)]) {
    s.check().unwrap_or_else(|e| panic!("{what}: {e}"));
    for (name, b, len) in bufs {
        assert_eq!(
            b.len(),
            *len,
            "{what}: {name} has {} values, {s:?} needs {len}",
            b.len()
        );
    }
}

/// Output positions per image from which the cpu path works image by image (im2col
/// matrix per image, cache-resident, GEMM straight into NCHW) rather than on one
/// batched matrix (bigger GEMMs, which small feature maps need, at the cost of
/// layout transposes). Depends on the shape only, so the choice (and the bits of the
/// result) never depend on the machine.
const PER_IMAGE_MIN_P: usize = 64;

/// Images per partial sum of the per-image weight gradient: the batch is cut into
/// groups of this many images (fixed by the shape), each group summed in image order,
/// the group sums added in group order.
const WEIGHT_GROUP_IMAGES: usize = 4;

/// Runs `f(img, chunk)` over the `chunk`-sized pieces of `out` as rayon tasks.
fn for_each_image<T: Real>(out: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
}

/// Forward convolution on the cpu: `y = conv(x, w)` (no bias). Panics on slices whose
/// lengths do not match the shape.
pub fn conv2d_cpu<T: Real>(s: &Conv2dShape, x: &[T], w: &[T], y: &mut [T]) {
    conv2d_cpu_with(s, x, w, y, ConvPath::detect());
}

/// [`conv2d_cpu`] on a chosen path (every path gives the same bits; the direct one
/// applies to per-image f32 shapes with whole vectors of output channels).
pub fn conv2d_cpu_with<T: Real>(s: &Conv2dShape, x: &[T], w: &[T], y: &mut [T], path: ConvPath) {
    check_lens("conv2d_cpu", s, &[("x", x, s.x_len()), ("w", w, s.w_len())]);
    assert_eq!(y.len(), s.y_len(), "conv2d_cpu: y length for {s:?}");
    let win = Windows::new(s);
    let (k, p, np, chw) = (s.k(), s.p(), s.n * s.p(), s.c * s.h * s.w);
    if p >= PER_IMAGE_MIN_P || s.n == 1 {
        if let ConvPath::Direct(simd) = path {
            if let Some(ov) = direct::forward_vectors_per_tile::<T>(s, simd) {
                direct::forward_images(s, simd, ov, x, w, y);
                return;
            }
        }
        // Y_img[o, P] = W[o, K] · col_img[K, P]
        for_each_image(y, s.o * p, |img, y_img| {
            with_scratch::<T, _>(k * p, |col| {
                im2col_image(s, &win, &x[img * chw..][..chw], col);
                gemm((s.o, k, p), (w, k, 1), (col, p, 1), (y_img, p, 1), false);
            })
        });
        return;
    }
    with_scratch::<T, _>(k * np + s.o * np, |buf| {
        let (col, tmp) = buf.split_at_mut(k * np);
        im2col_batched(s, &win, x, col);
        // tmp[o, N·P] = W[o, K] · col[K, N·P]
        gemm_par((s.o, k, np), (w, k, 1), (col, np, 1), (tmp, np), false);
        rows_to_nchw(s, tmp, y);
    });
}

/// Gradient of [`conv2d_cpu`] with respect to its input: `dx = convᵀ(dy, w)`
/// (a GEMM `Wᵀ·dY` followed by a col2im gather per input plane).
pub fn conv2d_backward_data_cpu<T: Real>(s: &Conv2dShape, dy: &[T], w: &[T], dx: &mut [T]) {
    check_lens(
        "conv2d_backward_data_cpu",
        s,
        &[("dy", dy, s.y_len()), ("w", w, s.w_len())],
    );
    assert_eq!(
        dx.len(),
        s.x_len(),
        "conv2d_backward_data_cpu: dx length for {s:?}"
    );
    let win = Windows::new(s);
    let (k, p, np, hw) = (s.k(), s.p(), s.n * s.p(), s.h * s.w);
    let khw = s.kh * s.kw;
    if p >= PER_IMAGE_MIN_P || s.n == 1 {
        // dcol_img[K, P] = Wᵀ[K, o] · dY_img[o, P], then col2im per plane.
        for_each_image(dx, s.c * hw, |img, dx_img| {
            with_scratch::<T, _>(k * p, |dcol| {
                let dy_img = &dy[img * s.o * p..][..s.o * p];
                gemm(
                    (k, s.o, p),
                    (w, 1, k),
                    (dy_img, p, 1),
                    (&mut *dcol, p, 1),
                    false,
                );
                let dcol = &*dcol;
                for (ci, plane) in dx_img.chunks_mut(hw).enumerate() {
                    let rows = |ki: usize, kj: usize| &dcol[(ci * khw + ki * s.kw + kj) * p..][..p];
                    col2im_plane(s, &win, rows, plane);
                }
            })
        });
        return;
    }
    with_scratch::<T, _>(k * np + s.o * np, |buf| {
        let (dcol, dyt) = buf.split_at_mut(k * np);
        nchw_to_rows(s, dy, dyt);
        // dcol[K, N·P] = Wᵀ[K, o] · dyt[o, N·P]
        gemm_par(
            (k, s.o, np),
            (w, 1, k),
            (dyt, np, 1),
            (&mut *dcol, np),
            false,
        );
        let dcol = &*dcol;
        // One task per input plane, so every dx element has one writer.
        dx.par_chunks_mut(hw).enumerate().for_each(|(q, plane)| {
            let (img, ci) = (q / s.c, q % s.c);
            let rows =
                |ki: usize, kj: usize| &dcol[(ci * khw + ki * s.kw + kj) * np + img * p..][..p];
            col2im_plane(s, &win, rows, plane);
        });
    });
}

/// Gradient of [`conv2d_cpu`] with respect to its weights, summed over the batch in
/// a fixed order: `dW[o, K] = Σ_img dY_img[o, P] · col_imgᵀ[P, K]`, accumulated image
/// by image (large feature maps) or as one GEMM over the batched im2col matrix.
pub fn conv2d_backward_weight_cpu<T: Real>(s: &Conv2dShape, x: &[T], dy: &[T], dw: &mut [T]) {
    conv2d_backward_weight_cpu_with(s, x, dy, dw, ConvPath::detect());
}

/// [`conv2d_backward_weight_cpu`] on a chosen path (every path gives the same bits; the
/// direct one applies to per-image f32 shapes it has kernels for, else the GEMM runs).
pub fn conv2d_backward_weight_cpu_with<T: Real>(
    s: &Conv2dShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    path: ConvPath,
) {
    check_lens(
        "conv2d_backward_weight_cpu",
        s,
        &[("x", x, s.x_len()), ("dy", dy, s.y_len())],
    );
    assert_eq!(
        dw.len(),
        s.w_len(),
        "conv2d_backward_weight_cpu: dw length for {s:?}"
    );
    let win = Windows::new(s);
    let (k, p, np, chw) = (s.k(), s.p(), s.n * s.p(), s.c * s.h * s.w);
    if p >= PER_IMAGE_MIN_P || s.n == 1 {
        // dW = Σ_groups Σ_img∈group dY_img · col_imgᵀ, both sums in order.
        let wl = s.o * k;
        let direct = match path {
            ConvPath::Direct(simd) => direct::vectors_per_tile::<T>(s, simd).map(|ov| (simd, ov)),
            ConvPath::Gemm => None,
        };
        let group = |g: usize, out: &mut [T]| {
            let first = g * WEIGHT_GROUP_IMAGES;
            let images = first..s.n.min(first + WEIGHT_GROUP_IMAGES);
            if let Some((simd, ov)) = direct {
                direct::weight_grad_images(s, simd, ov, x, dy, images, out);
                return;
            }
            with_scratch::<T, _>(k * p, |col| {
                for img in images {
                    im2col_image(s, &win, &x[img * chw..][..chw], col);
                    let dy_img = &dy[img * s.o * p..][..s.o * p];
                    gemm(
                        (s.o, p, k),
                        (dy_img, p, 1),
                        (col, 1, p),
                        (&mut *out, k, 1),
                        img > first,
                    );
                }
            })
        };
        let groups = s.n.div_ceil(WEIGHT_GROUP_IMAGES);
        if groups == 1 {
            group(0, dw);
            return;
        }
        with_scratch::<T, _>(groups * wl, |partials| {
            for_each_image(partials, wl, group);
            let partials = &*partials;
            dw.par_chunks_mut(CHUNK).enumerate().for_each(|(i, d)| {
                let base = i * CHUNK;
                d.copy_from_slice(&partials[base..base + d.len()]);
                for g in 1..groups {
                    for (d, &v) in d.iter_mut().zip(&partials[g * wl + base..]) {
                        *d += v;
                    }
                }
            });
        });
        return;
    }
    with_scratch::<T, _>(k * np + s.o * np, |buf| {
        let (col, dyt) = buf.split_at_mut(k * np);
        im2col_batched(s, &win, x, col);
        nchw_to_rows(s, dy, dyt);
        // dW[o, K] = dyt[o, N·P] · colᵀ[N·P, K]
        gemm_par((s.o, np, k), (dyt, np, 1), (col, 1, np), (dw, k), false);
    });
}
