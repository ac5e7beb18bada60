//! Run-directory safety, as a user would meet it: every bad input or fault of the
//! table gives its exit code and message and leaves the disk as it was; runs stopped by
//! signals at random moments resume to the bit.

use super::{final_params, rbd, run, scratch_with_data, train_args};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Every file under `dir` (but the lock) with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != ".lock" {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn stderr_of(args: &[&str]) -> (i32, String) {
    let o = rbd().args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Flips one bit of a checkpoint at the first occurrence of `needle` (+ `offset`), or
/// of the last byte when `needle` is empty.
fn flip(path: &Path, needle: &[u8], offset: usize, mask: u8) {
    let mut b = std::fs::read(path).unwrap();
    let at = if needle.is_empty() {
        b.len() - 1
    } else {
        b.windows(needle.len()).position(|w| w == needle).unwrap() + offset
    };
    b[at] ^= mask;
    std::fs::write(path, b).unwrap();
}

#[test]
fn bad_inputs_and_faults_lose_nothing() {
    let (dir, data) = scratch_with_data("safety", 600);
    let data_arg = format!("idx:{}", data.display());
    let existing = dir.join("existing");
    let ex = existing.to_str().unwrap();
    let o = run(&train_args(
        &data_arg,
        ex,
        "rbd",
        &[
            "--epochs",
            "2",
            "--dim",
            "8",
            "--lr",
            "2^-1",
            "--checkpoint-every",
            "5steps",
        ],
    ));
    assert!(o.status.success());
    let ck = existing.join("checkpoint.safetensors");
    assert!(ck.exists() && existing.join("steps.jsonl").exists());
    let nowhere = dir.join("never-created");
    let nw = nowhere.to_str().unwrap();
    // (what a user typed, exit code, words the error must contain)
    type Case<'a> = (Vec<&'a str>, i32, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        // A new run into a directory that holds one.
        (
            train_args(&data_arg, ex, "sgd", &["--lr", "2^-3"]),
            1,
            vec!["already holds a run", "--resume", "--overwrite"],
        ),
        // A rejected flag pointed at an existing run.
        (
            train_args(&data_arg, ex, "rbd", &["--compartments", "200000"]),
            1,
            vec!["--compartments", "200000", "D = 101770"],
        ),
        (
            train_args(&data_arg, ex, "fpd", &["--dim", "1000000000000"]),
            1,
            vec!["--dim", "D = 101770"],
        ),
        (
            train_args(&data_arg, nw, "rbd", &["--dim", "101771"]),
            1,
            vec!["--dim", "101771"],
        ),
        (
            train_args(
                &data_arg,
                nw,
                "rbd",
                &["--compartments", "layer", "--split-dim", "--dim", "1"],
            ),
            1,
            vec!["--split-dim"],
        ),
        (
            vec![
                "train",
                "--model",
                "fc",
                "--dataset",
                &data_arg,
                "--out",
                nw,
                "--val-size",
                "0",
            ],
            2,
            vec!["--val-size"],
        ),
        (
            vec![
                "train",
                "--model",
                "fc",
                "--dataset",
                &data_arg,
                "--out",
                nw,
                "--val-size",
                "600",
            ],
            1,
            vec!["--val-size", "nothing to train on"],
        ),
        (
            train_args(&data_arg, nw, "nes", &["--nes-sigma", "-1"]),
            1,
            vec!["--nes-sigma", "positive"],
        ),
        (
            train_args(&data_arg, nw, "sgd", &["--epochs", "-1"]),
            2,
            vec!["--epochs", "-1"],
        ),
        (
            train_args(&data_arg, nw, "sgd", &["--lr", "2^(-3"]),
            2,
            vec!["--lr", "parenthesis"],
        ),
        (
            train_args(&data_arg, nw, "sgd", &["--schedule", "rbd:0,sgd"]),
            2,
            vec!["--schedule", "never run"],
        ),
        (
            train_args(
                &data_arg,
                nw,
                "sgd",
                &["--schedule", "rbd:5,sgd", "--epochs", "2"],
            ),
            1,
            vec!["--schedule", "sgd would never run"],
        ),
        (
            train_args(&data_arg, nw, "nes", &["--dim", "100"]),
            1,
            vec!["--dim", "batches per step"],
        ),
        // Resuming with flags that would change the run.
        (
            vec!["train", "--resume", ex, "--model", "cnn", "--epochs", "5"],
            1,
            vec!["--model", "cannot change"],
        ),
        (
            vec!["train", "--resume", ex, "--epochs", "1"],
            1,
            vec!["extended"],
        ),
        (vec!["train", "--resume", nw], 1, vec!["no run to resume"]),
    ];
    let before = tree(&dir);
    for (args, code, words) in &cases {
        let (got, err) = stderr_of(args);
        assert_eq!(got, *code, "{args:?}: exit code {got}, stderr: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
        }
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut unique = lines.clone();
        unique.dedup();
        assert_eq!(lines, unique, "{args:?} repeats itself: {err}");
        assert_eq!(tree(&dir), before, "{args:?} changed the disk");
        assert!(!nowhere.exists(), "{args:?} created {nw}");
    }

    // Corrupt checkpoints: a flipped bit in the tensors or in the position (step 78 ->
    // 70 style) is refused and nothing is written.
    let good = std::fs::read(&ck).unwrap();
    for (needle, offset, mask) in [(&b""[..], 0, 1u8), (&b"\\\"step\\\":"[..], 9, 4)] {
        flip(&ck, needle, offset, mask);
        let before = tree(&dir);
        let (code, err) = stderr_of(&["train", "--resume", ex, "--epochs", "3", "--quiet"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("checksum mismatch"), "{err}");
        assert_eq!(tree(&dir), before);
        std::fs::write(&ck, &good).unwrap();
    }

    // A second process on a held directory fails at once, naming the holder.
    let holder = rbd()
        .args(["train", "--resume", ex, "--epochs", "400", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut holder = KillOnDrop(holder);
    let lock = existing.join(".lock");
    let t = Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |s| !s.contains(&holder.0.id().to_string())) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the holder never locked"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    let (code, err) = stderr_of(&["train", "--resume", ex, "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("in use by another rbd process")
            && err.contains(&format!("pid {}", holder.0.id())),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the second process waited"
    );
    let (code, err) =
        stderr_of(&[&train_args(&data_arg, ex, "sgd", &["--overwrite"])[..]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use"), "{err}");
    holder.0.kill().unwrap();
    holder.0.wait().unwrap();

    // --overwrite replaces a run whole: no file of the old one survives.
    let o = run(&train_args(
        &data_arg,
        ex,
        "sgd",
        &["--lr", "2^-3", "--overwrite", "--checkpoint-every", "0"],
    ));
    assert!(o.status.success());
    assert!(
        !ck.exists(),
        "the old run's checkpoint survived --overwrite"
    );
    let cfg = std::fs::read_to_string(existing.join("config.json")).unwrap();
    assert!(cfg.contains("\"sgd\""), "{cfg}");
}

/// Kills its process when dropped (a failing assertion must not leave it running).
struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn runs_stopped_at_random_moments_resume_bit_for_bit() {
    let (dir, data) = scratch_with_data("soak", 1200);
    let data_arg = format!("idx:{}", data.display());
    let extra = [
        "--epochs",
        "4",
        "--lr",
        "2^-1",
        "--dim",
        "40",
        "--checkpoint-every",
        "3steps",
        "--log-every",
        "4",
    ];
    let whole = dir.join("whole");
    let t = Instant::now();
    assert!(run(&train_args(
        &data_arg,
        whole.to_str().unwrap(),
        "rbd",
        &extra
    ))
    .status
    .success());
    let span = t.elapsed().as_millis() as u64;
    let out = dir.join("stopped");
    let o = out.to_str().unwrap();
    // SIGKILL three times, then SIGINT, at pseudo-random moments within the run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut interrupted = 0;
    let mut sigint_seen = false;
    for (round, sig) in [libc::SIGKILL, libc::SIGKILL, libc::SIGKILL, libc::SIGINT]
        .into_iter()
        .enumerate()
    {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // At most 0.175 of the uninterrupted run's span per round (0.7 in all), so the run
        // cannot finish before the last signal even when the machine's load changes.
        let delay = span / 20 + state % (span / 8 + 1);
        let args: Vec<&str> = if out.join("config.json").exists() {
            vec!["train", "--resume", o, "--quiet"]
        } else {
            train_args(&data_arg, o, "rbd", &extra)
        };
        let child = rbd()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        signal(&child, sig);
        let result = child.wait_with_output().unwrap();
        if out.join("final.safetensors").exists() {
            break; // It finished before the signal.
        }
        interrupted += 1;
        if sig == libc::SIGINT {
            let err = String::from_utf8_lossy(&result.stderr);
            if err.contains("stopped by SIGINT") {
                assert_eq!(result.status.code(), Some(130), "round {round}: {err}");
                assert!(err.contains(&format!("rbd train --resume {o}")), "{err}");
                sigint_seen = true;
            }
        }
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} of the signals hit a running run"
    );
    if !out.join("final.safetensors").exists() {
        assert!(run(&["train", "--resume", o, "--quiet"]).status.success());
    }
    assert_eq!(
        final_params(&whole),
        final_params(&out),
        "the stopped run ended elsewhere"
    );
    // The clock is kept in provenance.jsonl: the metric files match to the byte.
    let rows = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    for f in ["metrics.jsonl", "metrics.csv", "steps.jsonl", "steps.csv"] {
        assert_eq!(rows(&whole, f), rows(&out, f), "{f}");
    }
    let _ = sigint_seen;
}

#[test]
fn sigint_checkpoints_and_says_how_to_resume() {
    let (dir, data) = scratch_with_data("sigint", 1200);
    let data_arg = format!("idx:{}", data.display());
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    // Checkpoints are off: the stop itself must write one.
    let extra = [
        "--epochs",
        "50",
        "--lr",
        "2^-1",
        "--dim",
        "40",
        "--checkpoint-every",
        "0",
    ];
    let child = rbd()
        .args(train_args(&data_arg, o, "rbd", &extra))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first epoch's row, then interrupt.
    let t = Instant::now();
    while !out.join("metrics.jsonl").exists() {
        assert!(t.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, libc::SIGINT);
    let result = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(130), "{err}");
    assert!(
        err.contains("stopped by SIGINT") && err.contains(&format!("rbd train --resume {o}")),
        "{err}"
    );
    assert!(out.join("checkpoint.safetensors").exists());
    assert!(!out.join("final.safetensors").exists());
    // SIGTERM likewise, with its own exit code.
    let child = rbd()
        .args(["train", "--resume", o, "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    let result = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(143), "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
}

#[test]
fn wgpu_runs_read_losses_in_windows_and_still_catch_divergence() {
    let (dir, data) = scratch_with_data("wgpu-sums", 700);
    let data_arg = format!("idx:{}", data.display());
    let ok = dir.join("ok");
    let mut args = train_args(
        &data_arg,
        ok.to_str().unwrap(),
        "sgd",
        &["--lr", "2^-3", "--log-every", "4"],
    );
    let at = args.iter().position(|a| *a == "cpu").unwrap();
    args[at] = "wgpu-cpu";
    let o = run(&args);
    assert!(o.status.success());
    // The epoch's training loss is the image-weighted mean of its step windows: the
    // per-batch losses read back in windows add up to the same sums.
    let rows = |f: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("ok").join(f))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let steps = rows("steps.jsonl");
    let epoch = &rows("metrics.jsonl")[0];
    let (mut loss, mut images) = (0.0, 0.0);
    for s in &steps {
        let n = s["images"].as_f64().unwrap();
        loss += s["train_loss"].as_f64().unwrap() * n;
        images += n;
    }
    assert_eq!(images, (500 / 32 * 32) as f64);
    let want = epoch["train_loss"].as_f64().unwrap();
    assert!(
        (loss / images - want).abs() < 1e-9 * want.abs().max(1.0),
        "{} vs {want}",
        loss / images
    );
    // A diverging rate is caught although losses are read only every few steps, and no
    // checkpoint is written from non-finite parameters.
    let bad = dir.join("bad");
    let mut args = train_args(
        &data_arg,
        bad.to_str().unwrap(),
        "sgd",
        &[
            "--lr",
            "2^40",
            "--log-every",
            "4",
            "--checkpoint-every",
            "2steps",
        ],
    );
    let at = args.iter().position(|a| *a == "cpu").unwrap();
    args[at] = "wgpu-cpu";
    let o = rbd().args(&args).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("diverged"), "{err}");
    if bad.join("checkpoint.safetensors").exists() {
        let data = std::fs::read(bad.join("checkpoint.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&data).unwrap();
        for (name, t) in st.tensors() {
            let v: Vec<f32> = bytemuck_cast(t.data());
            assert!(
                v.iter().all(|x| x.is_finite()),
                "{name} holds non-finite values"
            );
        }
    }
}

fn bytemuck_cast(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn a_checkpoint_between_an_epochs_last_step_and_its_evaluation_resumes() {
    use rbd::train::kinds::{CheckpointEvery, DatasetSpec};
    use rbd::train::{Claim, RunConfig, Segment, Silent, Trainer};
    use rbd_engine::DeviceChoice;
    use rbd_models::ModelKind;
    use rbd_optim::OptimizerKind;
    let (dir, data) = scratch_with_data("epoch-edge", 600);
    let mut cfg = RunConfig::new(
        ModelKind::Fc,
        DatasetSpec::Idx(data.clone()),
        vec![Segment {
            optimizer: OptimizerKind::Rbd,
            lr: 0.5,
            lr_source: "given".into(),
            until_epoch: None,
        }],
    );
    cfg.epochs = 2;
    cfg.data.val_size = 200;
    cfg.settings.directions.dim = 10;
    cfg.device = DeviceChoice::Cpu;
    cfg.options.checkpoint_every = CheckpointEvery::Epochs(1);
    let stop = rbd::signals::StopFlag::new;
    let whole = dir.join("whole");
    Trainer::start(cfg.clone(), &whole, Claim::New, Box::new(Silent), stop())
        .unwrap()
        .run()
        .unwrap();
    // Every step of epoch 1 ran, its evaluation did not, and a checkpoint was written
    // (what a SIGINT or a step checkpoint at the epoch's last step leaves).
    let edge = dir.join("edge");
    let mut t = Trainer::start(cfg, &edge, Claim::New, Box::new(Silent), stop()).unwrap();
    t.train_epoch().unwrap();
    assert!(t.checkpoint_if_due().unwrap());
    drop(t);
    Trainer::resume(&edge, &Default::default(), Box::new(Silent), stop())
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(final_params(&whole), final_params(&edge));
}
