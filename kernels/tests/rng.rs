//! The counter-based generators and the direction stream: Random123 known answers,
//! mulhi32 on the GPU, WGSL stream == native stream, float accuracy and moments.

use proptest::prelude::*;
use rbd_kernels::rng::gpu::{
    map_cpu, map_gpu, mulhi_gpu, mulhi_gpu_with, stream_gpu, stream_gpu_with, Mulhi, StreamQuery,
};
use rbd_kernels::rng::map::{box_muller, ln_unit, sincos_turn, uniform_sym, unit_open0};
use rbd_kernels::rng::*;
use rbd_kernels::testing::{cases, cpu_adapter};

/// Largest WGSL-vs-native difference of a Gaussian value, in ulps of the larger
/// magnitude (uniform and Bernoulli values are bitwise equal).
const GPU_GAUSS_ULPS: f64 = 8.0;
/// Largest difference of the native Gaussian from f64 Box–Muller of the same words, in
/// ulps of max(|z|, 2^-20) (ln, sin and cos are polynomial approximations).
const NATIVE_GAUSS_ULPS: f64 = 6.0;

fn ulps(a: f32, b: f32, floor: f32) -> f64 {
    let m = a.abs().max(b.abs()).max(floor);
    let ulp = f32::from_bits(m.to_bits() & 0x7f80_0000) as f64 * f64::powi(2.0, -23);
    (a as f64 - b as f64).abs() / ulp
}

/// Random123 `kat_vectors` (philox4x32 10 and threefry2x32 20 lines).
#[test]
fn known_answers() {
    let philox: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0; 4],
            [0; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in philox {
        assert_eq!(philox4x32_10(ctr, key), want, "philox {ctr:x?} {key:x?}");
    }
    let threefry: [([u32; 2], [u32; 2], [u32; 2]); 3] = [
        ([0; 2], [0; 2], [0x6b200159, 0x99ba4efe]),
        ([u32::MAX; 2], [u32::MAX; 2], [0x1cb996fc, 0xbb002be7]),
        (
            [0x243f6a88, 0x85a308d3],
            [0x13198a2e, 0x03707344],
            [0xc4923a9c, 0x483df7a0],
        ),
    ];
    for (ctr, key, want) in threefry {
        assert_eq!(
            threefry2x32_20(ctr, key),
            want,
            "threefry {ctr:x?} {key:x?}"
        );
    }
    // Other round counts of the same file, as a check of the round structure.
    assert_eq!(
        philox4x32_r(7, [0; 4], [0; 2]),
        [0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48]
    );
    assert_eq!(threefry2x32_r(13, [0; 2], [0; 2]), [0x9d1c5ec6, 0x8bd50731]);
    assert_eq!(threefry2x32_r(32, [0; 2], [0; 2]), [0xcee3d47e, 0xa23dfd5c]);
}

