//! The fused random-bases operations: cpu against a materialised f64 reference, WGSL
//! against cpu, compartments, determinism, independence of chunking, device memory.

use proptest::prelude::*;
use rbd_kernels::random_bases::*;
use rbd_kernels::testing::{self, assert_close, cases, cpu_adapter, xorshift_f32 as vector};
use rbd_kernels::GpuContext;

fn streams() -> Vec<Stream> {
    testing::streams(
        0x5EED_0000_0000_0042,
        &[
            Distribution::Gaussian,
            Distribution::Uniform,
            Distribution::Bernoulli { p: 0.5 },
            Distribution::Bernoulli { p: 0.3 },
            Distribution::BernoulliReleased { p: 0.5 },
            Distribution::Rademacher,
        ],
    )
}

/// Materialised directions of every compartment: (comp, rows of raw·scale).
fn materialise(s: &Stream, step: u64, comps: &[Compartment], scale: f32) -> Vec<Vec<f32>> {
    comps
        .iter()
        .map(|c| {
            let mut m = vec![0f32; c.dims * c.len];
            generate_cpu(
                &Bases::new(*s, step, std::slice::from_ref(c), scale),
                &mut m,
            );
            m
        })
        .collect()
}

/// f64 reference of project: (value, Σ|terms|) per coordinate.
fn project_ref(phi: &[Vec<f32>], comps: &[Compartment], g: &[f32]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (c, m) in comps.iter().zip(phi) {
        for j in 0..c.dims {
            let (mut v, mut a) = (0f64, 0f64);
            for e in 0..c.len {
                let t = m[j * c.len + e] as f64 * g[c.offset + e] as f64;
                v += t;
                a += t.abs();
            }
            out.push((v, a));
        }
    }
    out
}

/// f64 reference of expand with unit scale folded into phi: (value, Σ|terms|) per element.
fn expand_ref(
    phi: &[Vec<f32>],
    comps: &[Compartment],
    coords: &[f32],
    alpha: f32,
    base: &[f32],
) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = base.iter().map(|&b| (b as f64, b.abs() as f64)).collect();
    let mut k = 0;
    for (c, m) in comps.iter().zip(phi) {
        for j in 0..c.dims {
            let w = alpha as f64 * coords[k + j] as f64;
            for e in 0..c.len {
                let t = w * m[j * c.len + e] as f64;
                out[c.offset + e].0 += t;
                out[c.offset + e].1 += t.abs();
            }
        }
        k += c.dims;
    }
    out
}

fn check_against(what: &str, got: &[f32], want: &[(f64, f64)], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &(v, a))) in got.iter().zip(want).enumerate() {
        let tol = rel * a + 1e-30;
        assert!(
            (g as f64 - v).abs() <= tol,
            "{what}: [{i}] got {g}, want {v} (tol {tol:e})"
        );
    }
}

fn layer_comps(dims: usize) -> Vec<Compartment> {
    // Uneven layer-like sizes, offsets not multiples of 4.
    Compartment::from_sizes(&[864, 32, 18_433, 64, 4097, 10], dims)
}

#[test]
fn project_and_expand_cpu_match_a_materialised_f64_reference() {
    for s in streams() {
        for comps in [Compartment::whole(9_001, 37), layer_comps(13)] {
            let n = comps.iter().map(|c| c.offset + c.len).max().unwrap();
            let scale = rbd_scale(n);
            let g = vector(n, 1);
            let phi = materialise(&s, 3, &comps, 1.0);
            let bases = Bases::new(s, 3, &comps, scale);
            let mut coords = vec![0f32; total_dims(&comps)];
            project_cpu(&bases, &g, &mut coords);
            let want: Vec<(f64, f64)> = project_ref(&phi, &comps, &g)
                .iter()
                .map(|&(v, a)| (v * scale as f64, a * scale as f64))
                .collect();
            check_against(&format!("project {s:?}"), &coords, &want, 2e-6);
            let base = vector(n, 2);
            let mut out = vec![0f32; n];
            let alpha = -0.7f32;
            expand_cpu(&bases, &coords, alpha, &base, &mut out);
            let want = expand_ref(&phi, &comps, &coords, alpha * scale, &base);
            check_against(&format!("expand {s:?}"), &out, &want, 2e-6);
        }
    }
}

