//! Distributed training under `mpirun` (feature `mpi`; `.ci/run` installs MPICH and
//! runs these): one rank equals the single-process run bit for bit; two ranks with a
//! shared base (or SGD) follow the single-process run on the union batch; per-worker
//! bases equal, for one step, an f64 formula built from the same direction stream;
//! every rank ends with the same θ; resuming on another number of ranks is refused.
#![cfg(feature = "mpi")]

mod common;

use common::{metrics, scratch, scratch_with_data, show, synthetic};
use rbd::train::data::Data;
use rbd::train::kinds::DatasetSpec;
use rbd::train::oracle::{EpochSums, TrainOracle};
use rbd::train::{RunConfig, Segment};
use rbd_engine::{Device, Tensor};
use rbd_kernels::random_bases::{
    generate_cpu, rbd_scale, Bases, Compartment, Distribution, Generator, Stream,
};
use rbd_models::ModelKind;
use rbd_optim::directions::BasesKind;
use rbd_optim::OptimizerKind;
use rbd_optim::Oracle;
use std::path::Path;
use std::process::{Command, Output};

/// `rbd train` (under `mpirun -n ranks … --distributed` when `ranks` is given).
fn train(ranks: Option<usize>, args: &[String]) -> Output {
    let mut c = match ranks {
        Some(k) => {
            let mut c = Command::new("mpirun");
            c.args(["-n", &k.to_string(), env!("CARGO_BIN_EXE_rbd")]);
            // OpenMPI refuses root and more ranks than cores unless told; MPICH ignores these.
            c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
                .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
                .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_rbd")),
    };
    c.arg("train").args(args);
    if ranks.is_some() {
        c.arg("--distributed");
    }
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("RAYON_NUM_THREADS", "1");
    c.output().expect("mpirun/rbd runs")
}

fn ok(ranks: Option<usize>, args: &[String]) -> Output {
    let out = train(ranks, args);
    if !out.status.success() {
        show(&out);
        panic!("rbd train failed: {args:?}");
    }
    out
}

/// Flags of a small FC run on `data` into `out`.
fn args(data: &Path, out: &Path, optimizer: &str, lr: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--model",
        "fc",
        "--dataset",
        &format!("idx:{}", data.display()),
        "--optimizer",
        optimizer,
        "--lr",
        lr,
        "--device",
        "cpu",
        "--val-size",
        "64",
        "--dim",
        "8",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// The FC model's θ from a run's final parameters, in layout order.
fn final_theta(dir: &Path) -> Vec<f32> {
    let data = std::fs::read(dir.join("final.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&data).unwrap();
    let model = rbd_models::build(ModelKind::Fc, 1, 28, 28, &Device::Cpu).unwrap();
    let mut theta = Vec::new();
    for s in &model.layout().specs {
        let t = st.tensor(&s.name).unwrap();
        theta.extend(
            t.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
        );
    }
    theta
}

/// The θ hashes the ranks printed.
fn hashes(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("θ hash ").map(|(_, h)| h.trim().to_string()))
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0f32, f32::max);
    assert!(worst <= tol, "{what}: worst relative difference {worst}");
}

#[test]
fn one_rank_equals_the_single_process_run_bit_for_bit() {
    let (dir, data) = scratch_with_data("k1", 64 + 160);
    for (opt, lr, bases) in [
        ("sgd", "2^-3", "iid"),
        ("rbd", "2^0", "iid"),
        ("fpd", "2^0", "iid"),
        ("rbd", "2^0", "fastfood"),
    ] {
        let single = dir.join(format!("{opt}-{bases}-single"));
        let dist = dir.join(format!("{opt}-{bases}-k1"));
        let extra = ["--epochs", "2", "--batch-size", "16", "--bases", bases];
        ok(None, &args(&data, &single, opt, lr, &extra));
        let out = ok(Some(1), &args(&data, &dist, opt, lr, &extra));
        assert_eq!(hashes(&out).len(), 1, "{opt}");
        let (a, b) = (final_theta(&single), final_theta(&dist));
        assert_eq!(bits(&a), bits(&b), "{opt}: K = 1 differs from one process");
        // The training metrics agree too; the distributed row adds communication.
        let (ma, mb) = (metrics(&single), metrics(&dist));
        assert_eq!(ma[1]["train_loss"], mb[1]["train_loss"], "{opt}");
        assert_eq!(ma[1]["val_loss"], mb[1]["val_loss"], "{opt}");
        assert_eq!(mb[1]["comm"]["ranks"], 1);
        assert_eq!(mb[1]["comm"]["bytes_per_step"], 0.0);
    }
}

/// The configuration of [`args`] as the library sees it.
fn config(data: &Path, optimizer: OptimizerKind, lr: f64, batch: usize) -> RunConfig {
    let seg = Segment {
        optimizer,
        lr,
        lr_source: "given".into(),
        until_epoch: None,
    };
    let mut cfg = RunConfig::new(
        ModelKind::Fc,
        DatasetSpec::Idx(data.to_path_buf()),
        vec![seg],
    );
    cfg.data.val_size = 64;
    cfg.data.batch_size = batch;
    cfg.settings.directions.dim = 8;
    cfg.device = rbd_engine::DeviceChoice::Cpu;
    cfg
}

/// The data and training loader of `cfg` (the loader's order and augmentation).
fn batches(cfg: &RunConfig) -> (Data, rbd_datasets::TrainLoader) {
    let d: Data = rbd::train::data::load(cfg, &mut |_| {}).unwrap();
    let loader = rbd_datasets::TrainLoader::new(
        d.train.clone(),
        d.train_indices.clone(),
        d.loader_config(cfg),
    )
    .unwrap();
    (d, loader)
}

/// One process that sees batches 2s and 2s + 1 (of size 16) at step s as one batch
/// of 32: its gradient is their mean. (A plain run with batch 32 would augment the
/// second half with other random draws, as batch indices seed the augmentation.)
struct Union<'a>(TrainOracle<'a>);

impl Oracle for Union<'_> {
    fn gradient(&mut self, theta: &Tensor) -> rbd_engine::Result<Tensor> {
        let a = self.0.gradient(theta)?.to_vec_f32()?;
        let b = self.0.gradient(theta)?.to_vec_f32()?;
        let mean: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y) * 0.5).collect();
        Tensor::from_f32(&Device::Cpu, &mean, &[mean.len()])
    }
    fn loss(&mut self, _: &Tensor) -> rbd_engine::Result<f64> {
        unreachable!("RBD, FPD and SGD take gradients")
    }
    fn tensors(&self) -> Vec<(String, usize, usize)> {
        self.0.tensors()
    }
}