/// The KATs through the WGSL: the stream's first entries with the KAT counters are the
/// KAT outputs (Philox seed 0, step 0, compartment 0 → counter (0, 0, 0, 0)).
#[test]
fn known_answers_on_the_gpu() {
    let ctx = cpu_adapter();
    let q: Vec<StreamQuery> = (0..4)
        .map(|e| StreamQuery {
            seed: 0,
            step: 0,
            compartment: 0,
            direction: 0,
            element: e,
        })
        .collect();
    let got = stream_gpu(&ctx, Generator::Philox, Distribution::Uniform, &q).unwrap();
    let words: Vec<u32> = got.iter().map(|w| w.0).collect();
    assert_eq!(words, [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    // The pi-digits vector: counter (block, direction, compartment, step), key = seed.
    let q: Vec<StreamQuery> = (0..4)
        .map(|i| StreamQuery {
            seed: 0x299f31d0_a4093822,
            step: 0x03707344,
            compartment: 0x13198a2e,
            direction: 0x85a308d3,
            element: 4 * 0x243f6a88 + i,
        })
        .collect();
    let got = stream_gpu(&ctx, Generator::Philox, Distribution::Uniform, &q).unwrap();
    let words: Vec<u32> = got.iter().map(|w| w.0).collect();
    assert_eq!(words, [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
}

fn edge_values() -> Vec<u32> {
    let mut v = vec![
        0,
        1,
        2,
        3,
        0x7FFF,
        0x8000,
        0xFFFE,
        0xFFFF,
        0x10000,
        0x10001,
        0x1FFFF,
        0xFFFF_0000,
        0xFFFF_0001,
        0x7FFF_FFFF,
        0x8000_0000,
        0x8000_0001,
        0xFFFF_FFFE,
        0xFFFF_FFFF,
        PHILOX_M0,
        PHILOX_M1,
        0xAAAA_AAAA,
        0x5555_5555,
    ];
    let mut x = 0x1234_5678u32;
    for _ in 0..42 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x);
    }
    v
}

#[test]
fn mulhi_from_partial_products_is_exact_natively() {
    let v = edge_values();
    for &a in &v {
        for &b in &v {
            assert_eq!(mulhi32_parts(a, b), mulhilo32(a, b).0, "{a:#x} * {b:#x}");
        }
    }
}

#[test]
fn mulhi_on_the_gpu_matches_u64_math() {
    let v = edge_values();
    let pairs: Vec<(u32, u32)> = v
        .iter()
        .flat_map(|&a| v.iter().map(move |&b| (a, b)))
        .collect();
    let got = mulhi_gpu(&cpu_adapter(), &pairs).unwrap();
    for (&(a, b), &(hi, lo)) in pairs.iter().zip(&got) {
        let p = a as u64 * b as u64;
        assert_eq!((hi, lo), ((p >> 32) as u32, p as u32), "{a:#x} * {b:#x}");
    }
}

/// The `mulhi32` variants this adapter can run (the native one needs SHADER_INT64).
fn mulhi_variants(ctx: &rbd_kernels::GpuContext) -> Vec<Mulhi> {
    if ctx.has_int64() {
        vec![Mulhi::Emulated, Mulhi::Native64]
    } else {
        eprintln!(
            "note: {} lacks SHADER_INT64; the native 64-bit mulhi is not tested",
            ctx.describe()
        );
        vec![Mulhi::Emulated]
    }
}

#[test]
fn both_mulhi_variants_give_the_same_words_bit_for_bit() {
    let ctx = cpu_adapter();
    let v = edge_values();
    let pairs: Vec<(u32, u32)> = v
        .iter()
        .flat_map(|&a| v.iter().map(move |&b| (a, b)))
        .collect();
    let queries: Vec<StreamQuery> = (0..2000u32)
        .map(|i| StreamQuery {
            seed: 0x0123_4567_89ab_cdef ^ (i as u64) << 40,
            step: i.wrapping_mul(2_654_435_761),
            compartment: i % 7,
            direction: i.wrapping_mul(40_503),
            element: i.wrapping_mul(69_069) ^ 0xffff_0000,
        })
        .collect();
    let variants = mulhi_variants(&ctx);
    for &m in &variants {
        let got = mulhi_gpu_with(&ctx, m, &pairs).unwrap();
        for (&(a, b), &(hi, lo)) in pairs.iter().zip(&got) {
            let p = a as u64 * b as u64;
            assert_eq!(
                (hi, lo),
                ((p >> 32) as u32, p as u32),
                "{m:?}: {a:#x} * {b:#x}"
            );
        }
    }
    let words = |m| {
        stream_gpu_with(&ctx, m, Generator::Philox, Distribution::Gaussian, &queries)
            .unwrap()
            .iter()
            .map(|&(w, x)| (w, x.to_bits()))
            .collect::<Vec<_>>()
    };
    let emulated = words(Mulhi::Emulated);
    // The emulation against the native Rust stream.
    let native_rust: Vec<u32> = queries
        .iter()
        .map(|q| {
            let s = Stream {
                generator: Generator::Philox,
                distribution: Distribution::Gaussian,
                seed: q.seed,
            };
            s.word(q.step as u64, q.compartment, q.direction, q.element)
        })
        .collect();
    assert_eq!(
        emulated.iter().map(|w| w.0).collect::<Vec<_>>(),
        native_rust
    );
    if variants.contains(&Mulhi::Native64) {
        assert_eq!(
            words(Mulhi::Native64),
            emulated,
            "native vs emulated Philox"
        );
    }
}

fn all_distributions() -> [Distribution; 7] {
    [
        Distribution::Gaussian,
        Distribution::Uniform,
        Distribution::Bernoulli { p: 0.5 },
        Distribution::Bernoulli { p: 0.1 },
        Distribution::BernoulliReleased { p: 0.5 },
        Distribution::BernoulliReleased { p: 0.1 },
        Distribution::Rademacher,
    ]
}

fn check_stream_on_gpu(queries: &[StreamQuery]) {
    let ctx = cpu_adapter();
    for generator in [Generator::Philox, Generator::Threefry] {
        for distribution in all_distributions() {
            let got = stream_gpu(&ctx, generator, distribution, queries).unwrap();
            for (q, &(word, value)) in queries.iter().zip(&got) {
                let s = Stream {
                    generator,
                    distribution,
                    seed: q.seed,
                };
                let step = q.step as u64;
                // Packed signs: the word holding the entry's bit.
                let index = q.element / distribution.entries_per_word() as u32;
                let want_w = s.word(step, q.compartment, q.direction, index);
                assert_eq!(word, want_w, "{generator:?} word of {q:?}");
                let want = s.sample(step, q.compartment, q.direction, q.element);
                if distribution == Distribution::Gaussian {
                    let u = ulps(value, want, f32::MIN_POSITIVE);
                    assert!(
                        u <= GPU_GAUSS_ULPS,
                        "{q:?}: gpu {value} native {want} ({u} ulps)"
                    );
                } else {
                    assert_eq!(value.to_bits(), want.to_bits(), "{distribution:?} {q:?}");
                }
            }
        }
    }
}

#[test]
fn wgsl_stream_equals_native_stream_on_edge_tuples() {
    let mut q = Vec::new();
    for seed in [0u64, 1, u64::MAX, 0x0123_4567_89AB_CDEF] {
        for step in [0u32, 1, u32::MAX] {
            for compartment in [0u32, 7, u32::MAX] {
                for direction in [0u32, 1, 9999, u32::MAX] {
                    for element in [0u32, 1, 2, 3, 4, 5, 122_569, u32::MAX - 1, u32::MAX] {
                        q.push(StreamQuery {
                            seed,
                            step,
                            compartment,
                            direction,
                            element,
                        });
                    }
                }
            }
        }
    }
    check_stream_on_gpu(&q);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(16)))]
    #[test]
    fn wgsl_stream_equals_native_stream(
        tuples in prop::collection::vec((any::<u64>(), any::<u32>(), 0u32..64, any::<u32>(), any::<u32>()), 256)
    ) {
        let q: Vec<StreamQuery> = tuples
            .iter()
            .map(|&(seed, step, compartment, direction, element)| StreamQuery { seed, step, compartment, direction, element })
            .collect();
        check_stream_on_gpu(&q);
    }
}