#[test]
fn generate_gpu_equals_generate_cpu() {
    let ctx = cpu_adapter();
    for s in streams() {
        // Several compartments, one with a window, one empty: laid out one after another.
        let comps = [
            Compartment::new(2, 5, 1_003, 7).window(40, 7),
            Compartment::new(0, 1_008, 0, 3),
            Compartment::new(5, 2_000, 77, 2),
        ];
        let bases = Bases::new(s, 9, &comps, 0.01);
        let mut want = vec![0f32; bases.generated_len()];
        generate_cpu(&bases, &mut want);
        let buf = generate_gpu(&ctx, &bases).unwrap();
        let got: Vec<f32> = ctx.read(&buf, want.len()).unwrap();
        if s.distribution == Distribution::Gaussian {
            assert_close(&format!("{s:?}"), &got, &want, 1e-12, 8.0 * f32::EPSILON);
        } else {
            let eq = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                eq,
                "{s:?}: uniform/Bernoulli directions must be bitwise equal"
            );
        }
    }
}

/// The WGSL project of `g` and expand of `coords_in` (alpha, base).
fn gpu_project_expand(
    ctx: &GpuContext,
    bases: &Bases,
    g: &[f32],
    coords_in: &[f32],
    alpha: f32,
    base: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let gb = ctx.upload(bytemuck::cast_slice(g)).unwrap();
    let c = project_gpu(ctx, bases, &gb).unwrap();
    let coords: Vec<f32> = ctx.read(&c, bases.dims()).unwrap();
    let cb = ctx.upload(bytemuck::cast_slice(coords_in)).unwrap();
    let bb = ctx.upload(bytemuck::cast_slice(base)).unwrap();
    let o = expand_gpu(ctx, bases, &cb, alpha, &bb).unwrap();
    (coords, ctx.read(&o, base.len()).unwrap())
}

fn check_gpu_vs_cpu(ctx: &GpuContext, s: &Stream, step: u64, comps: &[Compartment], n: usize) {
    let scale = rbd_scale(n);
    let g = vector(n, 11);
    let base = vector(n, 12);
    let phi = materialise(s, step, comps, 1.0);
    let bases = Bases::new(*s, step, comps, scale);
    let mut coords = vec![0f32; total_dims(comps)];
    project_cpu(&bases, &g, &mut coords);
    let (gc, gout) = gpu_project_expand(ctx, &bases, &g, &coords, 0.5, &base);
    let want: Vec<(f64, f64)> = project_ref(&phi, comps, &g)
        .iter()
        .map(|&(v, a)| (v * scale as f64, a * scale as f64))
        .collect();
    check_against(&format!("gpu project {s:?}"), &gc, &want, 2e-6);
    let mut cout = vec![0f32; n];
    expand_cpu(&bases, &coords, 0.5, &base, &mut cout);
    let want = expand_ref(&phi, comps, &coords, 0.5 * scale, &base);
    check_against(&format!("gpu expand {s:?}"), &gout, &want, 2e-6);
    check_against(&format!("cpu expand {s:?}"), &cout, &want, 2e-6);
}

#[test]
fn gpu_matches_cpu_on_fixed_shapes() {
    let ctx = cpu_adapter();
    for s in streams() {
        check_gpu_vs_cpu(&ctx, &s, 17, &layer_comps(11), 23_500);
    }
    // Gaps between compartments are copied from base.
    let comps = vec![
        Compartment::new(4, 3, 100, 5),
        Compartment::new(1, 200, 517, 9).window(3, 9),
    ];
    check_gpu_vs_cpu(&ctx, &Stream::new(1), 0, &comps, 1_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(12)))]
    #[test]
    fn gpu_matches_cpu(
        sizes in prop::collection::vec(1usize..3000, 1..4),
        dims in 1usize..40,
        first in 0usize..1000,
        step in any::<u32>(),
        seed in any::<u64>(),
        si in 0usize..12,
    ) {
        let s = Stream { seed, ..streams()[si] };
        let comps: Vec<Compartment> =
            Compartment::from_sizes(&sizes, dims).into_iter().map(|c| c.window(first, dims)).collect();
        let n = sizes.iter().sum();
        check_gpu_vs_cpu(&cpu_adapter(), &s, step as u64, &comps, n);
    }
}