/// θ after one epoch of the single-process optimiser on the union batches.
fn union_run(data: &Path, optimizer: OptimizerKind, lr: f64, bases: BasesKind) -> Vec<f32> {
    let mut cfg = config(data, optimizer, lr, 16);
    cfg.settings.directions.bases = bases;
    let (d, loader) = batches(&cfg);
    let model = rbd_models::build(ModelKind::Fc, 1, 28, 28, &Device::Cpu).unwrap();
    let layout = model.layout();
    let mut theta =
        Tensor::from_f32(&Device::Cpu, &layout.init(cfg.seed), &[layout.total]).unwrap();
    let mut opt =
        rbd::train::optimizers::build(&cfg, layout, 0, &theta, &rbd::train::Team::single())
            .unwrap();
    let mut oracle = Union(
        TrainOracle::new(
            model.as_ref(),
            Device::Cpu,
            Box::new(loader.epoch(0, 0)),
            d.classes,
            EpochSums::default(),
            EpochSums::default(),
        )
        .unwrap(),
    );
    for step in 0..loader.batches_per_epoch() as u64 / 2 {
        theta = opt.step(step, &theta, &mut oracle).unwrap().theta;
    }
    theta.to_vec_f32().unwrap()
}

#[test]
fn two_ranks_follow_the_single_process_run_on_the_union_batch() {
    let (dir, data) = scratch_with_data("union", 64 + 256);
    let d = 8.0;
    let num_params = rbd_models::build(ModelKind::Fc, 1, 28, 28, &Device::Cpu)
        .unwrap()
        .layout()
        .total as f64;
    // (optimizer, rate on 2 ranks, rate of one process on the union, --rbd-base, bases,
    // bytes rank 0 sends per step): shared bases average the coordinates (Fastfood's
    // too: the ranks draw the same structured map and send d coordinates); SGD sums the
    // gradients (the mean gradient at twice the rate).
    let (iid, fastfood) = (BasesKind::Iid, BasesKind::Fastfood);
    for (opt, kind, lr2, lr1, base, bases, bytes) in [
        (
            "rbd",
            OptimizerKind::Rbd,
            "2^0",
            1.0,
            "shared",
            iid,
            4.0 * d,
        ),
        (
            "fpd",
            OptimizerKind::Fpd,
            "2^0",
            1.0,
            "shared",
            iid,
            4.0 * d,
        ),
        (
            "rbd",
            OptimizerKind::Rbd,
            "2^0",
            1.0,
            "per-worker",
            iid,
            4.0 * d,
        ),
        (
            "rbd",
            OptimizerKind::Rbd,
            "2^0",
            1.0,
            "shared",
            fastfood,
            4.0 * d,
        ),
        (
            "sgd",
            OptimizerKind::Sgd,
            "2^-4",
            0.125,
            "",
            iid,
            4.0 * 2.0 * (num_params / 2.0).ceil(),
        ),
    ] {
        let dist = dir.join(format!("{opt}-{base}-{}", bases.name()));
        let mut flags = vec!["--batch-size", "16", "--bases", bases.name()];
        if !base.is_empty() {
            flags.extend(["--rbd-base", base]);
        }
        let out = ok(Some(2), &args(&data, &dist, opt, lr2, &flags));
        let h = hashes(&out);
        assert_eq!(h.len(), 2, "{opt}: both ranks print θ's hash");
        assert_eq!(h[0], h[1], "{opt}: the ranks end with different θ");
        let got = final_theta(&dist);
        let union = union_run(&data, kind, lr1, bases);
        if base == "per-worker" {
            // Two bases of d directions are not one: the update must differ.
            let worst = got
                .iter()
                .zip(&union)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst > 1e-4,
                "per-worker bases behaved like one shared base"
            );
        } else {
            assert_close(&got, &union, 2e-5, &format!("{opt} {base}"));
        }
        let m = metrics(&dist);
        assert_eq!(m[0]["comm"]["ranks"], 2, "{opt}");
        assert_eq!(m[0]["comm"]["bytes_per_step"], bytes, "{opt} {base}");
        // 16 batches of 16 on 2 ranks: 8 steps.
        assert_eq!(m[0]["step"], 8, "{opt}");
    }
}