fn edge_words() -> Vec<[u32; 4]> {
    let v = edge_values();
    let mut w: Vec<[u32; 4]> = v
        .iter()
        .flat_map(|&a| v.iter().map(move |&b| [a, b, b, a]))
        .collect();
    // Every quadrant boundary and offset extreme of the angle word, radius extremes.
    for t in [
        0u32,
        1,
        (1 << 21) - 1,
        1 << 21,
        (1 << 22) - 1,
        1 << 22,
        3 << 21,
        (1 << 24) - 1,
    ] {
        for a in [0u32, 0xFF, 0x100, 0xFFFF_FF00, 0xFFFF_FFFF] {
            w.push([a, t << 8, a, (t << 8) | 0xFF]);
        }
    }
    w
}

#[test]
fn maps_are_finite_at_the_extremes_on_both_backends() {
    let ctx = cpu_adapter();
    let words = edge_words();
    // Packed signs hold 32 entries a word: the stream tests cover them.
    for d in all_distributions()
        .into_iter()
        .filter(|&d| d != Distribution::Rademacher)
    {
        let native = map_cpu(d, &words);
        let gpu = map_gpu(&ctx, d, &words).unwrap();
        let mut worst = 0f64;
        for ((w, n), g) in words.iter().zip(&native).zip(&gpu) {
            for i in 0..4 {
                assert!(
                    n[i].is_finite() && g[i].is_finite(),
                    "{d:?} {w:x?}: {n:?} {g:?}"
                );
                assert!(n[i].abs() <= 5.8, "{d:?} {w:x?}: {n:?}");
                if d == Distribution::Gaussian {
                    worst = worst.max(ulps(n[i], g[i], f32::MIN_POSITIVE));
                } else {
                    assert_eq!(n[i].to_bits(), g[i].to_bits(), "{d:?} {w:x?}");
                }
            }
        }
        assert!(worst <= GPU_GAUSS_ULPS, "{d:?}: {worst} ulps");
        eprintln!("{d:?}: largest WGSL-vs-native difference {worst} ulps");
    }
    // u32 = 0 and u32::MAX: radius words give the largest and the zero radius.
    let (z0, z1) = box_muller(0, 0);
    assert!((z0 - (48.0f32 * std::f32::consts::LN_2).sqrt()).abs() < 1e-5 && z1 == 0.0);
    let (z0, z1) = box_muller(u32::MAX, u32::MAX);
    assert!(z0 == 0.0 && z1 == 0.0);
}

