//! Fastfood bases: the fast cpu transforms against the scalar reference (bitwise) and a
//! dense f64 matrix built from the same stream, adjointness, orthogonality within a
//! block, windows and compartments, determinism across threads and instruction sets,
//! the normalisation, and the NumPy reference's values.

use rbd_kernels::fastfood::*;
use rbd_kernels::random_bases::{rbd_scale, total_dims, Compartment, Simd};
use rbd_kernels::rng::{Distribution, Generator, Stream};
use rbd_kernels::testing::{self, xorshift_f32 as vector};

fn streams() -> Vec<Stream> {
    testing::streams(
        0x5EED_0000_0000_0042,
        &[
            Distribution::Gaussian,
            Distribution::Uniform,
            Distribution::Bernoulli { p: 0.5 },
        ],
    )
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn n_of(comps: &[Compartment]) -> usize {
    comps.iter().map(|c| c.offset + c.len).max().unwrap_or(0) + 3
}

/// Layouts with gaps, lengths that are not multiples of L, windows across groups.
fn layouts(dims: usize) -> Vec<Vec<Compartment>> {
    vec![
        Compartment::whole(1_000, dims),
        vec![
            Compartment::new(0, 5, 300, dims),
            Compartment::new(3, 311, 4_200, dims),
            Compartment::new(1, 4_600, 17, dims),
        ],
        // Directions 5 .. 5 + dims: windows that start inside group 0 and may cross.
        vec![Compartment::new(2, 0, 777, dims).window(5, dims)],
    ]
}

/// Project by the scalar reference, in the specified order (chunks of blocks).
fn project_reference(b: &FastfoodBases, g: &[f32]) -> Vec<f32> {
    let (ff, l) = (b.ff, b.ff.block());
    let m = entry_scale(ff, b.scale);
    let mut coords = Vec::new();
    for c in b.comps {
        let nb = ff.blocks(c.len);
        let mut sums = vec![0f32; c.dims];
        let mut chunk_sums = vec![vec![0f32; c.dims]; nb.div_ceil(ff.chunk_blocks())];
        for q in ff.groups(c) {
            for i in 0..nb {
                let p = block_params(b.stream, b.step, c.index, ff, q, i);
                let mut x = vec![0f32; l];
                let rows = l.min(c.len - i * l);
                x[..rows].copy_from_slice(&g[c.offset + i * l..][..rows]);
                transpose_block(&p, &mut x);
                for (k, s) in chunk_sums[i / ff.chunk_blocks()].iter_mut().enumerate() {
                    let j = c.first + k;
                    if j / l == q {
                        *s += x[j % l];
                    }
                }
            }
        }
        for cs in &chunk_sums {
            for (s, v) in sums.iter_mut().zip(cs) {
                *s += v;
            }
        }
        coords.extend(sums.iter().map(|&s| m * s));
    }
    coords
}

/// Expand by the scalar reference, in the specified order.
fn expand_reference(b: &FastfoodBases, coords: &[f32], alpha: f32, base: &[f32]) -> Vec<f32> {
    let (ff, l) = (b.ff, b.ff.block());
    let a = alpha * b.scale * ff.norm();
    let mut out = base.to_vec();
    let mut k0 = 0;
    for c in b.comps {
        for i in 0..ff.blocks(c.len) {
            let mut acc = vec![0f32; l];
            for q in ff.groups(c) {
                let p = block_params(b.stream, b.step, c.index, ff, q, i);
                let mut x = vec![0f32; l];
                for k in 0..c.dims {
                    let j = c.first + k;
                    if j / l == q {
                        x[j % l] = a * coords[k0 + k];
                    }
                }
                forward_block(&p, &mut x);
                for (s, v) in acc.iter_mut().zip(&x) {
                    *s += v;
                }
            }
            let rows = l.min(c.len - i * l);
            for (r, a) in acc.iter().enumerate().take(rows) {
                let e = c.offset + i * l + r;
                out[e] = base[e] + a;
            }
        }
        k0 += c.dims;
    }
    out
}

#[test]
fn fast_transforms_equal_the_scalar_reference_bitwise() {
    for s in streams() {
        for dims in [1, 3, 16, 40] {
            for comps in layouts(dims) {
                let ff = Fastfood::for_dims(dims);
                let n = n_of(&comps);
                let b = FastfoodBases {
                    stream: &s,
                    step: 7,
                    comps: &comps,
                    ff,
                    scale: rbd_scale(n),
                };
                let g = vector(n, 1);
                let mut coords = vec![0f32; total_dims(&comps)];
                b.project_cpu(&g, &mut coords);
                let want = project_reference(&b, &g);
                assert_eq!(bits(&coords), bits(&want), "project {s:?} {comps:?}");
                let base = vector(n, 2);
                let mut out = vec![0f32; n];
                b.expand_cpu(&coords, -0.3, &base, &mut out);
                let want = expand_reference(&b, &coords, -0.3, &base);
                assert_eq!(bits(&out), bits(&want), "expand {s:?} {comps:?}");
                for (which, c) in comps.iter().enumerate() {
                    let mut phi = vec![0f32; c.dims * c.len];
                    b.generate_cpu(which, &mut phi);
                    let want = generate_reference(&s, 7, c, ff, b.scale);
                    assert_eq!(bits(&phi), bits(&want), "generate {s:?} {c:?}");
                }
            }
        }
    }
}

/// Entry (r, t) of one block's M = H G Π H B in f64, from the drawn parameters and
/// the Hadamard matrix's closed form (no butterflies).
fn dense_block(p: &BlockParams) -> Vec<Vec<f64>> {
    let l = p.signs.len();
    let h = |r: usize, c: usize| {
        if (r & c).count_ones().is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    };
    let b = |t: usize| if p.signs[t] != 0 { -1.0 } else { 1.0 };
    // (Π H B)[k][t] = H[π(k)][t]·b_t.
    (0..l)
        .map(|r| {
            (0..l)
                .map(|t| {
                    (0..l)
                        .map(|k| {
                            h(r, k) * p.diagonal[k] as f64 * h(p.permutation[k] as usize, t) * b(t)
                        })
                        .sum()
                })
                .collect()
        })
        .collect()
}

/// The dense basis of one compartment: `phi[j][e]` in f64.
fn dense_basis(s: &Stream, step: u64, c: &Compartment, ff: Fastfood, scale: f32) -> Vec<Vec<f64>> {
    let l = ff.block();
    let m = entry_scale(ff, scale) as f64;
    let mut phi = vec![vec![0f64; c.len]; c.dims];
    for q in ff.groups(c) {
        for i in 0..ff.blocks(c.len) {
            let mb = dense_block(&block_params(s, step, c.index, ff, q, i));
            for (k, row) in phi.iter_mut().enumerate() {
                let j = c.first + k;
                if j / l != q {
                    continue;
                }
                for r in 0..l.min(c.len - i * l) {
                    row[i * l + r] = m * mb[r][j % l];
                }
            }
        }
    }
    phi
}

#[test]
fn project_and_expand_match_a_dense_matrix_from_the_same_stream() {
    for s in streams() {
        for dims in [5, 16] {
            for comps in layouts(dims) {
                let ff = Fastfood::for_dims(dims);
                let n = n_of(&comps);
                let b = FastfoodBases {
                    stream: &s,
                    step: 3,
                    comps: &comps,
                    ff,
                    scale: rbd_scale(n),
                };
                let g = vector(n, 5);
                let mut coords = vec![0f32; total_dims(&comps)];
                b.project_cpu(&g, &mut coords);
                let base = vector(n, 6);
                let mut out = vec![0f32; n];
                let alpha = 0.7;
                b.expand_cpu(&coords, alpha, &base, &mut out);
                let mut want_out: Vec<(f64, f64)> =
                    base.iter().map(|&x| (x as f64, x.abs() as f64)).collect();
                let mut k0 = 0;
                for c in &comps {
                    let phi = dense_basis(&s, 3, c, ff, b.scale);
                    for (k, row) in phi.iter().enumerate() {
                        let (mut v, mut a) = (0f64, 0f64);
                        for (e, &p) in row.iter().enumerate() {
                            v += p * g[c.offset + e] as f64;
                            a += (p * g[c.offset + e] as f64).abs();
                        }
                        let got = coords[k0 + k] as f64;
                        assert!(
                            (got - v).abs() <= 1e-5 * a + 1e-30,
                            "project {s:?} {c:?} [{k}]: {got} vs {v} (Σ|terms| {a})"
                        );
                        let w = alpha as f64 * coords[k0 + k] as f64;
                        for (e, &p) in row.iter().enumerate() {
                            want_out[c.offset + e].0 += w * p;
                            want_out[c.offset + e].1 += (w * p).abs();
                        }
                    }
                    k0 += c.dims;
                }
                for (e, (&got, &(v, a))) in out.iter().zip(&want_out).enumerate() {
                    assert!(
                        (got as f64 - v).abs() <= 1e-5 * a + 1e-30,
                        "expand {s:?} [{e}]: {got} vs {v}"
                    );
                }
            }
        }
    }
}

#[test]
fn expand_is_the_adjoint_of_project() {
    for s in streams() {
        for comps in layouts(24) {
            let ff = Fastfood::for_compartments(&comps);
            let n = n_of(&comps);
            let b = FastfoodBases {
                stream: &s,
                step: 11,
                comps: &comps,
                ff,
                scale: rbd_scale(n),
            };
            let g = vector(n, 9);
            let c = vector(total_dims(&comps), 10);
            let mut ptg = vec![0f32; c.len()];
            b.project_cpu(&g, &mut ptg);
            let mut pc = vec![0f32; n];
            b.expand_cpu(&c, 1.0, &vec![0f32; n], &mut pc);
            let dot = |a: &[f32], b: &[f32]| -> (f64, f64) {
                a.iter().zip(b).fold((0.0, 0.0), |(s, m), (&x, &y)| {
                    (s + x as f64 * y as f64, m + (x as f64 * y as f64).abs())
                })
            };
            let (lhs, la) = dot(&pc, &g);
            let (rhs, ra) = dot(&c, &ptg);
            // Each side is f32 work over ≤ 2 log L + log(blocks) roundings per term.
            let tol = 1e-5 * (la + ra);
            assert!(
                (lhs - rhs).abs() <= tol,
                "{s:?} {comps:?}: <Pc, g> = {lhs}, <c, P^T g> = {rhs} (tol {tol:e})"
            );
        }
    }
}

#[test]
fn directions_within_a_block_are_orthogonal_up_to_the_diagonal() {
    // A ±1 diagonal makes MᵀM = L²·I exactly: every block's columns are orthogonal.
    let l = 64;
    let ff = Fastfood::with_block(l).unwrap();
    let comp = Compartment::new(0, 0, 5 * l, l);
    for generator in [Generator::Philox, Generator::Threefry] {
        let s = Stream {
            generator,
            distribution: Distribution::Bernoulli { p: 0.5 },
            seed: 9,
        };
        let b = FastfoodBases {
            stream: &s,
            step: 2,
            comps: std::slice::from_ref(&comp),
            ff,
            scale: 1.0,
        };
        let mut phi = vec![0f32; l * comp.len];
        b.generate_cpu(0, &mut phi);
        let m2 = (ff.norm() as f64).powi(2);
        for blk in 0..5 {
            for j in 0..l {
                for k in 0..l {
                    let dot: f64 = (0..l)
                        .map(|r| {
                            phi[j * comp.len + blk * l + r] as f64
                                * phi[k * comp.len + blk * l + r] as f64
                        })
                        .sum();
                    let want = if j == k { m2 * (l * l) as f64 } else { 0.0 };
                    assert!(
                        (dot - want).abs() <= 1e-9 * m2 * (l * l) as f64,
                        "{generator:?} block {blk}: <phi_{j}, phi_{k}> = {dot}, want {want}"
                    );
                }
            }
        }
    }
    // Gaussian diagonal: MᵀM = L·B H Πᵀ G² Π H B, i.e. [t][t'] = L·b_t·b_t'·Σ_a
    // H[a][t]·H[a][t']·G²[π⁻¹(a)]: equal column norms L·ΣG², and the cross terms are
    // the Walsh coefficients of G² (orthogonal when G² is constant).
    let l = 32;
    let ff = Fastfood::with_block(l).unwrap();
    let comp = Compartment::new(0, 0, l, l);
    let s = Stream::new(77);
    let b = FastfoodBases {
        stream: &s,
        step: 5,
        comps: std::slice::from_ref(&comp),
        ff,
        scale: 1.0,
    };
    let mut phi = vec![0f32; l * l];
    b.generate_cpu(0, &mut phi);
    let p = block_params(&s, 5, 0, ff, 0, 0);
    let mut inv = vec![0usize; l];
    for (t, &k) in p.permutation.iter().enumerate() {
        inv[k as usize] = t;
    }
    let m2 = (ff.norm() as f64).powi(2);
    let h = |r: usize, c: usize| {
        if (r & c).count_ones().is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    };
    let sign = |t: usize| if p.signs[t] != 0 { -1.0 } else { 1.0 };
    for t in 0..l {
        for u in 0..l {
            let got: f64 = (0..l)
                .map(|r| phi[t * l + r] as f64 * phi[u * l + r] as f64)
                .sum();
            let want: f64 = m2
                * l as f64
                * sign(t)
                * sign(u)
                * (0..l)
                    .map(|a| h(a, t) * h(a, u) * (p.diagonal[inv[a]] as f64).powi(2))
                    .sum::<f64>();
            assert!(
                (got - want).abs() <= 1e-5 * m2 * (l * l) as f64,
                "gaussian: <phi_{t}, phi_{u}> = {got}, closed form {want}"
            );
        }
    }
}

#[test]
fn windows_and_compartments_select_the_same_directions() {
    let s = Stream::new(31);
    let ff = Fastfood::for_dims(16);
    let whole = Compartment::new(4, 0, 700, 40);
    let full = FastfoodBases {
        stream: &s,
        step: 2,
        comps: std::slice::from_ref(&whole),
        ff,
        scale: 0.5,
    };
    let mut all = vec![0f32; 40 * 700];
    full.generate_cpu(0, &mut all);
    // A window (across groups 1 and 2) is the same rows; another offset or a second
    // compartment beside it changes nothing.
    let win = Compartment {
        offset: 50,
        ..whole.window(13, 9)
    };
    let comps = [Compartment::new(9, 0, 50, 3), win];
    let b = FastfoodBases {
        comps: &comps,
        ..full
    };
    let mut part = vec![0f32; 9 * 700];
    b.generate_cpu(1, &mut part);
    assert_eq!(bits(&part), bits(&all[13 * 700..22 * 700]));
    // Another compartment index or step draws other directions.
    for other in [
        Compartment::new(5, 0, 700, 40),
        Compartment::new(4, 0, 700, 40),
    ] {
        let step = if other.index == 4 { 3 } else { 2 };
        let o = FastfoodBases {
            step,
            comps: std::slice::from_ref(&other),
            ..full
        };
        let mut phi = vec![0f32; 40 * 700];
        o.generate_cpu(0, &mut phi);
        let same = phi.iter().zip(&all).filter(|(a, b)| a == b).count();
        assert!(same < 700, "{other:?} step {step}: {same} equal entries");
    }
    // Project over the window equals the whole basis's coordinates 13..22.
    let n = 800;
    let g = vector(n, 4);
    let mut c_all = vec![0f32; 40];
    full.project_cpu(&g[..700], &mut c_all);
    let alone = [Compartment {
        offset: 0,
        ..whole.window(13, 9)
    }];
    let mut c_win = vec![0f32; 9];
    FastfoodBases {
        comps: &alone,
        ..full
    }
    .project_cpu(&g[..700], &mut c_win);
    assert_eq!(bits(&c_win), bits(&c_all[13..22]));
}

fn run_all(b: &FastfoodBases, simd: Simd, n: usize) -> (Vec<u32>, Vec<u32>, Vec<u32>, Vec<u32>) {
    let g = vector(n, 21);
    let base = vector(n, 22);
    let dims = total_dims(b.comps);
    let mut coords = vec![0f32; dims];
    b.project_cpu_with(simd, &g, &mut coords);
    let mut out = vec![0f32; n];
    b.expand_cpu_with(simd, &coords, -0.25, &base, &mut out);
    let (mut c2, mut o2, mut d2) = (vec![0f32; dims], vec![0f32; n], vec![0f32; n]);
    b.project_expand_cpu_with(simd, (&g, -0.25), &base, (&mut c2, &mut o2), Some(&mut d2));
    assert_eq!(bits(&coords), bits(&c2), "fused coords");
    assert_eq!(bits(&out), bits(&o2), "fused update");
    let mut zero_base = vec![0f32; n];
    b.expand_cpu_with(simd, &coords, -0.25, &vec![0f32; n], &mut zero_base);
    assert_eq!(bits(&zero_base), bits(&d2), "delta = expand on zeros");
    (bits(&coords), bits(&out), bits(&d2), bits(&g))
}

#[test]
fn project_expand_equals_project_then_expand_and_is_deterministic() {
    // Several chunks per compartment (L = 16: 256 blocks a chunk), two groups.
    let comps = [
        Compartment::new(0, 0, 9_000, 20),
        Compartment::new(1, 9_010, 70_000, 20).window(10, 20),
    ];
    let n = 79_100;
    for s in streams() {
        let b = FastfoodBases {
            stream: &s,
            step: 4,
            comps: &comps,
            ff: Fastfood::for_dims(20),
            scale: rbd_scale(n),
        };
        let want = run_all(&b, Simd::detect(), n);
        for simd in Simd::available() {
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool.install(|| run_all(&b, simd, n));
                assert!(
                    got == want,
                    "{s:?}: {simd:?} with {threads} threads differs"
                );
            }
        }
    }
}