#[test]
fn compartments_partition_and_are_independent() {
    let n = 50_001;
    for k in [1, 2, 7, 64] {
        let comps = Compartment::even(n, k, 6);
        assert!(is_partition(&comps, n), "even({n}, {k})");
        let mut covered = vec![0u8; n];
        for c in &comps {
            for x in &mut covered[c.offset..c.offset + c.len] {
                *x += 1;
            }
        }
        assert!(covered.iter().all(|&x| x == 1));
        let s = Stream::new(k as u64);
        let g = vector(n, 3);
        let base = vector(n, 4);
        let bases = Bases::new(s, 1, &comps, rbd_scale(n));
        let mut coords = vec![0f32; total_dims(&comps)];
        project_cpu(&bases, &g, &mut coords);
        let mut out = vec![0f32; n];
        expand_cpu(&bases, &coords, -1.0, &base, &mut out);
        // Each compartment alone gives the same coordinates and the same entries (and
        // leaves everything else at base).
        let mut k0 = 0;
        let mut sum_of_parts = base.clone();
        for c in &comps {
            let one = [*c];
            let alone = bases.over(&one);
            let mut cc = vec![0f32; c.dims];
            project_cpu(&alone, &g, &mut cc);
            assert_eq!(cc, coords[k0..k0 + c.dims]);
            let mut o = vec![0f32; n];
            expand_cpu(&alone, &cc, -1.0, &base, &mut o);
            for e in 0..n {
                if e >= c.offset && e < c.offset + c.len {
                    sum_of_parts[e] = o[e];
                } else {
                    assert_eq!(o[e], base[e]);
                }
            }
            k0 += c.dims;
        }
        assert_eq!(out, sum_of_parts, "K = {k}");
    }
    assert!(!is_partition(
        &[Compartment::new(0, 0, 10, 1), Compartment::new(1, 9, 5, 1)],
        14
    ));
    assert!(check_compartments(&[Compartment::new(0, 5, 10, 1)], 12).is_err());
    assert!(is_partition(&Compartment::from_sizes(&[3, 0, 4], 2), 7));
}

#[test]
fn deterministic_across_runs_threads_and_instruction_sets() {
    let n = 70_000;
    let comps = layer_comps(70)
        .into_iter()
        .filter(|c| c.offset + c.len <= n)
        .collect::<Vec<_>>();
    let n = comps.iter().map(|c| c.offset + c.len).max().unwrap();
    let g = vector(n, 5);
    let base = vector(n, 6);
    for s in streams() {
        let bases = Bases::new(s, 8, &comps, 0.01);
        let run = |simd: Simd| {
            let mut coords = vec![0f32; total_dims(&comps)];
            project_cpu_with(simd, &bases, &g, &mut coords);
            let mut out = vec![0f32; n];
            expand_cpu_with(simd, &bases, &coords, -2.0, &base, &mut out);
            (coords, out)
        };
        let bits = |v: &(Vec<f32>, Vec<f32>)| {
            v.0.iter()
                .chain(&v.1)
                .map(|x| x.to_bits())
                .collect::<Vec<u32>>()
        };
        let reference = bits(&run(Simd::detect()));
        assert_eq!(bits(&run(Simd::detect())), reference, "rerun {s:?}");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            bits(&pool.install(|| run(Simd::detect()))),
            reference,
            "1 thread {s:?}"
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        assert_eq!(
            bits(&pool.install(|| run(Simd::detect()))),
            reference,
            "3 threads {s:?}"
        );
        for simd in Simd::available() {
            assert_eq!(bits(&run(simd)), reference, "{simd:?} {s:?}");
        }
    }
    // The GPU is deterministic too.
    let ctx = cpu_adapter();
    let bases = Bases::new(Stream::new(99), 2, &comps, 0.01);
    let coords = vector(total_dims(&comps), 7);
    let a = gpu_project_expand(&ctx, &bases, &g, &coords, 1.0, &base);
    let b = gpu_project_expand(&ctx, &bases, &g, &coords, 1.0, &base);
    assert_eq!(a, b);
}