#[test]
fn uniform_and_bernoulli_maps_are_exact() {
    assert_eq!(uniform_sym(0), -1.0 + f32::powi(2.0, -24));
    assert_eq!(uniform_sym(u32::MAX), 1.0 - f32::powi(2.0, -24));
    assert_eq!(uniform_sym(0x8000_0000), f32::powi(2.0, -24));
    assert_eq!(uniform_sym(0x7FFF_FFFF), -f32::powi(2.0, -24));
    assert_eq!(unit_open0(0), f32::powi(2.0, -24));
    assert_eq!(unit_open0(u32::MAX), 1.0);
    let p = DistParams::bernoulli(0.5);
    assert_eq!((p.threshold, p.hi, p.lo), (1 << 31, 1.0, -1.0));
    let p = DistParams::bernoulli(0.2);
    assert!((p.hi - 2.0).abs() < 1e-6 && (p.lo + 0.5).abs() < 1e-6);
    // The released code's Bernoulli-0.5: +0.5 with probability 1/2 (word < 2^31),
    // else −1.5, exactly.
    let r = Distribution::BernoulliReleased { p: 0.5 }.params();
    assert_eq!((r.threshold, r.hi, r.lo), (1 << 31, 0.5, -1.5));
    let r = DistParams::bernoulli_released(0.25);
    assert_eq!((r.threshold, r.hi, r.lo), (1 << 30, 0.75, -1.25));
}

/// The native Gaussian against f64 Box–Muller of the same two words, over every angle
/// at 2^8 spacing and a sweep of radius words (including both extremes).
#[test]
fn native_gaussian_is_accurate() {
    let mut worst: (f64, u32, u32) = (0.0, 0, 0);
    let mut worst_ln = 0f64;
    let radius: Vec<u32> = (0..4096u32)
        .map(|i| i.wrapping_mul(0x0010_0101) | (i & 0xFF))
        .chain([0, 0xFF, 0x100, 0xFFFF_FE00, 0xFFFF_FF00, u32::MAX])
        .collect();
    for (i, &a) in radius.iter().enumerate() {
        let u = unit_open0(a);
        let ln = ln_unit(u);
        worst_ln = worst_ln.max(ulps(ln, (u as f64).ln() as f32, f32::MIN_POSITIVE));
        let r = (-2.0 * (u as f64).ln()).sqrt();
        for t in (0..1u32 << 24)
            .step_by(1 << 8)
            .map(|t| (t + i as u32 * 37) & 0xFF_FFFF)
        {
            let b = t << 8;
            let (z0, z1) = box_muller(a, b);
            let th = std::f64::consts::TAU * t as f64 / 16_777_216.0;
            let floor = f32::powi(2.0, -20);
            for (z, want) in [(z0, r * th.cos()), (z1, r * th.sin())] {
                let e = ulps(z, want as f32, floor.max(r as f32 * 1e-7));
                if e > worst.0 {
                    worst = (e, a, b);
                }
            }
        }
    }
    eprintln!("ln: {worst_ln} ulps; box-muller: {worst:?}");
    assert!(worst_ln <= 1.0, "ln: {worst_ln} ulps");
    assert!(worst.0 <= NATIVE_GAUSS_ULPS, "box-muller: {worst:?}");
    let (s, c) = sincos_turn(0);
    assert_eq!((s, c), (0.0, 1.0));
}