#[test]
fn the_normalisation_matches_the_gaussian_familys_second_moment() {
    // E‖Pᵀg‖² = d·‖g‖²/D and E‖φ_j‖² = 1 for N(0, 1) diagonals: averaged over 200 steps
    // (a fixed sample: this test is deterministic) both ratios must be within 5 %.
    let n = 3_000;
    let d = 24;
    let comps = Compartment::whole(n, d);
    let s = Stream::new(2020);
    let g = vector(n, 3);
    let g2: f64 = g.iter().map(|&x| (x as f64).powi(2)).sum();
    let (mut proj, mut norm) = (0f64, 0f64);
    let steps = 200;
    for step in 0..steps {
        let b = FastfoodBases {
            stream: &s,
            step,
            comps: &comps,
            ff: Fastfood::for_dims(d),
            scale: rbd_scale(n),
        };
        let mut c = vec![0f32; d];
        b.project_cpu(&g, &mut c);
        proj += c.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
        let mut phi = vec![0f32; d * n];
        b.generate_cpu(0, &mut phi);
        norm += phi.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
    }
    let proj_ratio = proj / steps as f64 / (d as f64 * g2 / n as f64);
    let norm_ratio = norm / (steps as usize * d) as f64;
    assert!(
        (proj_ratio - 1.0).abs() < 0.05,
        "E|P^T g|^2 / (d |g|^2 / D) = {proj_ratio}"
    );
    assert!((norm_ratio - 1.0).abs() < 0.05, "E|phi_j|^2 = {norm_ratio}");
}

