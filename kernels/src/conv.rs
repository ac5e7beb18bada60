//! 2-D convolution (NCHW, weights `[o, c, kh, kw]`, no bias): forward, backward-data
//! and backward-weight. WGSL: `wgsl/conv.wgsl`.
//!
//! The cpu versions lower to GEMM (`T::gemm`, matrixmultiply) over im2col matrices
//! (K = c·kh·kw rows, one column per output position): per image for feature maps of
//! at least `PER_IMAGE_MIN_P` (64) outputs (the matrix stays in cache and the GEMM writes
//! NCHW directly), else one batched matrix `[K, N·P]` (bigger GEMMs for small maps).
//! Backward-data is `Wᵀ·dY` followed by col2im, gathered per input plane.
//!
//! Determinism: every output's summation order is fixed by the shape alone. The GEMM
//! splits work over output blocks only (never over the reduction), the rayon loops
//! only write disjoint outputs, and the batch sum of the weight gradient runs in
//! image order (or inside one GEMM). Results are bitwise independent of the thread
//! count; across CPUs they match as long as matrixmultiply picks kernels with the same
//! arithmetic (its FMA kernels; x86 CPUs without FMA round differently).
//!
//! The WGSL kernels are implicit GEMMs over the same matrices, gathered on the fly
//! from NCHW tensors into (16·RM)×64×16 workgroup tiles, RM ∈ {1, 2, 4} by the GEMM's
//! row count (see the shader's header).

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d};
use crate::real::{Real, CPU_CHUNK as CHUNK};
use crate::GpuError;
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::OnceLock;

const SRC: &str = include_str!("../wgsl/conv.wgsl");

/// Padding mode, with Keras/TensorFlow semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: windows lie entirely inside the input.
    Valid,
    /// `oh = ceil(h / stride)`; the padding is split evenly, the odd row/column going
    /// at the bottom/right.
    Same,
}

/// Shape of one 2-D convolution: input `[n, c, h, w]`, weights `[o, c, kh, kw]`,
/// output `[n, o, oh, ow]`. Build it with [`Conv2dShape::new`]; the fields are public
/// for reading (kernels re-check what they rely on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero rows added above the input.
    pub pad_top: usize,
    /// Zero columns added left of the input.
    pub pad_left: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl Conv2dShape {
    /// Keras/TF semantics: Valid: `oh = (h-kh)/stride+1`; Same: `oh = ceil(h/stride)`,
    /// `pad_total = max((oh-1)·stride+kh-h, 0)`, `pad_top = pad_total/2` (the extra row
    /// goes at the bottom/right). Errs ([`GpuError::Invalid`]) on zero sizes, stride 0,
    /// a kernel larger than the input with `Valid`, and element counts that overflow.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        o: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<Self, GpuError> {
        for (name, v) in [
            ("batch n", n),
            ("channels c", c),
            ("height h", h),
            ("width w", w),
            ("output channels o", o),
            ("kernel height kh", kh),
            ("kernel width kw", kw),
            ("stride", stride),
        ] {
            if v == 0 {
                return Err(GpuError::Invalid(format!(
                    "conv2d: {name} is 0 (n={n} c={c} h={h} w={w} o={o} k={kh}x{kw} stride={stride})"
                )));
            }
        }
        let (oh, ow, pad_top, pad_left) = match padding {
            Padding::Valid => {
                if kh > h || kw > w {
                    return Err(GpuError::Invalid(format!(
                        "conv2d: kernel {kh}x{kw} larger than the input {h}x{w} with Valid padding"
                    )));
                }
                ((h - kh) / stride + 1, (w - kw) / stride + 1, 0, 0)
            }
            Padding::Same => {
                let oh = h.div_ceil(stride);
                let ow = w.div_ceil(stride);
                let pad_h = ((oh - 1) * stride + kh).saturating_sub(h);
                let pad_w = ((ow - 1) * stride + kw).saturating_sub(w);
                (oh, ow, pad_h / 2, pad_w / 2)
            }
        };
        let s = Conv2dShape {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            stride,
            pad_top,
            pad_left,
            oh,
            ow,
        };
        s.check()?;
        Ok(s)
    }

    /// Elements of the input `[n, c, h, w]`.
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the weights `[o, c, kh, kw]`.
    pub fn w_len(&self) -> usize {
        self.o * self.c * self.kh * self.kw
    }

    /// Elements of the output `[n, o, oh, ow]`.
    pub fn y_len(&self) -> usize {
        self.n * self.o * self.oh * self.ow
    }

    /// Refuses shapes the kernels cannot handle: zero sizes (a hand-built shape may
    /// have them) and element counts that overflow `usize`.
    fn check(&self) -> Result<(), GpuError> {
        let s = self;
        if [s.n, s.c, s.h, s.w, s.o, s.kh, s.kw, s.stride, s.oh, s.ow].contains(&0) {
            return Err(GpuError::Invalid(format!("conv2d: zero size in {s:?}")));
        }
        let prod = |v: &[usize]| v.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        let ok = prod(&[s.n, s.c, s.h, s.w]).is_some()
            && prod(&[s.o, s.c, s.kh, s.kw]).is_some()
            && prod(&[s.n, s.o, s.oh, s.ow]).is_some()
            // im2col matrices of the cpu path: [c·kh·kw, n·oh·ow]
            && prod(&[s.c, s.kh, s.kw, s.n, s.oh, s.ow]).is_some()
            && (s.oh - 1)
                .checked_mul(s.stride)
                .and_then(|v| v.checked_add(s.kh.max(s.kw)))
                .is_some()
            && (s.ow - 1)
                .checked_mul(s.stride)
                .and_then(|v| v.checked_add(s.kw))
                .is_some();
        if !ok {
            return Err(GpuError::Invalid(format!(
                "conv2d: sizes overflow in {s:?}"
            )));
        }
        Ok(())
    }

    /// Rows of the im2col matrix: c·kh·kw.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per image: oh·ow.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
}