#[test]
fn directions_do_not_depend_on_length_or_chunking() {
    // Two parameter counts sharing a prefix: identical directions on the prefix,
    // bitwise, through expand (base 0, one-hot coordinates) on both backends.
    let ctx = cpu_adapter();
    for s in [
        Stream::new(3),
        Stream {
            generator: Generator::Threefry,
            ..Stream::new(3)
        },
    ] {
        let (n1, n2, dims) = (5_003, 40_000, 3);
        let mut outs = Vec::new();
        for n in [n1, n2] {
            let comps = Compartment::whole(n, dims);
            let bases = Bases::new(s, 4, &comps, 1.0);
            let coords = [0.0f32, 1.0, 0.0];
            let zero = vec![0f32; n];
            let mut o = vec![0f32; n];
            expand_cpu(&bases, &coords, 1.0, &zero, &mut o);
            let cb = ctx.upload(bytemuck::cast_slice(&coords)).unwrap();
            let zb = ctx.upload(bytemuck::cast_slice(&zero)).unwrap();
            let gb = expand_gpu(&ctx, &bases, &cb, 1.0, &zb).unwrap();
            let go: Vec<f32> = ctx.read(&gb, n).unwrap();
            let mut m = vec![0f32; n];
            let second = [Compartment::new(0, 0, n, 1).window(1, 1)];
            generate_cpu(&bases.over(&second), &mut m);
            assert_eq!(o, m, "expand with one-hot coordinates is the direction");
            outs.push((o, go));
        }
        assert_eq!(outs[0].0[..], outs[1].0[..n1]);
        assert_eq!(outs[0].1[..], outs[1].1[..n1]);
        assert_close(
            "gpu vs cpu direction",
            &outs[1].1,
            &outs[1].0,
            1e-12,
            8.0 * f32::EPSILON,
        );
    }
    // The GPU's project tiling changes only the summation order.
    let n = 100_000;
    let comps = Compartment::whole(n, 20);
    let bases = Bases::new(Stream::new(8), 0, &comps, 0.003);
    let g = ctx.upload(bytemuck::cast_slice(&vector(n, 9))).unwrap();
    let mut results = Vec::new();
    for subs in [1, 3, 16] {
        let c = project_gpu_with(&ctx, GpuPlan { subs }, &bases, &g).unwrap();
        results.push(ctx.read::<f32>(&c, 20).unwrap());
    }
    assert_close("subs 1 vs 3", &results[0], &results[1], 1e-4, 1e-4);
    assert_close("subs 1 vs 16", &results[0], &results[2], 1e-4, 1e-4);
}

#[test]
fn nes_offspring_generates_one_direction() {
    let n = 12_345;
    let theta = vector(n, 1);
    let sigma = 0.01f32;
    for s in streams().into_iter().take(3) {
        for i in [0usize, 17, 249] {
            let comps = [Compartment::new(0, 0, n, 1).window(i, 1)];
            let bases = Bases::new(s, 5, &comps, 1.0);
            let mut out = vec![0f32; n];
            expand_cpu(&bases, &[sigma], 1.0, &theta, &mut out);
            let mut eps = vec![0f32; n];
            generate_cpu(&bases, &mut eps);
            for e in 0..n {
                assert_eq!(out[e], theta[e] + sigma * eps[e], "offspring {i} entry {e}");
            }
        }
    }
}