#[test]
fn permutations_are_fisher_yates_draws() {
    // Every position equally likely under the documented Fisher–Yates: over 4,000
    // blocks of 8, each (position, value) count is within 5 standard errors of 500.
    let s = Stream::new(5);
    let ff = Fastfood::with_block(8).unwrap();
    let mut counts = [[0u32; 8]; 8];
    for i in 0..4_000 {
        let p = block_params(&s, 0, 0, ff, 0, i);
        let mut seen = p.permutation.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<u32>>(), "a permutation");
        for (t, &k) in p.permutation.iter().enumerate() {
            counts[t][k as usize] += 1;
        }
    }
    let sd = (4_000.0f64 * (1.0 / 8.0) * (7.0 / 8.0)).sqrt();
    for row in counts {
        for c in row {
            assert!((c as f64 - 500.0).abs() < 5.0 * sd, "{counts:?}");
        }
    }
    // The reduction of a word to 0..n: ⌊w·n/2^32⌋.
    assert_eq!(below(0, 7), 0);
    assert_eq!(below(u32::MAX, 7), 6);
    assert_eq!(below(0x8000_0000, 2), 1);
}

#[test]
fn bad_shapes_and_distributions_are_refused() {
    assert!(Fastfood::with_block(12).is_err());
    assert!(Fastfood::with_block(1 << 25).is_err());
    assert_eq!(Fastfood::for_dims(250).block(), 256);
    assert_eq!(Fastfood::for_dims(256).block(), 256);
    assert_eq!(Fastfood::for_dims(1).block(), 1);
    assert_eq!(Fastfood::for_dims(10_000).block(), 16_384);
    let ff = Fastfood::for_dims(4);
    // Directions past group 2^29.
    let far = Compartment::new(0, 0, 10, 2).window((1 << 31) - 1, 2);
    assert!(check_fastfood(&[far], 10, ff).is_err());
    assert!(check_fastfood(&[Compartment::new(0, 0, 10, 2)], 10, ff).is_ok());
    assert!(
        check_distribution(Distribution::BernoulliReleased { p: 0.5 })
            .unwrap_err()
            .contains("bernoulli-released")
    );
    assert!(check_distribution(Distribution::Gaussian).is_ok());
}