/// The outputs `o` in `0..out` whose input coordinate `o·stride + k − pad` lies in
/// `0..size`, as a half-open range (empty ranges have `lo == hi`).
fn valid_range(out: usize, stride: usize, k: usize, pad: usize, size: usize) -> (usize, usize) {
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

// Scratch memory of the cpu path, kept per thread: allocating (and faulting in)
// several MB per call costs about as much as the arithmetic of a small layer. A few
// buffers are kept so that nested uses (partial sums around im2col) reuse theirs too.
thread_local! {
    static SCRATCH: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Scratch retained between calls at most (bytes per buffer); larger requests are
/// freed after use.
const SCRATCH_KEEP_BYTES: usize = 256 << 20;
/// Buffers retained per thread.
const SCRATCH_KEEP_BUFFERS: usize = 4;

/// Runs `f` on an uninitialised-but-valid scratch slice of `len` values of `T`
/// (contents are left over from earlier calls: `f` must write before reading).
fn with_scratch<T: Real, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let words = (len * std::mem::size_of::<T>()).div_ceil(8);
    // Taken out of the pool (not borrowed) so that nested calls get their own: the
    // smallest buffer that fits, else the largest (grown).
    let mut buf = SCRATCH.with(|s| {
        let mut pool = s.borrow_mut();
        let pick = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= words)
            .min_by_key(|(_, b)| b.len())
            .or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.len()))
            .map(|(i, _)| i);
        pick.map(|i| pool.swap_remove(i)).unwrap_or_default()
    });
    if buf.len() < words {
        buf.resize(words, 0.0);
    }
    let r = f(&mut bytemuck::cast_slice_mut::<f64, T>(&mut buf[..words])[..len]);
    if buf.len() * 8 <= SCRATCH_KEEP_BYTES {
        SCRATCH.with(|s| {
            let mut pool = s.borrow_mut();
            pool.push(buf);
            if pool.len() > SCRATCH_KEEP_BUFFERS {
                // Drop the smallest.
                let i = (0..pool.len()).min_by_key(|&i| pool[i].len()).unwrap_or(0);
                pool.swap_remove(i);
            }
        });
    }
    r
}

