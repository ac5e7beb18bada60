//! End-to-end tests of the `rbd` command on small generated data in the real IDX
//! format: training lowers the loss, runs are bitwise reproducible, a run killed with
//! SIGKILL and resumed ends bitwise identical, bad input gets clear errors.

mod campaign;
mod lean;
mod reference;
mod reproduce;
mod results;
mod robust;
mod safety;
mod stability;
mod variants;

#[path = "../common/mod.rs"]
mod common;

use common::{
    final_params, kill_once_written, manifest_defaults, manifest_run, metrics, rbd,
    reproduce_on_cpu, run, scratch, scratch_with_data, synthetic,
};
use std::path::Path;
use std::process::Command;

/// `rbd --version` names the commit and, when tracked files outside results/ differ from
/// it, says so: every run's provenance records this label. An edit that is not staged must
/// count too (the build script used to miss it: it watched only git's own files).
#[test]
fn version_names_the_commit_and_uncommitted_changes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        eprintln!("not a git checkout: the label is 'unknown', nothing to compare");
        return;
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":!results",
    ])
    .is_some_and(|s| !s.is_empty());
    let want = if dirty {
        format!("{head} with uncommitted changes")
    } else {
        head
    };
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("(commit {want})")),
        "--version says {text:?}, the checkout is at {want:?}"
    );
}

fn train_args<'a>(
    data: &'a str,
    out: &'a str,
    optimizer: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--model",
        "fc",
        "--dataset",
        data,
        "--optimizer",
        optimizer,
        "--device",
        "cpu",
        "--val-size",
        "200",
        "--quiet",
        "--out",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn sgd_and_rbd_learn_and_are_reproducible() {
    let (dir, data) = scratch_with_data("learn", 1200);
    let data_arg = format!("idx:{}", data.display());
    // (optimizer, lr, train-loss bound after 3 epochs, validation-accuracy bound);
    // chance is a loss of ln 10 = 2.30 and 10% accuracy.
    for (opt, lr, max_loss, min_acc) in [("sgd", "2^-3", 1.0, 0.5), ("rbd", "2^1", 2.2, 0.2)] {
        let a = dir.join(format!("{opt}-a"));
        let b = dir.join(format!("{opt}-b"));
        for out in [&a, &b] {
            let o = run(&train_args(
                &data_arg,
                out.to_str().unwrap(),
                opt,
                &["--epochs", "3", "--lr", lr, "--eval-test", "--correlation"],
            ));
            assert!(o.status.success(), "{opt} run failed");
        }
        let m = metrics(&a);
        assert_eq!(m.len(), 3);
        let first = m[0]["train_loss"].as_f64().unwrap();
        let last = m[2]["train_loss"].as_f64().unwrap();
        assert!(
            last < first,
            "{opt}: train loss did not fall: {first} -> {last}"
        );
        assert!(
            last < max_loss,
            "{opt}: train loss {last} not below {max_loss}"
        );
        let acc = m[2]["val_accuracy"].as_f64().unwrap();
        assert!(
            acc > min_acc,
            "{opt}: validation accuracy {acc} not above {min_acc}"
        );
        assert!(m[2]["test_accuracy"].as_f64().is_some());
        if opt == "rbd" {
            // Gradient correlation per epoch: whole vector and per tensor, in (0, 1).
            let c = m[0]["correlation"]["mean"]
                .as_f64()
                .expect("correlation logged");
            assert!(c > 0.0 && c < 1.0, "correlation {c}");
            assert_eq!(m[0]["correlation_per_tensor"].as_array().unwrap().len(), 4);
        }
        assert_eq!(
            final_params(&a),
            final_params(&b),
            "{opt}: same seed, different parameters"
        );
        assert!(
            a.join("accuracy.svg").exists()
                && a.join("metrics.csv").exists()
                && a.join("config.json").exists()
        );
    }
}