#[test]
fn native_equals_the_numpy_reference() {
    // Values printed by the NumPy code of docs/random-directions.md §11 (numpy 2.4).
    // (stream, step, compartment, family, scale, (entry, expected bits)).
    type Case = (Stream, u64, Compartment, Fastfood, f32, Vec<(usize, u32)>);
    let cases: [Case; 2] = [
        (
            Stream::new(42),
            0,
            Compartment::new(0, 0, 512, 1).window(3, 1),
            Fastfood::for_dims(250),
            rbd_scale(122_570),
            [0xb93d02b8, 0xb9c5cbf0, 0x3aabfaa0, 0x39ae51b8]
                .into_iter()
                .enumerate()
                .chain(
                    [0x3a7ee704, 0xbad4ba17, 0xba81b261, 0x3a54be94]
                        .into_iter()
                        .enumerate()
                        .map(|(i, b)| (256 + i, b)),
                )
                .collect(),
        ),
        (
            Stream {
                generator: Generator::Philox,
                distribution: Distribution::Uniform,
                seed: 7,
            },
            5,
            Compartment::new(2, 0, 20, 1).window(9, 1),
            Fastfood::with_block(4).unwrap(),
            0.5,
            [
                0xbe8e8757, 0xbe44de1a, 0x3d8faa74, 0xbd321fd8, 0xbd5a59e8, 0x3f084384, 0x3eb09327,
                0x3da616ec, 0x3e7172e4, 0x3eb2f4b4, 0xbe80549c, 0x3eee14d4, 0xbdc0ce24, 0xbe6e85ee,
                0x3dc90094, 0xbf1c5974, 0x3e622dda, 0xbeb7053d, 0x3e85e633, 0x3e69af0e,
            ]
            .into_iter()
            .enumerate()
            .collect(),
        ),
    ];
    for (s, step, comp, ff, scale, want) in cases {
        let b = FastfoodBases {
            stream: &s,
            step,
            comps: std::slice::from_ref(&comp),
            ff,
            scale,
        };
        let mut phi = vec![0f32; comp.len];
        b.generate_cpu(0, &mut phi);
        for (e, bits) in want {
            assert_eq!(phi[e].to_bits(), bits, "{s:?} entry {e}: {}", phi[e]);
        }
    }
}