#[test]
fn grids_fold_past_the_dispatch_limit() {
    // 530,000 directions of a 40-entry compartment: 66,250 project workgroups (> 65,535).
    let ctx = cpu_adapter();
    let (n, dims) = (40, 530_000);
    let comps = Compartment::whole(n, dims);
    let bases = Bases::new(Stream::new(12), 0, &comps, 1.0);
    let g = vector(n, 1);
    let mut want = vec![0f32; dims];
    project_cpu(&bases, &g, &mut want);
    let gb = ctx.upload(bytemuck::cast_slice(&g)).unwrap();
    let c = project_gpu(&ctx, &bases, &gb).unwrap();
    let got: Vec<f32> = ctx.read(&c, dims).unwrap();
    assert_close("folded project", &got, &want, 1e-5, 1e-5);
}

#[test]
fn device_memory_grows_with_d_not_d_times_big_d() {
    // A context of its own: the shared one's pool also counts concurrent tests.
    let ctx = GpuContext::new(rbd_kernels::gpu::DeviceKind::Cpu).unwrap();
    let n = 200_000;
    let s = Stream::new(1);
    let g = ctx.upload(bytemuck::cast_slice(&vector(n, 1))).unwrap();
    let base = ctx.upload(bytemuck::cast_slice(&vector(n, 2))).unwrap();
    ctx.synchronize().unwrap();
    let mut peaks = Vec::new();
    for dims in [10, 2000] {
        let comps = Compartment::whole(n, dims);
        ctx.synchronize().unwrap();
        let live0 = ctx.pool_stats().live_bytes;
        ctx.pool().reset_peak();
        let bases = Bases::new(s, 0, &comps, rbd_scale(n));
        let c = project_gpu(&ctx, &bases, &g).unwrap();
        let o = expand_gpu(&ctx, &bases, &c, -1.0, &base).unwrap();
        ctx.synchronize().unwrap();
        drop((c, o));
        let peak = ctx.pool_stats().peak_bytes - live0;
        eprintln!(
            "d = {dims}: peak {peak} bytes above the inputs (scratch {} bytes)",
            project_gpu_scratch_bytes(GpuPlan::for_device(&ctx), &bases)
        );
        peaks.push(peak);
    }
    let growth = peaks[1] - peaks[0];
    let dense = 1990 * n as u64 * 4;
    assert!(
        growth * 100 < dense,
        "peak grew by {growth} bytes; a d×D matrix would be {dense}"
    );
}

#[test]
fn expand_groups_change_only_the_order_and_cover_every_compartment_in_one_pass() {
    // Layer-like compartments with gaps (entries outside every compartment keep base),
    // a compartment without directions, and ragged lengths.
    let ctx = cpu_adapter();
    let n = 30_011;
    let comps = [
        Compartment::new(0, 5, 9_000, 37),
        Compartment::new(1, 9_100, 17, 3),
        Compartment::new(2, 9_200, 12_345, 0),
        Compartment::new(3, 21_600, 8_400, 130),
    ];
    let s = Stream::new(21);
    let scale = rbd_scale(n);
    let bases = Bases::new(s, 3, &comps, scale);
    let coords = vector(total_dims(&comps), 5);
    let base = vector(n, 6);
    let phi = materialise(&s, 3, &comps, 1.0);
    let want = expand_ref(&phi, &comps, &coords, -0.7 * scale, &base);
    let cb = ctx.upload(bytemuck::cast_slice(&coords)).unwrap();
    let bb = ctx.upload(bytemuck::cast_slice(&base)).unwrap();
    let mut outs = Vec::new();
    for max_groups in [1, 2, 5, 16, 1000] {
        let plan = ExpandPlan { max_groups };
        let o = expand_gpu_with(&ctx, plan, &bases, &cb, -0.7, &bb).unwrap();
        let got: Vec<f32> = ctx.read(&o, n).unwrap();
        check_against(&format!("expand, {max_groups} groups"), &got, &want, 2e-6);
        for e in (0..5).chain(9_005..9_100).chain(9_117..9_200) {
            assert_eq!(got[e].to_bits(), base[e].to_bits(), "entry {e} outside");
        }
        for e in 9_200..21_545 {
            assert_eq!(
                got[e], base[e],
                "entry {e} of the compartment without directions"
            );
        }
        let again: Vec<f32> = ctx
            .read(
                &expand_gpu_with(&ctx, plan, &bases, &cb, -0.7, &bb).unwrap(),
                n,
            )
            .unwrap();
        assert_eq!(got, again, "{max_groups} groups: not deterministic");
        outs.push(got);
    }
    // One group is the single-pass order: the plain expand_gpu on a CPU adapter.
    let plain: Vec<f32> = ctx
        .read(&expand_gpu(&ctx, &bases, &cb, -0.7, &bb).unwrap(), n)
        .unwrap();
    if ctx.adapter.is_cpu {
        assert_eq!(plain, outs[0]);
    }
    assert_ne!(outs[0], outs[2], "groups should change some roundings");
}