/// FPD keeps its fixed basis in memory on the cpu; `RBD_KEEP_BASIS=off` regenerates it
/// at every step instead. A speed and memory choice only: both runs end with the same
/// parameters and log the same losses and accuracies, bit for bit.
#[test]
fn fpd_with_its_basis_kept_or_regenerated_ends_bitwise_identical() {
    let (dir, data) = scratch_with_data("kept-basis", 600);
    let data_arg = format!("idx:{}", data.display());
    let extra = ["--epochs", "2", "--lr", "2^-1", "--dim", "30"];
    let mut ends = Vec::new();
    for keep in ["on", "off"] {
        let out = dir.join(format!("fpd-{keep}"));
        let o = rbd()
            .env("RBD_KEEP_BASIS", keep)
            .args(train_args(&data_arg, out.to_str().unwrap(), "fpd", &extra))
            .output()
            .unwrap();
        assert!(o.status.success(), "RBD_KEEP_BASIS={keep}: run failed");
        let logged: Vec<_> = metrics(&out)
            .iter()
            .map(|m| {
                (
                    m["train_loss"].clone(),
                    m["val_loss"].clone(),
                    m["val_accuracy"].clone(),
                )
            })
            .collect();
        ends.push((final_params(&out), logged));
    }
    assert!(ends[0] == ends[1], "kept and regenerated FPD runs differ");
}