/// (layout, d) cases for the WGSL: L from 1 to 4096 (> TILE: global stages), gaps,
/// windows across groups.
fn gpu_cases() -> Vec<(Vec<Compartment>, usize)> {
    let mut v: Vec<(Vec<Compartment>, usize)> = layouts(40).into_iter().map(|c| (c, 40)).collect();
    v.push((Compartment::whole(37, 1), 1));
    v.push((layouts(3)[1].clone(), 3));
    v.push((
        vec![Compartment::new(1, 2, 9_000, 24).window(3_000, 24)],
        3_000,
    ));
    v.push((Compartment::whole(20_000, 5_000), 5_000));
    v
}

#[test]
fn gpu_equals_cpu() {
    let ctx = rbd_kernels::testing::cpu_adapter();
    for s in streams() {
        for (comps, d) in gpu_cases() {
            let ff = Fastfood::for_dims(d);
            let n = n_of(&comps);
            let b = FastfoodBases {
                stream: &s,
                step: 6,
                comps: &comps,
                ff,
                scale: rbd_scale(n),
            };
            let g = vector(n, 31);
            let base = vector(n, 32);
            let dims = total_dims(&comps);
            let mut want_c = vec![0f32; dims];
            b.project_cpu(&g, &mut want_c);
            let gb = ctx.upload(bytemuck::cast_slice(&g)).unwrap();
            let cb = b.project_gpu(&ctx, &gb).unwrap();
            let got_c: Vec<f32> = ctx.read(&cb, dims).unwrap();
            // Use the cpu's coordinates for expand, so both expand the same input.
            let alpha = -0.5;
            let mut want_o = vec![0f32; n];
            b.expand_cpu(&want_c, alpha, &base, &mut want_o);
            let cin = ctx.upload(bytemuck::cast_slice(&want_c)).unwrap();
            let bb = ctx.upload(bytemuck::cast_slice(&base)).unwrap();
            let ob = b.expand_gpu(&ctx, &cin, alpha, &bb).unwrap();
            let got_o: Vec<f32> = ctx.read(&ob, n).unwrap();
            let what = format!("{s:?} L = {} {comps:?}", ff.block());
            if s.distribution != Distribution::Gaussian {
                assert_eq!(bits(&got_c), bits(&want_c), "project {what}");
                assert_eq!(bits(&got_o), bits(&want_o), "expand {what}");
                continue;
            }
            // Gaussian g differs by ≤ 8 ulps between the backends (§5); through the
            // transform that is ≤ 8·2^-23·max|g|·L·‖input block‖₂ per block.
            let (l, m) = (ff.block(), entry_scale(ff, b.scale) as f64);
            let mut k0 = 0;
            for c in &comps {
                let gsum: f64 = (0..ff.blocks(c.len))
                    .map(|i| {
                        let rows = &g[c.offset + i * l..][..l.min(c.len - i * l)];
                        rows.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
                    })
                    .sum();
                let tol = 8.0 * 2f64.powi(-23) * 6.0 * m * l as f64 * gsum * 2.0;
                for k in k0..k0 + c.dims {
                    let dlt = (got_c[k] as f64 - want_c[k] as f64).abs();
                    assert!(
                        dlt <= tol,
                        "project {what} [{k}]: {} vs {} (tol {tol:e})",
                        got_c[k],
                        want_c[k]
                    );
                }
                let a = (alpha * b.scale * ff.norm()) as f64;
                let cnorm: f64 = want_c[k0..k0 + c.dims]
                    .iter()
                    .map(|&x| (x as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let tol = 8.0 * 2f64.powi(-23) * 6.0 * a.abs() * l as f64 * cnorm * 2.0;
                for e in c.offset..c.offset + c.len {
                    let dlt = (got_o[e] as f64 - want_o[e] as f64).abs();
                    let tol = tol + 2f64.powi(-23) * (want_o[e] as f64).abs();
                    assert!(
                        dlt <= tol,
                        "expand {what} [{e}]: {} vs {}",
                        got_o[e],
                        want_o[e]
                    );
                }
                k0 += c.dims;
            }
        }
    }
}

#[test]
fn generate_gpu_equals_generate_cpu() {
    let ctx = rbd_kernels::testing::cpu_adapter();
    for s in streams() {
        let comps = [Compartment::new(3, 10, 300, 12).window(2, 12)];
        let b = FastfoodBases {
            stream: &s,
            step: 1,
            comps: &comps,
            ff: Fastfood::for_dims(8),
            scale: 0.25,
        };
        let mut want = vec![0f32; 12 * 300];
        b.generate_cpu(0, &mut want);
        let got: Vec<f32> = ctx
            .read(&b.generate_gpu(&ctx, 0).unwrap(), want.len())
            .unwrap();
        if s.distribution == Distribution::Gaussian {
            for (i, (&x, &y)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(0.1),
                    "{s:?} [{i}]: {x} vs {y}"
                );
            }
        } else {
            assert_eq!(bits(&got), bits(&want), "{s:?}");
        }
    }
}