#[test]
fn one_project_over_many_compartments_equals_each_compartment_alone_bitwise() {
    // The table-driven project covers every compartment in one dispatch: each
    // compartment's coordinates must be exactly those of projecting it alone.
    let ctx = cpu_adapter();
    let n = 50_000;
    let comps = [
        Compartment::new(0, 0, 20_000, 19),
        Compartment::new(1, 20_000, 3, 2),
        Compartment::new(2, 20_003, 0, 4),
        Compartment::new(3, 20_003, 9_000, 0),
        Compartment::new(4, 29_003, 20_997, 41),
    ];
    let bases = Bases::new(Stream::new(5), 9, &comps, 0.01);
    let g = ctx.upload(bytemuck::cast_slice(&vector(n, 8))).unwrap();
    let all: Vec<f32> = ctx
        .read(&project_gpu(&ctx, &bases, &g).unwrap(), total_dims(&comps))
        .unwrap();
    let mut alone = Vec::new();
    for c in &comps {
        if c.dims == 0 {
            continue;
        }
        let one = bases.over(std::slice::from_ref(c));
        let coords = project_gpu(&ctx, &one, &g).unwrap();
        alone.extend(ctx.read::<f32>(&coords, c.dims).unwrap());
    }
    assert_eq!(all.len(), alone.len());
    for (i, (a, b)) in all.iter().zip(&alone).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "coordinate {i}: {a} vs {b}");
    }
    assert!(all[19..21].iter().any(|&v| v != 0.0), "3-entry compartment");
    assert!(all[21..25].iter().all(|&v| v == 0.0), "empty compartment");
}