#[test]
fn killed_and_resumed_run_ends_bitwise_identical() {
    let (dir, data) = scratch_with_data("resume", 1200);
    let data_arg = format!("idx:{}", data.display());
    for opt in ["rbd", "fpd"] {
        let whole = dir.join(format!("{opt}-whole"));
        let killed = dir.join(format!("{opt}-killed"));
        let extra = [
            "--epochs",
            "3",
            "--lr",
            "2^-1",
            "--dim",
            "20",
            "--checkpoint-every",
            "7steps",
        ];
        assert!(
            run(&train_args(&data_arg, whole.to_str().unwrap(), opt, &extra))
                .status
                .success()
        );
        let mut child = rbd()
            .args(train_args(&data_arg, killed.to_str().unwrap(), opt, &extra))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let ck = killed.join("checkpoint.safetensors");
        let start = std::time::Instant::now();
        while !ck.exists() && start.elapsed().as_secs() < 120 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(ck.exists(), "no checkpoint written");
        assert!(
            !killed.join("final.safetensors").exists(),
            "the run finished before it could be killed"
        );
        let o = run(&["train", "--resume", killed.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "resume failed");
        assert_eq!(
            final_params(&whole),
            final_params(&killed),
            "{opt}: resumed run differs"
        );
        assert_eq!(metrics(&whole).len(), metrics(&killed).len());
    }
}

#[test]
fn bad_flags_fail_before_any_work() {
    let cases: [(&[&str], &str); 10] = [
        (
            &["train", "--model", "resnet8", "--dataset", "mnist"],
            "cifar10",
        ),
        (&["train", "--lr=-0.1"], "positive"),
        (&["train", "--model", "vgg"], "unknown model"),
        (&["train", "--optimizer", "adam"], "unknown optimizer"),
        (&["train", "--device", "tpu"], "unknown device"),
        (&["train", "--compartments", "zero"], "--compartments"),
        (&["train", "--schedule", "rbd,sgd"], ":EPOCH"),
        (&["train", "--dataset", "svhn"], "svhn"),
        (
            &["train", "--nes-epochs", "often"],
            "unknown NES epoch accounting",
        ),
        (
            &[
                "train",
                "--schedule",
                "nes@2^-3:1,sgd",
                "--nes-epochs",
                "released",
            ],
            "--nes-epochs: released",
        ),
    ];
    for (args, needle) in cases {
        let o = rbd()
            .args(args)
            .args(["--data-dir", "/nonexistent"])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle),
            "{args:?}: error {err:?} does not mention {needle:?}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
    let o = rbd().args(["train", "--no-such-flag"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--no-such-flag"));
}

#[test]
fn corrupt_data_and_divergence_get_clear_errors() {
    let (dir, data) = scratch_with_data("bad", 600);
    let data_arg = format!("idx:{}", data.display());
    // Divergence: an absurd learning rate.
    let out = dir.join("diverge");
    let o = run(&train_args(
        &data_arg,
        out.to_str().unwrap(),
        "sgd",
        &["--epochs", "1", "--lr", "2^40"],
    ));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("diverged"), "{err}");
    // Truncated labels file.
    let labels = data.join("train-labels-idx1-ubyte");
    let bytes = std::fs::read(&labels).unwrap();
    std::fs::write(&labels, &bytes[..bytes.len() - 10]).unwrap();
    let o = run(&train_args(
        &data_arg,
        dir.join("t").to_str().unwrap(),
        "sgd",
        &["--epochs", "1"],
    ));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("train-labels-idx1-ubyte") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn hybrid_schedules_switch_and_nes_runs() {
    let (dir, data) = scratch_with_data("hybrid", 800);
    let data_arg = format!("idx:{}", data.display());
    let out = dir.join("hybrid");
    let mut args = train_args(
        &data_arg,
        out.to_str().unwrap(),
        "sgd",
        &["--epochs", "3", "--dim", "20"],
    );
    args.extend_from_slice(&["--schedule", "sgd@2^-3:1,rbd@2^0:2,sgd@2^-4"]);
    assert!(run(&args).status.success());
    let m = metrics(&out);
    let opts: Vec<&str> = m.iter().map(|r| r["optimizer"].as_str().unwrap()).collect();
    assert_eq!(opts, ["sgd", "rbd", "sgd"]);
    assert_eq!(m[1]["lr"].as_f64().unwrap(), 1.0);
    // NES: population 4 → one step per 4 batches.
    let nes = dir.join("nes");
    let o = run(&train_args(
        &data_arg,
        nes.to_str().unwrap(),
        "nes",
        &["--epochs", "1", "--dim", "4", "--lr", "2^-2"],
    ));
    assert!(o.status.success());
    let m = metrics(&nes);
    assert_eq!(m[0]["step"].as_u64().unwrap(), 600 / 32 / 4);
    // A population larger than an epoch's batches is refused, not run as empty epochs.
    let big = dir.join("nes-big");
    let o = run(&train_args(
        &data_arg,
        big.to_str().unwrap(),
        "nes",
        &["--epochs", "1", "--dim", "100", "--lr", "2^-2"],
    ));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("batches per step"));
}

#[test]
fn info_bench_and_experiment_commands_produce_their_output() {
    let o = run(&["models"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for d in ["101770", "394634", "93322", "122570", "78330", "468986"] {
        assert!(text.contains(d), "rbd models lacks {d}:\n{text}");
    }
    let o = run(&["devices"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("cpu: native Rust"));
    let o = run(&["devices", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("devices --json is JSON");
    for a in v["adapters"].as_array().expect("an adapter list") {
        // The one rule: a GPU is what is not a CPU adapter; Vulkan discrete implies GPU.
        let cpu = a["device_type"] == "Cpu";
        assert_eq!(a["is_gpu"], !cpu, "{a}");
        if a["vulkan_discrete"] == true {
            assert!(a["backend"] == "Vulkan" && a["is_gpu"] == true, "{a}");
        }
    }

    let o = run(&[
        "bench",
        "kernels",
        "--quick",
        "--json",
        "--repeats",
        "1",
        "--backends",
        "cpu",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("bench kernels --json is JSON");
    let rows = v["rows"].as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["kernel"].as_str().unwrap().starts_with("matmul")));
    assert!(rows
        .iter()
        .all(|r| r["timing"]["median_ms"].as_f64().unwrap() > 0.0));
    assert!(rows
        .iter()
        .any(|r| r["gflops"].as_f64().unwrap_or(0.0) > 1.0));
    // "% peak" divides by a peak measured in the same run, for every cpu GFLOP/s row.
    let peak = v["cpu_peak"]["gflops"].as_f64().expect("cpu_peak measured");
    assert!(peak > 0.0);
    for r in rows.iter().filter(|r| r["gflops"].is_number()) {
        let want = 100.0 * r["gflops"].as_f64().unwrap() / peak;
        let got = r["percent_of_cpu_peak"]
            .as_f64()
            .expect("% of peak on cpu rows");
        assert!((got - want).abs() < 1e-9 * want.max(1.0), "{r}");
    }

    let dir = scratch("orth");
    let o = run(&[
        "experiment",
        "orthogonality",
        "--max-exponent",
        "4",
        "--pairs",
        "20",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let csv = std::fs::read_to_string(dir.join("orthogonality.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    // The spread of the cosine shrinks like 1/√D.
    let std_at = |i: usize| lines[i].split(',').nth(3).unwrap().parse::<f64>().unwrap();
    assert!(std_at(1) > 5.0 * std_at(4), "{csv}");
    assert!(dir.join("orthogonality.svg").exists());
}