/// Valid output ranges per kernel row (`ys[ki]`) and column (`xs[kj]`), computed once
/// per call: the divisions in [`valid_range`] would otherwise dominate small layers.
struct Windows {
    ys: Vec<(usize, usize)>,
    xs: Vec<(usize, usize)>,
}

impl Windows {
    fn new(s: &Conv2dShape) -> Self {
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
fn im2col_image<T: Real>(s: &Conv2dShape, win: &Windows, x_img: &[T], col: &mut [T]) {
    for (row, out) in col.chunks_mut(s.p()).enumerate() {
        let (ci, ki, kj) = row_coords(s, row);
        im2col_row(s, win, &x_img[ci * s.h * s.w..][..s.h * s.w], ki, kj, out);
    }
}

/// Batched im2col into `col [K, N·P]` (column `img·P + p`), parallel over rows.
fn im2col_batched<T: Real>(s: &Conv2dShape, win: &Windows, x: &[T], col: &mut [T]) {
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
fn col2im_plane<'a, T: Real>(
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
fn nchw_to_rows<T: Real>(s: &Conv2dShape, a: &[T], t: &mut [T]) {
    let (p, np) = (s.p(), s.n * s.p());
    t.par_chunks_mut(np).enumerate().for_each(|(m, row)| {
        for img in 0..s.n {
            row[img * p..][..p].copy_from_slice(&a[(img * s.o + m) * p..][..p]);
        }
    });
}

/// Inverse of [`nchw_to_rows`].
fn rows_to_nchw<T: Real>(s: &Conv2dShape, t: &[T], a: &mut [T]) {
    let (p, np) = (s.p(), s.n * s.p());
    a.par_chunks_mut(p).enumerate().for_each(|(q, dst)| {
        let (img, m) = (q / s.o, q % s.o);
        dst.copy_from_slice(&t[m * np + img * p..][..p]);
    });
}

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
fn gemm_is_threaded(m: usize, k: usize, n: usize) -> bool {
    gemm_pool_threads() > 1 && m * k + k * n >= 1 << 15
}

/// Images per partial sum of the per-image weight gradient: the batch is cut into
/// groups of this many images (fixed by the shape), each group summed in image order,
/// the group sums added in group order.
const WEIGHT_GROUP_IMAGES: usize = 4;

/// A matrix operand: a slice with row and column strides.
type Operand<'a, T> = (&'a [T], usize, usize);

/// Largest index a `rows × cols` matrix with these strides touches.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// `C[m, n] = A[m, k]·B[k, n] (+ C if accumulate)` on strided slices, the bounds
/// checked up front so that the unsafe call cannot read or write outside them.
fn gemm<T: Real>(
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
fn gemm_rows_par<T: Real>(
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

/// Runs `f(img, chunk)` over the `chunk`-sized pieces of `out`, in parallel or in
/// image order.
fn for_each_image<T: Real>(
    out: &mut [T],
    chunk: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if parallel {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Forward convolution on the cpu: `y = conv(x, w)` (no bias). Panics on slices whose
/// lengths do not match the shape.
pub fn conv2d_cpu<T: Real>(s: &Conv2dShape, x: &[T], w: &[T], y: &mut [T]) {
    check_lens("conv2d_cpu", s, &[("x", x, s.x_len()), ("w", w, s.w_len())]);
    assert_eq!(y.len(), s.y_len(), "conv2d_cpu: y length for {s:?}");
    let win = Windows::new(s);
    let (k, p, np, chw) = (s.k(), s.p(), s.n * s.p(), s.c * s.h * s.w);
    if p >= PER_IMAGE_MIN_P || s.n == 1 {
        // Y_img[o, P] = W[o, K] · col_img[K, P]
        let parallel = !gemm_is_threaded(s.o, k, p);
        for_each_image(y, s.o * p, parallel, |img, y_img| {
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
        gemm_rows_par((s.o, k, np), (w, k, 1), (col, np, 1), tmp);
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
        let parallel = !gemm_is_threaded(k, s.o, p);
        for_each_image(dx, s.c * hw, parallel, |img, dx_img| {
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
        gemm_rows_par((k, s.o, np), (w, 1, k), (dyt, np, 1), &mut *dcol);
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
        let group = |g: usize, out: &mut [T]| {
            with_scratch::<T, _>(k * p, |col| {
                let first = g * WEIGHT_GROUP_IMAGES;
                for img in first..s.n.min(first + WEIGHT_GROUP_IMAGES) {
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
        let parallel = !gemm_is_threaded(s.o, p, k);
        with_scratch::<T, _>(groups * wl, |partials| {
            for_each_image(partials, wl, parallel, group);
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
        gemm_rows_par((s.o, np, k), (dyt, np, 1), (col, 1, np), dw);
    });
}

// ---------------------------------------------------------------------------------
// WGSL launchers

/// Uniform block of `conv.wgsl` (field order and meaning documented there).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    oh: u32,
    ow: u32,
    gm: u32,
    gn: u32,
    gk: u32,
    tiles_m: u32,
    tiles_n: u32,
    groups: u32,
    chunk: u32,
    splits: u32,
}

/// Output tile width (columns) of the GEMM kernels (must match `conv.wgsl`).
const TILE: usize = 64;
/// Reduction slice (must match `conv.wgsl`).
const TILE_K: usize = 16;

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "conv",
        source: SRC,
        entry,
    }
}

/// Builds the uniform block for a GEMM of `gm × gn` outputs reducing over `gk`, after
/// checking that every index the shader forms fits in u32.
fn info(s: &Conv2dShape, gm: usize, gn: usize, gk: usize) -> Result<Info, GpuError> {
    s.check()?;
    let u = |what: &str, v: usize| check_u32(&format!("conv2d {what} ({s:?})"), v);
    u("input elements", s.x_len())?;
    u("weight elements", s.w_len())?;
    u("output elements", s.y_len())?;
    // The shader forms oy·stride + k (and iy + pad) before range checks.
    u(
        "padded height",
        (s.oh - 1) * s.stride + s.kh + s.h + s.pad_top,
    )?;
    u(
        "padded width",
        (s.ow - 1) * s.stride + s.kw + s.w + s.pad_left,
    )?;
    // Loop counters run up to the reduction length plus one slice.
    u("reduction length", gk + TILE_K)?;
    let tiles_m = gm.div_ceil(16 * rows_per_thread(gm));
    let tiles_n = gn.div_ceil(TILE);
    Ok(Info {
        n: u("n", s.n)?,
        c: u("c", s.c)?,
        h: u("h", s.h)?,
        w: u("w", s.w)?,
        o: u("o", s.o)?,
        kh: u("kh", s.kh)?,
        kw: u("kw", s.kw)?,
        stride: u("stride", s.stride)?,
        pad_top: u("pad_top", s.pad_top)?,
        pad_left: u("pad_left", s.pad_left)?,
        oh: u("oh", s.oh)?,
        ow: u("ow", s.ow)?,
        gm: u("gemm m", gm)?,
        gn: u("gemm n", gn)?,
        gk: u("gemm k", gk)?,
        tiles_m: u("tiles", tiles_m)?,
        tiles_n: u("tiles", tiles_n)?,
        groups: u("workgroups", tiles_m * tiles_n)?,
        chunk: u("gemm k", gk)?,
        splits: 1,
    })
}

/// Register-block rows per thread (the shader's `RM`): tiles of 16·RM rows, so that
/// GEMMs with 16 or 32 rows (layers of 16 or 32 channels) do not compute mostly
/// padding. Results do not depend on it (same reduction order per output).
fn rows_per_thread(gm: usize) -> usize {
    match gm {
        0..=16 => 1,
        17..=32 => 2,
        _ => 4,
    }
}

fn dispatch(
    ctx: &GpuContext,
    entry: &'static str,
    info: &Info,
    bufs: &[&GpuBuffer],
) -> Result<(), GpuError> {
    let grid = ctx.grid(info.groups as u64)?;
    let rm = rows_per_thread(info.gm as usize) as f64;
    ctx.dispatch(
        &kernel(entry),
        &[("RM", rm)],
        bytemuck::bytes_of(info),
        bufs,
        grid,
    )
}

/// Forward convolution on the device: returns `y [n, o, oh, ow]`.
pub fn conv2d_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    x: &GpuBuffer,
    w: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    check_len("conv2d x", x, s.x_len())?;
    check_len("conv2d w", w, s.w_len())?;
    let info = info(s, s.o, s.n * s.p(), s.k())?;
    let y = ctx.alloc(s.y_len() as u64 * 4)?;
    dispatch(ctx, "conv_forward", &info, &[x, w, &y])?;
    Ok(y)
}

/// Gradient of the convolution with respect to its input on the device: returns
/// `dx [n, c, h, w]` (an implicit GEMM over (co, ki, kj) per input element; no atomics).
pub fn conv2d_backward_data_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    dy: &GpuBuffer,
    w: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    check_len("conv2d_backward_data dy", dy, s.y_len())?;
    check_len("conv2d_backward_data w", w, s.w_len())?;
    let info = info(s, s.c, s.n * s.h * s.w, s.o * s.kh * s.kw)?;
    let dx = ctx.alloc(s.x_len() as u64 * 4)?;
    dispatch(ctx, "conv_backward_data", &info, &[dy, w, &dx])?;
    Ok(dx)
}

/// Workgroups the backward-weight kernel aims for before it splits the reduction.
const TARGET_GROUPS: usize = 512;
/// Smallest reduction chunk of one split (a multiple of [`TILE_K`]).
const MIN_CHUNK: usize = 512;

/// Splits of the backward-weight reduction for `tiles` output tiles reducing over `r`:
/// returns (chunk, splits). Depends on the shape only, so results are reproducible on
/// any device.
fn weight_splits(tiles: usize, r: usize) -> (usize, usize) {
    let want = TARGET_GROUPS.div_ceil(tiles).max(1);
    let chunk = r.div_ceil(want).max(MIN_CHUNK).div_ceil(TILE_K) * TILE_K;
    (chunk, r.div_ceil(chunk).max(1))
}

/// Gradient of the convolution with respect to its weights on the device, summed over
/// the batch: returns `dw [o, c, kh, kw]`. Long reductions (n·oh·ow) are split into
/// fixed chunks written to a partials buffer and summed in split order by a second pass.
pub fn conv2d_backward_weight_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    x: &GpuBuffer,
    dy: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    check_len("conv2d_backward_weight x", x, s.x_len())?;
    check_len("conv2d_backward_weight dy", dy, s.y_len())?;
    let r = s.n * s.p();
    let mut info = info(s, s.o, s.k(), r)?;
    let tiles = info.tiles_m as usize * info.tiles_n as usize;
    let (chunk, splits) = weight_splits(tiles, r);
    check_u32("conv2d_backward_weight reduction", r + chunk)?;
    info.chunk = check_u32("conv2d_backward_weight chunk", chunk)?;
    info.splits = check_u32("conv2d_backward_weight splits", splits)?;
    info.groups = check_u32("conv2d_backward_weight workgroups", tiles * splits)?;
    let len = s.w_len();
    let dw = ctx.alloc(len as u64 * 4)?;
    if splits == 1 {
        dispatch(ctx, "conv_backward_weight", &info, &[dy, x, &dw])?;
        return Ok(dw);
    }
    check_u32("conv2d_backward_weight partials", len * splits)?;
    let partials = ctx.alloc((len * splits) as u64 * 4)?;
    dispatch(ctx, "conv_backward_weight", &info, &[dy, x, &partials])?;
    launch_1d(
        ctx,
        &kernel("conv_sum_partials"),
        bytemuck::bytes_of(&info),
        &[&partials, &dw],
        len as u64,
    )?;
    Ok(dw)
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

    #[test]
    fn weight_splits_cover_the_reduction() {
        for tiles in [1, 3, 64, 600] {
            for r in [1, 15, 16, 17, 1000, 28_800, 131_072] {
                let (chunk, splits) = weight_splits(tiles, r);
                assert_eq!(chunk % TILE_K, 0);
                assert!(
                    chunk * splits >= r && chunk * (splits - 1) < r,
                    "{tiles} {r}"
                );
            }
        }
    }
}
