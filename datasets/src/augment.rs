//! Training-time augmentation: zero-pad + random crop, random horizontal flip and
//! random brightness, applied to one preprocessed `f32` image (CHW) at a time.

use rand_core::Rng;

use crate::kind::DatasetKind;
use crate::rng::{below, unit_f32};

/// Which random augmentations training images get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augmentation {
    /// Zero padding on each side before a random crop back to the original size
    /// (0 = no crop).
    pub pad: usize,
    /// Random horizontal flip with probability 0.5.
    pub flip: bool,
    /// Random brightness: one delta ~ Uniform[−b, b] added to every pixel of the image,
    /// without clipping (as `tf.image.random_brightness`); 0 = off.
    pub brightness: f32,
}

/// The random choices for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugParams {
    /// Row of the crop window in the padded image, `0..=2·pad`.
    pub dy: usize,
    /// Column of the crop window in the padded image, `0..=2·pad`.
    pub dx: usize,
    /// Whether to mirror the cropped image left–right.
    pub flip: bool,
    /// Constant added to every pixel.
    pub delta: f32,
}

impl Augmentation {
    /// No augmentation (evaluation).
    pub const NONE: Augmentation = Augmentation {
        pad: 0,
        flip: false,
        brightness: 0.0,
    };

    /// MNIST / Fashion-MNIST: pad to 34×34, random crop 28×28, brightness delta in
    /// [−0.5, 0.5].
    pub const MNIST: Augmentation = Augmentation {
        pad: 3,
        flip: false,
        brightness: 0.5,
    };

    /// CIFAR-10: pad to 40×40, random crop 32×32, random horizontal flip.
    pub const CIFAR10: Augmentation = Augmentation {
        pad: 4,
        flip: true,
        brightness: 0.0,
    };

    /// Whether this changes nothing.
    pub fn is_none(&self) -> bool {
        self.pad == 0 && !self.flip && self.brightness == 0.0
    }

    /// Draws the choices for one image, in a fixed order (crop row, crop column, flip,
    /// brightness), drawing nothing for a disabled augmentation.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> AugParams {
        let span = 2 * self.pad as u64 + 1;
        let (dy, dx) = if self.pad > 0 {
            (below(rng, span) as usize, below(rng, span) as usize)
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.next_u32() & 1 == 1;
        let delta = if self.brightness > 0.0 {
            (2.0 * unit_f32(rng) - 1.0) * self.brightness
        } else {
            0.0
        };
        AugParams {
            dy,
            dx,
            flip,
            delta,
        }
    }
}

impl Augmentation {
    /// The training augmentation of `kind`.
    pub fn for_kind(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Cifar10 => Augmentation::CIFAR10,
            DatasetKind::Mnist | DatasetKind::FashionMnist => Augmentation::MNIST,
        }
    }
}

impl AugParams {
    /// The identity: no shift, no flip, no brightness change (with `pad` = `dy` = `dx`).
    pub fn identity(pad: usize) -> Self {
        AugParams {
            dy: pad,
            dx: pad,
            flip: false,
            delta: 0.0,
        }
    }
}

/// Writes the augmented version of `src` (a `c × h × w` image) into `dst` (same shape):
/// the `h × w` window at (`dy`, `dx`) of `src` zero-padded by `pad` on every side,
/// mirrored left–right if `flip`, plus `delta` on every pixel.
pub fn augment_image(
    src: &[f32],
    (c, h, w): (usize, usize, usize),
    pad: usize,
    params: &AugParams,
    dst: &mut [f32],
) {
    debug_assert_eq!(src.len(), c * h * w);
    debug_assert_eq!(dst.len(), c * h * w);
    // Source coordinate of output (y, x) is (y + dy − pad, x' + dx − pad), x' the
    // possibly mirrored column; anything outside the image is padding (zero).
    let row_of = |y: usize| (y + params.dy).checked_sub(pad).filter(|&r| r < h);
    let col_of = |x: usize| {
        let x = if params.flip { w - 1 - x } else { x };
        (x + params.dx).checked_sub(pad).filter(|&c| c < w)
    };
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        let out = &mut dst[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            let out_row = &mut out[y * w..(y + 1) * w];
            match row_of(y) {
                None => out_row.fill(params.delta),
                Some(sy) => {
                    let src_row = &plane[sy * w..(sy + 1) * w];
                    for (x, o) in out_row.iter_mut().enumerate() {
                        *o = col_of(x).map_or(0.0, |sx| src_row[sx]) + params.delta;
                    }
                }
            }
        }
    }
}