fn moments(s: &Stream, n: usize) -> (f64, f64) {
    use rbd_kernels::random_bases::{generate_cpu, Bases, Compartment};
    let comp = Compartment::new(3, 0, n / 4, 4);
    let mut v = vec![0f32; n];
    generate_cpu(&Bases::new(*s, 11, &[comp], 1.0), &mut v);
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    (mean, var)
}

#[test]
fn distribution_moments() {
    let n = 1 << 20;
    // Standard error of the mean ~ 1e-3 for unit variance; of the variance ~ 1.4e-3.
    for generator in [Generator::Philox, Generator::Threefry] {
        // The released Bernoulli(p) is 2b − 1 − p: mean −(1 − p), variance 4p(1 − p).
        for (distribution, want_mean, want_var) in [
            (Distribution::Gaussian, 0.0, 1.0),
            (Distribution::Uniform, 0.0, 1.0 / 3.0),
            (Distribution::Bernoulli { p: 0.5 }, 0.0, 1.0),
            (Distribution::Bernoulli { p: 0.1 }, 0.0, 1.0),
            (Distribution::BernoulliReleased { p: 0.5 }, -0.5, 1.0),
            (Distribution::BernoulliReleased { p: 0.1 }, -0.9, 0.36),
        ] {
            let s = Stream {
                generator,
                distribution,
                seed: 7,
            };
            let (mean, var) = moments(&s, n);
            eprintln!("{generator:?} {distribution:?}: mean {mean:.5} var {var:.5}");
            assert!(
                (mean - want_mean).abs() < 5e-3,
                "{generator:?} {distribution:?}: mean {mean}"
            );
            assert!(
                (var - want_var).abs() < 1e-2 * want_var,
                "{generator:?} {distribution:?}: var {var}"
            );
        }
    }
}