/// Every plan of the cpu step gives bitwise what project then expand give: both
/// strategies, blocks of 1 direction (4 KiB), of a few and of the most; one block and
/// several (150 directions over 9,001 entries; 10 directions over 300,000 entries),
/// compartments with gaps, windows (`first > 0`), an empty compartment; at every
/// instruction set and at 1 and 3 threads. Its optional `delta` output is bitwise
/// expand on a zero base.
#[test]
fn project_expand_equals_project_then_expand_bitwise_under_every_plan() {
    let gapped = vec![
        Compartment::new(2, 10, 5_000, 70),
        Compartment::new(0, 6_000, 3_001, 9).window(4, 9),
        Compartment::new(1, 5_010, 0, 3),
    ];
    let cases: Vec<(usize, Vec<Compartment>)> = vec![
        (9_001, Compartment::whole(9_001, 150)),
        (300_000, Compartment::whole(300_000, 10)),
        (9_100, gapped),
        (70_000, layer_comps(5)),
    ];
    let mut plans = Vec::new();
    for simd in Simd::available() {
        for (step, block_bytes) in [
            (StepStrategy::TwoPasses, 1 << 20),
            (StepStrategy::GenerateOnce, 4 << 10),
            (StepStrategy::GenerateOnce, 256 << 10),
            (StepStrategy::GenerateOnce, 64 << 20),
        ] {
            plans.push(CpuPlan {
                simd,
                step,
                block_bytes,
            });
        }
    }
    for s in streams() {
        for (n, comps) in &cases {
            let n = *n;
            let g = vector(n, 11);
            let base = vector(n, 12);
            let alpha = -0.3f32;
            let bases = Bases::new(s, 5, comps, rbd_scale(n));
            let mut want_c = vec![0f32; total_dims(comps)];
            project_cpu(&bases, &g, &mut want_c);
            let mut want = vec![0f32; n];
            expand_cpu(&bases, &want_c, alpha, &base, &mut want);
            // The update alone: expand on a zero base.
            let mut want_delta = vec![0f32; n];
            let zeros = vec![0f32; n];
            expand_cpu(&bases, &want_c, alpha, &zeros, &mut want_delta);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            let run = |plan: &CpuPlan| {
                let mut o = vec![f32::NAN; n];
                let mut d = vec![f32::NAN; n];
                let c =
                    project_expand_cpu_with(plan, &bases, &g, alpha, &base, &mut o, Some(&mut d));
                // Without `delta` the same coordinates and update.
                let mut o2 = vec![f32::NAN; n];
                let c2 = project_expand_cpu_with(plan, &bases, &g, alpha, &base, &mut o2, None);
                assert_eq!((bits(&c), bits(&o)), (bits(&c2), bits(&o2)));
                (bits(&c), bits(&o), bits(&d))
            };
            let want = (bits(&want_c), bits(&want), bits(&want_delta));
            for plan in &plans {
                assert!(run(plan) == want, "{plan:?} {s:?} n = {n}");
            }
            // The same step on a kept basis (FPD's), kept at one level and read at every
            // level and plan: only where the values come from differs.
            let Some(kept) = StoredBasis::generate(Simd::detect(), &bases) else {
                assert_eq!(s.distribution, Distribution::Rademacher, "{s:?} not kept");
                continue;
            };
            assert_eq!(kept.bytes(), StoredBasis::bytes_for(&bases));
            assert!(!kept.matches(&Bases::new(s, 6, comps, rbd_scale(n))));
            for plan in &plans {
                let mut o = vec![f32::NAN; n];
                let mut d = vec![f32::NAN; n];
                let step = (&bases, &g[..], alpha);
                let c = project_expand_stored(plan, &kept, step, &base, &mut o, Some(&mut d));
                assert!(
                    (bits(&c), bits(&o), bits(&d)) == want,
                    "kept basis, {plan:?} {s:?} n = {n}"
                );
            }
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                assert!(
                    pool.install(|| run(&CpuPlan::current().plan)) == want,
                    "{threads} threads {s:?} n = {n}"
                );
            }
        }
    }
}

