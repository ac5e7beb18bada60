//! Properties of preprocessing and augmentation of single images.

mod common;

use proptest::prelude::*;
use rbd_datasets::rng::augment_rng;
use rbd_datasets::*;

/// Reference crop: materialise the zero-padded image, then cut the window.
fn reference_crop(
    src: &[f32],
    (c, h, w): (usize, usize, usize),
    pad: usize,
    dy: usize,
    dx: usize,
) -> Vec<f32> {
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut padded = vec![0.0f32; c * ph * pw];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                padded[ch * ph * pw + (y + pad) * pw + x + pad] = src[ch * h * w + y * w + x];
            }
        }
    }
    let mut out = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                out.push(padded[ch * ph * pw + (y + dy) * pw + x + dx]);
            }
        }
    }
    out
}

fn image_strategy() -> impl Strategy<Value = ((usize, usize, usize), usize, Vec<f32>)> {
    (1usize..=3, 1usize..=9, 1usize..=9, 0usize..=5).prop_flat_map(|(c, h, w, pad)| {
        (
            Just((c, h, w)),
            Just(pad),
            prop::collection::vec(-10.0f32..10.0, c * h * w),
        )
    })
}

proptest! {
    #[test]
    fn crop_is_a_shifted_window_with_zeros_outside(
        (shape, pad, src) in image_strategy(), dy_frac in 0.0f64..1.0, dx_frac in 0.0f64..1.0,
    ) {
        let dy = ((2 * pad + 1) as f64 * dy_frac) as usize;
        let dx = ((2 * pad + 1) as f64 * dx_frac) as usize;
        let params = AugParams { dy, dx, flip: false, delta: 0.0 };
        let mut out = vec![f32::NAN; src.len()];
        augment_image(&src, shape, pad, &params, &mut out);
        prop_assert_eq!(&out, &reference_crop(&src, shape, pad, dy, dx));
        // Centre crop is the identity.
        augment_image(&src, shape, pad, &AugParams::identity(pad), &mut out);
        prop_assert_eq!(&out, &src);
    }

    #[test]
    fn flip_is_an_exact_mirror((shape, pad, src) in image_strategy(), dy_frac in 0.0f64..1.0, dx_frac in 0.0f64..1.0) {
        let (c, h, w) = shape;
        let dy = ((2 * pad + 1) as f64 * dy_frac) as usize;
        let dx = ((2 * pad + 1) as f64 * dx_frac) as usize;
        let mut plain = vec![0.0; src.len()];
        let mut flipped = vec![0.0; src.len()];
        augment_image(&src, shape, pad, &AugParams { dy, dx, flip: false, delta: 0.0 }, &mut plain);
        augment_image(&src, shape, pad, &AugParams { dy, dx, flip: true, delta: 0.0 }, &mut flipped);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let i = ch * h * w + y * w;
                    prop_assert_eq!(flipped[i + x], plain[i + w - 1 - x]);
                }
            }
        }
    }

    #[test]
    fn brightness_adds_one_constant_per_image(
        (shape, pad, src) in image_strategy(), delta in -0.5f32..=0.5, dy_frac in 0.0f64..1.0,
    ) {
        let dy = ((2 * pad + 1) as f64 * dy_frac) as usize;
        let mut base = vec![0.0; src.len()];
        let mut bright = vec![0.0; src.len()];
        augment_image(&src, shape, pad, &AugParams { dy, dx: 0, flip: false, delta: 0.0 }, &mut base);
        augment_image(&src, shape, pad, &AugParams { dy, dx: 0, flip: false, delta }, &mut bright);
        for (b, o) in base.iter().zip(&bright) {
            prop_assert_eq!(*o, *b + delta);
        }
    }

    #[test]
    fn drawn_parameters_are_within_bounds(seed: u64, epoch in 0u64..1000, batch in 0u64..5000) {
        let mut rng = augment_rng(seed, epoch, batch);
        for _ in 0..32 {
            let m = Augmentation::MNIST.draw(&mut rng);
            prop_assert!(m.dy <= 6 && m.dx <= 6);
            prop_assert!(!m.flip);
            prop_assert!((-0.5..=0.5).contains(&m.delta));
            let c = Augmentation::CIFAR10.draw(&mut rng);
            prop_assert!(c.dy <= 8 && c.dx <= 8);
            prop_assert_eq!(c.delta, 0.0);
            prop_assert_eq!(Augmentation::NONE.draw(&mut rng), AugParams { dy: 0, dx: 0, flip: false, delta: 0.0 });
        }
    }

    #[test]
    fn standardised_images_have_mean_0_and_std_1(src in prop::collection::vec(any::<u8>(), 3072)) {
        let mut x = vec![0.0f32; src.len()];
        Preprocess::CIFAR10.apply(&src, &mut x);
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        prop_assert!(mean.abs() < 1e-5, "mean {}", mean);
        prop_assert!((std - 1.0).abs() < 1e-4, "std {}", std);
    }

    #[test]
    fn scaling_divides_by_255(src in prop::collection::vec(any::<u8>(), 1..100)) {
        let mut x = vec![0.0f32; src.len()];
        Preprocess::SCALE_ONLY.apply(&src, &mut x);
        for (&s, &v) in src.iter().zip(&x) {
            prop_assert_eq!(v, s as f32 / 255.0);
        }
    }
}

#[test]
fn brightness_and_flip_frequencies_look_uniform() {
    let mut rng = augment_rng(7, 0, 0);
    let (mut flips, mut pos, mut lo, mut hi, mut crops) = (0, 0, 0.0f32, 0.0f32, [0usize; 9]);
    for _ in 0..20_000 {
        let c = Augmentation::CIFAR10.draw(&mut rng);
        flips += c.flip as usize;
        crops[c.dx] += 1;
        let m = Augmentation::MNIST.draw(&mut rng);
        pos += (m.delta > 0.0) as usize;
        lo = lo.min(m.delta);
        hi = hi.max(m.delta);
    }
    assert!((9_500..10_500).contains(&flips), "{flips}");
    assert!((9_500..10_500).contains(&pos), "{pos}");
    assert!(lo < -0.49 && hi > 0.49, "{lo} {hi}");
    for c in crops {
        assert!((1_900..2_550).contains(&c), "{crops:?}");
    }
}

#[test]
fn low_contrast_images_use_the_minimum_std() {
    // A constant image stays all zeros; an almost constant one is scaled by √N, not 1/std.
    let mut x = vec![0.5f32; 3072];
    standardise(&mut x);
    assert!(x.iter().all(|&v| v == 0.0));
    let mut x = vec![0.0f32; 3072];
    x[0] = 1.0 / 255.0;
    standardise(&mut x);
    let mean = 1.0 / 255.0 / 3072.0;
    let expected = (1.0 / 255.0 - mean) * (3072f64).sqrt();
    assert!(
        (x[0] as f64 - expected).abs() < 1e-4,
        "{} vs {expected}",
        x[0]
    );
}