/// The gradients of the FC model at its initial θ on batches 0 and 1 of epoch 0.
fn first_gradients(data: &Path, batch: usize) -> (Vec<f32>, Vec<Vec<f64>>) {
    let cfg = config(data, OptimizerKind::Sgd, 1.0, batch);
    let (d, loader) = batches(&cfg);
    let model = rbd_models::build(ModelKind::Fc, 1, 28, 28, &Device::Cpu).unwrap();
    let layout = model.layout();
    let theta0 = layout.init(cfg.seed);
    let t = Tensor::from_f32(&Device::Cpu, &theta0, &[layout.total]).unwrap();
    let mut oracle = TrainOracle::new(
        model.as_ref(),
        Device::Cpu,
        Box::new(loader.epoch(0, 0)),
        d.classes,
        EpochSums::default(),
        EpochSums::default(),
    )
    .unwrap();
    let g = (0..2)
        .map(|_| {
            let g = oracle.gradient(&t).unwrap().to_vec_f32().unwrap();
            g.iter().map(|&x| x as f64).collect()
        })
        .collect();
    (theta0, g)
}

#[test]
fn per_worker_bases_and_sgd_match_an_f64_formula_for_one_step() {
    let dir = scratch("f64");
    let data = dir.join("data");
    // 32 training images in batches of 16: one step on each of two ranks.
    synthetic(&data, 64 + 32);
    let (theta0, g) = first_gradients(&data, 16);
    let n = theta0.len();
    let (lr, d) = (0.5f64, 8usize);
    let out = dir.join("rbd");
    let run = ok(
        Some(2),
        &args(&data, &out, "rbd", "2^-1", &["--batch-size", "16"]),
    );
    let h = hashes(&run);
    assert!(h.len() == 2 && h[0] == h[1], "{h:?}");
    // θ₁ = θ₀ − lr Σ_w Σ_j (φ_wj · g_w) φ_wj, with φ_wj direction w·d + j of the stream.
    let stream = Stream {
        generator: Generator::Threefry,
        distribution: Distribution::Gaussian,
        seed: 0,
    };
    let scale = rbd_scale(n);
    let mut want: Vec<f64> = theta0.iter().map(|&x| x as f64).collect();
    for (w, gw) in g.iter().enumerate() {
        let comp = Compartment::new(0, 0, n, d).window(w * d, d);
        let mut phi = vec![0f32; d * n];
        generate_cpu(&Bases::new(stream, 0, &[comp], scale), &mut phi);
        for row in phi.chunks_exact(n) {
            let c: f64 = row.iter().zip(gw).map(|(&p, &x)| p as f64 * x).sum();
            for (t, &p) in want.iter_mut().zip(row) {
                *t -= lr * c * p as f64;
            }
        }
    }
    let got = final_theta(&out);
    let want32: Vec<f32> = want.iter().map(|&x| x as f32).collect();
    assert_close(&got, &want32, 1e-6, "per-worker RBD");
    assert_ne!(bits(&got), bits(&theta0));

    // SGD: θ₁ = θ₀ − lr (g₀ + g₁).
    let out = dir.join("sgd");
    ok(
        Some(2),
        &args(&data, &out, "sgd", "2^-1", &["--batch-size", "16"]),
    );
    let got = final_theta(&out);
    let want: Vec<f32> = (0..n)
        .map(|i| (theta0[i] as f64 - lr * (g[0][i] + g[1][i])) as f32)
        .collect();
    assert_close(&got, &want, 1e-6, "data-parallel SGD");
}