/// The timed step (`rbd bench rbd`'s phase table) computes bitwise what the untimed one
/// does, at every instruction set, from outside a pool and inside one of 3 threads, and
/// counts its passes: blocks + 1 per compartment under a generate-once plan (blocks of
/// 96 KiB: 40 directions over 12,000 entries, 3 chunks, in blocks of 2: 21 passes; 7
/// over 7,000, 2 chunks, in blocks of 3: 4 passes), none under a two-pass plan (all
/// phases zero). Timings are read, never compared with a figure:
/// only that the phases are disjoint parts of the call (their sum within its wall time).
#[test]
fn the_timed_step_is_the_step_and_counts_its_passes() {
    let n = 20_000;
    let comps = vec![
        Compartment::new(0, 0, 12_000, 40),
        Compartment::new(1, 12_500, 7_000, 7),
    ];
    let g = vector(n, 21);
    let base = vector(n, 22);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for simd in Simd::available() {
        // 12,000 entries pad to 3 chunks of 4096 (49,152 bytes a direction), 7,000 to 2
        // (32,768 bytes).
        let once = CpuPlan {
            simd,
            step: StepStrategy::GenerateOnce,
            block_bytes: 2 * 49_152,
        };
        let two = CpuPlan {
            step: StepStrategy::TwoPasses,
            ..once
        };
        for (plan, passes) in [(once, 21 + 4), (two, 0)] {
            let bases = Bases::new(Stream::new(3), 9, &comps, rbd_scale(n));
            let mut want = vec![0f32; n];
            let want_c = project_expand_cpu_with(&plan, &bases, &g, -0.2, &base, &mut want, None);
            let timed = || {
                let mut out = vec![f32::NAN; n];
                let t = std::time::Instant::now();
                let (c, ph) = project_expand_cpu_phases(&plan, &bases, &g, -0.2, &base, &mut out);
                (bits(&c), bits(&out), ph, t.elapsed().as_secs_f64())
            };
            for (c, out, ph, wall) in [timed(), pool.install(timed)] {
                assert_eq!((c, out), (bits(&want_c), bits(&want)), "{plan:?}");
                assert_eq!(ph.passes, passes, "{plan:?}");
                let parts = [ph.setup_s, ph.passes_s, ph.coords_s, ph.finish_s];
                assert!(
                    parts.iter().all(|&s| s >= 0.0) && ph.busy_s >= 0.0,
                    "{ph:?}"
                );
                assert!(parts.iter().sum::<f64>() <= wall, "{ph:?} in {wall} s");
                if passes == 0 {
                    assert_eq!(ph, StepPhases::default());
                }
            }
            if passes > 0 {
                // The traffic measurement runs the same passes with counter values in
                // place of the stream's: at the same alpha its result must differ from the
                // step's wherever a direction touches (else it generated after all).
                let mut out = vec![f32::NAN; n];
                let ph = project_expand_cpu_traffic(&plan, &bases, &g, -0.2, &base, &mut out);
                assert_eq!(ph.passes, passes, "{plan:?}");
                let changed = out.iter().zip(&want).filter(|(a, b)| a != b).count();
                assert!(changed > 18_000, "{changed} entries differ");
            }
        }
    }
}

/// Packed signs: the WGSL's project (the cpu's order: 4096-entry chunks, 64
/// accumulators, the cpu's tree) and expand (one direction group on a CPU adapter: each
/// entry's ±w summed from 0 in direction order, then base +) are bitwise the cpu's, as
/// are the materialised directions; both generators, ragged compartments with gaps and
/// windows, lengths that end inside a batch and inside a word.
#[test]
fn packed_signs_cpu_equals_wgsl_bitwise() {
    let ctx = cpu_adapter();
    assert!(
        ctx.adapter.is_cpu,
        "the bitwise claim is made for CPU adapters"
    );
    let n = 30_011;
    let comps = [
        Compartment::new(0, 5, 9_000, 37),
        Compartment::new(1, 9_100, 17, 3),
        Compartment::new(2, 9_200, 12_345, 0),
        Compartment::new(3, 21_600, 8_400, 70).window(1_000, 70),
    ];
    let g = vector(n, 31);
    let base = vector(n, 32);
    for generator in [Generator::Philox, Generator::Threefry] {
        let s = Stream {
            generator,
            distribution: Distribution::Rademacher,
            seed: 0xABCD_0000_1234,
        };
        let bases = Bases::new(s, 12, &comps, rbd_scale(n));
        let mut coords = vec![0f32; total_dims(&comps)];
        project_cpu(&bases, &g, &mut coords);
        let mut out = vec![0f32; n];
        expand_cpu(&bases, &coords, -0.7, &base, &mut out);
        let (gc, gout) = gpu_project_expand(&ctx, &bases, &g, &coords, -0.7, &base);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert_eq!(bits(&gc), bits(&coords), "{generator:?} project");
        assert_eq!(bits(&gout), bits(&out), "{generator:?} expand");
        let mut m = vec![0f32; bases.generated_len()];
        generate_cpu(&bases, &mut m);
        let gm: Vec<f32> = ctx
            .read(&generate_gpu(&ctx, &bases).unwrap(), m.len())
            .unwrap();
        assert_eq!(bits(&gm), bits(&m), "{generator:?} generate");
    }
}