/// The vectorised stream (generate_cpu) equals the scalar reference bit for bit.
#[test]
fn vectorised_stream_equals_scalar_reference() {
    use rbd_kernels::random_bases::{generate_cpu, Bases, Compartment};
    for generator in [Generator::Philox, Generator::Threefry] {
        for distribution in all_distributions() {
            let s = Stream {
                generator,
                distribution,
                seed: 0xDEAD_BEEF_0000_0001,
            };
            let comp = Compartment::new(5, 0, 333, 3).window(1000, 3);
            let mut v = vec![0f32; 999];
            generate_cpu(&Bases::new(s, 77, &[comp], 1.0), &mut v);
            for j in 0..3 {
                for e in 0..333 {
                    let want = s.sample(77, 5, 1000 + j as u32, e as u32);
                    assert_eq!(
                        v[j * 333 + e].to_bits(),
                        want.to_bits(),
                        "{s:?} dir {j} elem {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn stream_words_are_distinct_across_the_key_fields() {
    let s = Stream::new(1);
    let base = s.word(5, 2, 3, 4);
    assert_ne!(base, s.word(6, 2, 3, 4));
    assert_ne!(base, s.word(5, 3, 3, 4));
    assert_ne!(base, s.word(5, 2, 4, 4));
    assert_ne!(base, Stream::new(2).word(5, 2, 3, 4));
    assert_eq!(Generator::default(), Generator::Threefry);
}

/// Values computed by the NumPy reference in `docs/random-directions.md` (float32
/// arithmetic, no FMA): the native stream matches it bit for bit. Stream seed
/// 0x0123456789ABCDEF, step 7, compartment 2, direction 5, a 1003-entry compartment.
#[test]
fn native_stream_equals_the_numpy_reference() {
    use rbd_kernels::random_bases::{generate_cpu, Bases, Compartment};
    // (generator, distribution, entries 0..8 then 1001, 1002 as f32 bits)
    let golden: [(Generator, Distribution, [u32; 10]); 12] = [
        (
            Generator::Philox,
            Distribution::Gaussian,
            [
                0x3f38092c, 0x3dcc4968, 0x3f062f23, 0xbf1be808, 0x3fc92b0f, 0xbe0364cd, 0xbfabcc93,
                0xbf375dd4, 0x3f40ff81, 0xc007168c,
            ],
        ),
        (
            Generator::Philox,
            Distribution::Uniform,
            [
                0x3f09729f, 0xbf74c3d5, 0x3ee57c42, 0x3f39e8d7, 0xbed8a0da, 0x3f795c9d, 0xbebe1b2a,
                0x3e1fc91c, 0xbe520f1c, 0xbf6b8687,
            ],
        ),
        (
            Generator::Philox,
            Distribution::Bernoulli { p: 0.5 },
            [
                0xbf800000, 0x3f800000, 0xbf800000, 0xbf800000, 0x3f800000, 0xbf800000, 0x3f800000,
                0xbf800000, 0x3f800000, 0x3f800000,
            ],
        ),
        (
            Generator::Philox,
            Distribution::Bernoulli { p: 0.3 },
            [
                0xbf279762, 0x3fc385f2, 0xbf279762, 0xbf279762, 0x3fc385f2, 0xbf279762, 0xbf279762,
                0xbf279762, 0xbf279762, 0x3fc385f2,
            ],
        ),
        (
            Generator::Threefry,
            Distribution::Gaussian,
            [
                0x3fefb7bd, 0x3faa8615, 0x3ee86bf6, 0xbf433da7, 0xbecc0f8e, 0xbf417aef, 0xbe80c1d7,
                0xbf8341ec, 0xc00d0aa6, 0xbe9bd5d2,
            ],
        ),
        (
            Generator::Threefry,
            Distribution::Uniform,
            [
                0xbf5b80a5, 0xbf4d9db3, 0x3eb2a2b6, 0x3f2bc00f, 0x3ec6d69a, 0x3eb0e952, 0x3e14e38c,
                0x3ed8ce56, 0x3f279e81, 0x3f56b293,
            ],
        ),
        (
            Generator::Threefry,
            Distribution::Bernoulli { p: 0.5 },
            [
                0x3f800000, 0x3f800000, 0xbf800000, 0xbf800000, 0xbf800000, 0xbf800000, 0xbf800000,
                0xbf800000, 0xbf800000, 0xbf800000,
            ],
        ),
        (
            Generator::Threefry,
            Distribution::Bernoulli { p: 0.3 },
            [
                0x3fc385f2, 0x3fc385f2, 0xbf279762, 0xbf279762, 0xbf279762, 0xbf279762, 0xbf279762,
                0xbf279762, 0xbf279762, 0xbf279762,
            ],
        ),
        // The released code's Bernoulli: the same words and thresholds as the zero-mean
        // one above, values 1 − p and −1 − p.
        (
            Generator::Philox,
            Distribution::BernoulliReleased { p: 0.5 },
            [
                0xbfc00000, 0x3f000000, 0xbfc00000, 0xbfc00000, 0x3f000000, 0xbfc00000, 0x3f000000,
                0xbfc00000, 0x3f000000, 0x3f000000,
            ],
        ),
        (
            Generator::Philox,
            Distribution::BernoulliReleased { p: 0.3 },
            [
                0xbfa66666, 0x3f333333, 0xbfa66666, 0xbfa66666, 0x3f333333, 0xbfa66666, 0xbfa66666,
                0xbfa66666, 0xbfa66666, 0x3f333333,
            ],
        ),
        (
            Generator::Threefry,
            Distribution::BernoulliReleased { p: 0.5 },
            [
                0x3f000000, 0x3f000000, 0xbfc00000, 0xbfc00000, 0xbfc00000, 0xbfc00000, 0xbfc00000,
                0xbfc00000, 0xbfc00000, 0xbfc00000,
            ],
        ),
        (
            Generator::Threefry,
            Distribution::BernoulliReleased { p: 0.3 },
            [
                0x3f333333, 0x3f333333, 0xbfa66666, 0xbfa66666, 0xbfa66666, 0xbfa66666, 0xbfa66666,
                0xbfa66666, 0xbfa66666, 0xbfa66666,
            ],
        ),
    ];
    for (generator, distribution, want) in golden {
        let s = Stream {
            generator,
            distribution,
            seed: 0x0123_4567_89AB_CDEF,
        };
        let comp = Compartment::new(2, 0, 1003, 1).window(5, 1);
        let mut v = vec![0f32; 1003];
        generate_cpu(&Bases::new(s, 7, &[comp], 1.0), &mut v);
        let got: Vec<u32> = (0..8).chain([1001, 1002]).map(|e| v[e].to_bits()).collect();
        assert_eq!(got, want, "{generator:?} {distribution:?}");
    }
    // The docs' example: default stream, seed 42, RBD scale of D = 122,570.
    use rbd_kernels::random_bases::rbd_scale;
    let mut v = vec![0f32; 4];
    let comp = Compartment::new(0, 0, 4, 1);
    generate_cpu(
        &Bases::new(Stream::new(42), 0, &[comp], rbd_scale(122_570)),
        &mut v,
    );
    let bits: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
    assert_eq!(bits, [3135528389, 991104835, 980907858, 999275161]);
}

/// erfc(x) for x ≥ 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2·10^−7:
/// far below the KS and tail tolerances it serves).
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Φ, the N(0, 1) distribution function.
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// `n` Gaussian entries of 64 directions of one (step, compartment).
fn gaussian_sample(generator: Generator, n: usize) -> Vec<f32> {
    use rbd_kernels::random_bases::{generate_cpu, Bases, Compartment};
    let s = Stream {
        generator,
        distribution: Distribution::Gaussian,
        seed: 2020,
    };
    let comp = Compartment::new(1, 0, n / 64, 64);
    let mut v = vec![0f32; n];
    generate_cpu(&Bases::new(s, 5, &[comp], 1.0), &mut v);
    v
}

/// The Gaussian's quality as a sample of N(0, 1), for both generators: skewness and
/// excess kurtosis within 5 standard errors of 0, a Kolmogorov–Smirnov statistic below
/// the 0.1% critical value, and the two-sided tail P(|z| > k) for k = 1 … 5 within 5
/// binomial standard errors of 2(1 − Φ(k)). A wrong polynomial constant, a quadrant
/// slip in sincos or a biased radius word fails one of these.
#[test]
fn gaussian_matches_the_standard_normal() {
    for generator in [Generator::Philox, Generator::Threefry] {
        let n = 1usize << 24;
        let mut v = gaussian_sample(generator, n);
        let nf = n as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / nf;
        let m = |p: i32| v.iter().map(|&x| (x as f64 - mean).powi(p)).sum::<f64>() / nf;
        let (m2, m3, m4) = (m(2), m(3), m(4));
        let skew = m3 / m2.powf(1.5);
        let kurt = m4 / (m2 * m2) - 3.0;
        v.sort_unstable_by(f32::total_cmp);
        let mut ks = 0f64;
        for (i, &x) in v.iter().enumerate() {
            let f = normal_cdf(x as f64);
            ks = ks.max((f - i as f64 / nf).max((i + 1) as f64 / nf - f));
        }
        // Kolmogorov's distribution: P(√n·D > 1.949) = 0.001.
        let ks_critical = 1.949 / nf.sqrt();
        eprintln!(
            "{generator:?}: n = 2^24, mean {mean:.2e}, variance {m2:.6}, skewness {skew:.2e}, \
             excess kurtosis {kurt:.2e}, KS D = {ks:.2e} (0.1% critical {ks_critical:.2e})"
        );
        assert!(
            skew.abs() < 5.0 * (6.0 / nf).sqrt(),
            "{generator:?}: skew {skew}"
        );
        assert!(
            kurt.abs() < 5.0 * (24.0 / nf).sqrt(),
            "{generator:?}: kurt {kurt}"
        );
        assert!(ks < ks_critical, "{generator:?}: KS D = {ks}");

        // Tails need more entries: 2^26 gives ≈ 38 beyond 5σ.
        let n = 1usize << 26;
        let v = gaussian_sample(generator, n);
        for k in 1..=5 {
            let count = v.iter().filter(|x| x.abs() > k as f32).count() as f64;
            let p = erfc(k as f64 / std::f64::consts::SQRT_2);
            let expected = n as f64 * p;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            eprintln!(
                "{generator:?}: P(|z| > {k}) = {:.3e} (N(0,1): {p:.3e}; {count} of 2^26, {:+.1} sd)",
                count / n as f64,
                (count - expected) / sd
            );
            assert!(
                (count - expected).abs() < 5.0 * sd,
                "{generator:?}: {count} beyond {k}σ, expected {expected:.1} ± {sd:.1}"
            );
        }
        let max = v.iter().fold(0f32, |a, &x| a.max(x.abs()));
        assert!(max <= 5.78, "{generator:?}: |z| up to {max}");
    }
}

/// Packed signs bit for bit as the NumPy reference of docs/random-directions.md §12
/// computes them (values printed by that code): entry e is bit e % 32 of word e / 32,
/// across word and block boundaries (entries 31/32, 127/128: Philox blocks hold 128
/// entries, Threefry blocks 64), for both generators; and the docs' example.
#[test]
fn packed_signs_equal_the_numpy_reference() {
    use rbd_kernels::random_bases::{generate_cpu, rbd_scale, Bases, Compartment};
    let entries = [0, 1, 2, 3, 30, 31, 32, 33, 127, 128, 129, 1001, 1002];
    let (p, m) = (0x3f80_0000u32, 0xbf80_0000u32);
    let golden = [
        (Generator::Philox, [m, m, m, p, m, m, p, p, m, p, p, m, p]),
        (Generator::Threefry, [p, p, p, p, p, p, m, p, m, m, p, m, p]),
    ];
    for (generator, want) in golden {
        let s = Stream {
            generator,
            distribution: Distribution::Rademacher,
            seed: 0x0123_4567_89AB_CDEF,
        };
        let comp = Compartment::new(2, 0, 1003, 1).window(5, 1);
        let mut v = vec![0f32; 1003];
        generate_cpu(&Bases::new(s, 7, &[comp], 1.0), &mut v);
        let got: Vec<u32> = entries.iter().map(|&e| v[e].to_bits()).collect();
        assert_eq!(got, want, "{generator:?}");
        for &e in &entries {
            assert_eq!(s.sample(7, 2, 5, e as u32).to_bits(), v[e].to_bits());
        }
    }
    // The docs' example: seed 42, step 0, compartment 0, direction 0, RBD scale of
    // D = 122,570; word 0 is 0x9c1bc7e0 (Threefry) and 0x9ceaf053 (Philox).
    let example = |generator| {
        let s = Stream {
            generator,
            distribution: Distribution::Rademacher,
            seed: 42,
        };
        let mut v = vec![0f32; 8];
        let comp = [Compartment::new(0, 0, 8, 1)];
        generate_cpu(&Bases::new(s, 0, &comp, rbd_scale(122_570)), &mut v);
        let word = Stream {
            distribution: Distribution::Gaussian,
            ..s
        }
        .word(0, 0, 0, 0);
        (word, v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
    };
    let (p, m) = (0x3b3b_3137u32, 0xbb3b_3137u32);
    assert_eq!(
        example(Generator::Threefry),
        (0x9c1b_c7e0, vec![p, p, p, p, p, m, m, m])
    );
    assert_eq!(
        example(Generator::Philox),
        (0x9cea_f053, vec![m, m, p, p, m, p, m, p])
    );
}