#[test]
fn a_run_resumes_only_on_the_same_number_of_ranks() {
    let (dir, data) = scratch_with_data("resume", 64 + 64);
    let out = dir.join("run");
    ok(
        Some(2),
        &args(&data, &out, "rbd", "2^0", &["--batch-size", "16"]),
    );
    let resume = |ranks: Option<usize>| {
        let mut a: Vec<String> = [
            "--resume",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if ranks.is_none() {
            a.push("--device".into());
            a.push("cpu".into());
        }
        train(ranks, &a)
    };
    for ranks in [Some(1), None] {
        let r = resume(ranks);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{ranks:?}");
        assert!(
            err.contains("trained on 2 ranks") && err.contains("mpirun -n 2"),
            "{ranks:?}: {err}"
        );
    }
    // On two ranks it continues, and both ranks agree.
    let r = resume(Some(2));
    if !r.status.success() {
        show(&r);
        panic!("resume on 2 ranks failed");
    }
    let h = hashes(&r);
    assert!(h.len() == 2 && h[0] == h[1], "{h:?}");
    assert_eq!(metrics(&out).len(), 2);
}

#[test]
fn a_run_stopped_by_sigint_resumes_to_the_same_parameters() {
    let (dir, data) = scratch_with_data("sigint", 64 + 1024);
    let flags = [
        "--batch-size",
        "16",
        "--epochs",
        "3",
        "--checkpoint-every",
        "4steps",
    ];
    let whole = dir.join("whole");
    let done = ok(Some(2), &args(&data, &whole, "rbd", "2^0", &flags));
    let stopped = dir.join("stopped");
    let mut c = Command::new("mpirun");
    c.args([
        "-n",
        "2",
        env!("CARGO_BIN_EXE_rbd"),
        "train",
        "--distributed",
    ])
    .args(args(&data, &stopped, "rbd", "2^0", &flags))
    .env("XDG_RUNTIME_DIR", std::env::temp_dir())
    .env("RAYON_NUM_THREADS", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // Interrupt once the first checkpoint is on disk (the run is under way).
    let ck = stopped.join("checkpoint.safetensors");
    let t0 = std::time::Instant::now();
    while !ck.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Decide by what the run printed, not by mpirun's exit status: MPICH's Hydra,
    // having forwarded Ctrl-C, sometimes exits 0 although every rank exited 130.
    if !err.contains("stopped by") {
        // The run outran the signal; nothing to resume (rare on a fast machine).
        assert!(out.status.success(), "{err}");
        eprintln!("the run finished before SIGINT arrived");
    } else {
        assert!(err.contains("stopped by SIGINT"), "{err}");
        assert!(
            err.contains("mpirun -n 2 rbd train --distributed --resume"),
            "{err}"
        );
        assert_eq!(
            err.matches("stopped by SIGINT").count(),
            1,
            "only rank 0 reports: {err}"
        );
        let resumed = train(
            Some(2),
            &[
                "--resume".to_string(),
                stopped.display().to_string(),
                "--quiet".into(),
            ],
        );
        if !resumed.status.success() {
            show(&resumed);
            panic!("resume failed");
        }
        assert_eq!(hashes(&resumed), hashes(&done));
    }
    assert_eq!(bits(&final_theta(&stopped)), bits(&final_theta(&whole)));
    let (a, b) = (metrics(&stopped), metrics(&whole));
    assert_eq!((a.len(), b.len()), (3, 3));
    for (x, y) in a.iter().zip(&b) {
        for key in [
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "step",
        ] {
            assert_eq!(x[key], y[key], "{key}");
        }
    }
}
