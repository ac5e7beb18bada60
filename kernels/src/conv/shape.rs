//! The shape of one 2-D convolution and its padding arithmetic (Keras/TF semantics).

use crate::GpuError;

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
    pub(crate) fn check(&self) -> Result<(), GpuError> {
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
    pub(crate) fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per image: oh·ow.
    pub(crate) fn p(&self) -> usize {
        self.oh * self.ow
    }
}
