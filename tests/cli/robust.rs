//! Sweeps and files as a new user meets them (issue 23): diverged runs are recorded
//! and skipped, non-finite numbers round-trip through every file, manifests cannot
//! write outside their results, a run is finished only with its final parameters on
//! disk, identical runs write identical bytes, non-finite parameters are refused, and
//! the errors of the cases tried say what is wrong and where.

use super::{rbd, reproduce_on_cpu as reproduce, run, scratch, synthetic, train_args};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A manifest named `name` over the IDX data in `data`, with `runs` (TOML `[[run]]`
/// tables) after the defaults.
fn manifest(dir: &Path, name: &str, head: &str, data: &Path, runs: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ntitle = \"t\"\n{head}\n[defaults]\nmodel = \"fc\"\ndataset = \"idx:{}\"\nval_size = 200\ndim = 4\nrow = \"R\"\n{runs}",
            data.display()
        ),
    )
    .unwrap();
    path
}

fn data_in(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    synthetic(&data, 1000);
    data
}

/// Every file under `dir` but the lock and `provenance.jsonl` (where the clock and the
/// machine go), with the SHA-256 of its bytes.
fn deterministic_files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name == ".lock" || name == "provenance.jsonl" {
            continue;
        }
        let sum: String = Sha256::digest(std::fs::read(&p).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.insert(name, sum);
    }
    out
}

#[test]
fn diverged_runs_are_recorded_skipped_and_summarised_and_non_finite_values_read_back() {
    let dir = scratch("diverge");
    let data = data_in(&dir);
    let m = manifest(
        &dir,
        "div",
        "epochs = 2\nseeds = 1",
        &data,
        r#"
[[run]]
id = "huge"
optimizer = "sgd"
lr = "2^20"
column = "huge"

[[run]]
id = "nes-nan"
optimizer = "nes"
lr = "2^-3"
nes_sigma = 1e-30
nes_epochs = "update"
epochs = 1
column = "nes"

[[run]]
id = "ok"
optimizer = "sgd"
lr = "2^-3"
column = "ok"
"#,
    );
    let results = dir.join("results");
    let runs = results.join("div/runs");
    let o = reproduce(&m, &results, &[]);
    assert!(o.status.success(), "{}", text(&o));
    // The infinite loss is recorded in the words of the encoding, not as null.
    // Both runs are over, so sealed; their records read through `record::text`.
    let sealed = |dir: &Path, name: &str| rbd::train::record::text(dir, name).unwrap().unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&sealed(&runs.join("huge-seed0"), "diverged.json")).unwrap();
    assert!(
        ["Infinity", "NaN"].contains(&record["loss"].as_str().unwrap_or("")),
        "{record}"
    );
    // NES with a tiny σ: a finite training loss, a NaN validation loss in both files.
    let nan = runs.join("nes-nan-seed0");
    let row: serde_json::Value = serde_json::from_str(&sealed(&nan, "metrics.jsonl")).unwrap();
    assert!(row["train_loss"].as_f64().is_some_and(f64::is_finite));
    assert_eq!(row["val_loss"], "NaN", "{row}");
    let csv = run(&[
        "results",
        "export",
        nan.to_str().unwrap(),
        "--csv",
        "metrics",
    ]);
    assert!(text(&csv).contains(",NaN,"), "{}", text(&csv));
    // The summary shows the diverged run as diverged; the NaN run as finished.
    let csv = read(&results.join("div/summary.csv"));
    let field = |id: &str, i: usize| -> String {
        csv.lines()
            .find(|l| l.starts_with(&format!("{id},")))
            .unwrap()
            .split(',')
            .nth(i)
            .unwrap()
            .to_string()
    };
    assert_eq!(field("huge", 13), "1", "{csv}");
    assert_eq!(field("huge", 4), "0", "{csv}");
    assert_eq!(field("nes-nan", 4), "1", "{csv}");
    assert!(read(&results.join("div/README.md")).contains("diverged (1 seeds)"));

    // Reruns skip the diverged run and read the NaN row: exit 0, nothing trained.
    let o = reproduce(&m, &results, &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("[1/3 huge seed 0] diverged at epoch 1 (loss "),
        "{out}"
    );
    assert!(out.contains("): skipped"), "{out}");
    assert!(out.contains("[2/3 nes-nan seed 0] done"), "{out}");
    assert!(
        !out.contains("starting") && !out.contains("resuming"),
        "{out}"
    );
    let o = reproduce(&m, &results, &["--summarize"]);
    assert!(o.status.success(), "{}", text(&o));
    // A resume reads the NaN row back and goes on (to diverge: σ is too small).
    let o = run(&["train", "--resume", nan.to_str().unwrap(), "--epochs", "2"]);
    let out = text(&o);
    assert!(out.contains("diverged: the training loss became"), "{out}");
    assert!(!out.contains("invalid type"), "{out}");

    // Files from older binaries, which wrote null for a non-finite number, still read
    // (in an open run directory, as those binaries left them).
    rbd::train::record::unseal(&runs.join("huge-seed0")).unwrap();
    rbd::train::record::unseal(&nan).unwrap();
    std::fs::write(
        runs.join("huge-seed0/diverged.json"),
        r#"{"epoch":1,"step":4,"loss":null}"#,
    )
    .unwrap();
    let metrics =
        read(&nan.join("metrics.jsonl")).replace(r#""val_loss":"NaN""#, r#""val_loss":null"#);
    std::fs::write(nan.join("metrics.jsonl"), metrics).unwrap();
    let o = reproduce(&m, &results, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("[1/3 huge seed 0] diverged at epoch 1 (loss NaN): skipped"));

    // A garbled record: the error names the file.
    rbd::train::record::unseal(&runs.join("huge-seed0")).unwrap();
    let record = runs.join("huge-seed0/diverged.json");
    std::fs::write(&record, "{\"epoch\": 1, \"st").unwrap();
    let o = reproduce(&m, &results, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&record.display().to_string()),
        "{}",
        text(&o)
    );
}

#[test]
fn tune_records_diverged_trials_and_reruns_reuse_them() {
    let dir = scratch("tune-diverge");
    let data = data_in(&dir);
    let results = dir.join("results");
    let dataset = format!("idx:{}", data.display());
    // NES at σ = 1e-24: the higher rates overflow in their second epoch, the lowest not.
    let tune = |epochs: &str| {
        run(&[
            "tune",
            "--model",
            "fc",
            "--dataset",
            &dataset,
            "--optimizer",
            "nes",
            "--nes-epochs",
            "update",
            "--nes-sigma",
            "1e-24",
            "--dim",
            "4",
            "--epochs",
            epochs,
            "--val-size",
            "200",
            "--device",
            "cpu",
            "--results",
            results.to_str().unwrap(),
        ])
    };
    let o = tune("2");
    assert!(o.status.success(), "{}", text(&o));
    let file = std::fs::read_dir(results.join("tune"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&read(&file)).unwrap();
    let trials = v["trials"].as_array().unwrap();
    let diverged: Vec<&serde_json::Value> = trials
        .iter()
        .filter(|t| !t["diverged_at_epoch"].is_null())
        .collect();
    assert!(!diverged.is_empty(), "no trial diverged: {v}");
    assert!(
        diverged.iter().all(|t| t["held_out_loss"] == "Infinity"),
        "{v}"
    );
    let best = v["best_exponent"].as_i64().unwrap();
    assert!(trials
        .iter()
        .any(|t| t["exponent"] == best && t["held_out_loss"].is_number()));
    // A rerun (after a kill, say) reads every trial back, diverged ones included.
    let o = tune("2");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("starting"), "a trial ran again: {out}");
    assert!(out.contains("): skipped"), "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&read(&file)).unwrap(),
        v
    );
    // A longer budget extends the finite trials and keeps the diverged ones.
    let o = tune("3");
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn names_from_a_manifest_cannot_leave_the_results_directory() {
    let dir = scratch("escape");
    let data = dir.join("data");
    let results = dir.join("inside").join("results");
    let run = "[[run]]\nid = \"a\"\noptimizer = \"sgd\"\nlr = \"2^-3\"\n";
    let head = "epochs = 1\nseeds = 1";
    // (manifest file, field at fault, head, run tables, the manifest's name if not the file's)
    let cases: Vec<(&str, &str, String, String, &str)> = vec![
        ("escaped", "name", head.into(), run.into(), "../escaped"),
        (
            "absolute",
            "name",
            head.into(),
            run.into(),
            "/tmp/rbd-absolute-name",
        ),
        (
            "id",
            "id",
            head.into(),
            run.replace("id = \"a\"", "id = \"../../../outside\""),
            "",
        ),
        (
            "dots",
            "id",
            head.into(),
            run.replace("id = \"a\"", "id = \"..\""),
            "",
        ),
        (
            "plot",
            "plot 1: file",
            head.into(),
            format!("{run}[[plot]]\nkind = \"versus\"\nfile = \"../../plot.svg\"\ntitle = \"p\"\n"),
            "",
        ),
        (
            "runs-of",
            "runs_of",
            format!("{head}\nruns_of = \"..\""),
            run.into(),
            "",
        ),
    ];
    for (case, field, head, runs, name) in cases {
        let m = manifest(&dir, case, &head, &data, &runs);
        if !name.is_empty() {
            let t = read(&m).replace(&format!("name = \"{case}\""), &format!("name = \"{name}\""));
            std::fs::write(&m, t).unwrap();
        }
        for extra in [&["--dry-run"][..], &[]] {
            let o = reproduce(&m, &results, extra);
            let out = text(&o);
            assert_eq!(o.status.code(), Some(1), "{case}: {out}");
            assert!(
                out.contains(&format!("{field} = ")) && out.contains("plain name"),
                "{case}: {out}"
            );
            assert!(out.contains(&m.display().to_string()), "{case}: {out}");
        }
    }
    // Nothing was written anywhere: not the results, not beside them.
    assert!(!dir.join("inside").exists());
    assert!(!dir.join("escaped").exists() && !dir.join("outside").exists());
    assert!(!Path::new("/tmp/rbd-absolute-name").exists());
}

#[test]
fn a_run_is_finished_only_with_its_final_parameters_on_disk() {
    let dir = scratch("finished");
    let data = data_in(&dir);
    let m = manifest(
        &dir,
        "fin",
        "epochs = 2\nseeds = 1",
        &data,
        "[[run]]\nid = \"a\"\noptimizer = \"sgd\"\nlr = \"2^-3\"\n",
    );
    let results = dir.join("results");
    let run_dir = results.join("fin/runs/a-seed0");
    assert!(reproduce(&m, &results, &[]).status.success());
    let final_file = run_dir.join("final.safetensors");
    let checkpoint = run_dir.join("checkpoint.safetensors");
    let finished = std::fs::read(&final_file).unwrap();
    let rows = || {
        rbd::train::record::text(&run_dir, "metrics.jsonl")
            .unwrap()
            .unwrap()
    };
    let rows_finished = rows();

    // Stopped between the last checkpoint and the final file: the rerun finishes it.
    std::fs::remove_file(&final_file).unwrap();
    let o = reproduce(&m, &results, &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("[1/1 a seed 0] resuming after 2 epochs"),
        "{out}"
    );
    assert_eq!(std::fs::read(&final_file).unwrap(), finished);

    // Stopped between the last epoch's row and its checkpoint: the checkpoint on disk
    // is epoch 1's (the same run at 1 epoch writes it); the rerun trains epoch 2 again.
    let one = dir.join("one");
    assert!(reproduce(&m, &one, &["--epochs", "1"]).status.success());
    std::fs::copy(
        one.join("fin/runs/a-seed0/checkpoint.safetensors"),
        &checkpoint,
    )
    .unwrap();
    std::fs::remove_file(&final_file).unwrap();
    let o = reproduce(&m, &results, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("epoch 2/2"), "{}", text(&o));
    assert_eq!(std::fs::read(&final_file).unwrap(), finished);
    assert_eq!(rows(), rows_finished);

    // A final file that does not verify is named, not taken as finished.
    let mut bad = finished.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&final_file, &bad).unwrap();
    let o = reproduce(&m, &results, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&final_file.display().to_string()) && text(&o).contains("checksum"),
        "{}",
        text(&o)
    );

    // Every row and no parameters at all (results/ keeps none): finished, as before.
    std::fs::remove_file(&final_file).unwrap();
    std::fs::remove_file(&checkpoint).unwrap();
    let o = reproduce(&m, &results, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("[1/1 a seed 0] done"), "{}", text(&o));
    assert!(!final_file.exists() && !checkpoint.exists());
}

#[test]
fn identical_runs_write_identical_bytes() {
    let dir = scratch("bytes");
    let data = data_in(&dir);
    let data_arg = format!("idx:{}", data.display());
    for (optimizer, extra) in [
        ("rbd", &["--lr", "2^0", "--dim", "8", "--correlation"][..]),
        ("sgd", &["--lr", "2^-3", "--checkpoint-every", "7steps"]),
    ] {
        let mut sums = Vec::new();
        for copy in ["a", "b"] {
            let out = dir.join(format!("{optimizer}-{copy}"));
            let mut args = train_args(&data_arg, out.to_str().unwrap(), optimizer, extra);
            args.extend(["--epochs", "2", "--eval-test", "--log-every", "5"]);
            let o = run(&args);
            assert!(o.status.success(), "{}", text(&o));
            sums.push(deterministic_files(&out));
            // The clock went to provenance.jsonl: one line per epoch.
            let prov = read(&out.join("provenance.jsonl"));
            let timed = prov.lines().filter(|l| l.contains("\"seconds\"")).count();
            assert_eq!(timed, 2, "{prov}");
            assert!(!read(&out.join("metrics.jsonl")).contains("seconds"));
        }
        let names: Vec<&String> = sums[0].keys().collect();
        for f in [
            "config.json",
            "metrics.jsonl",
            "metrics.csv",
            "steps.jsonl",
            "steps.csv",
            "accuracy.svg",
            "checkpoint.safetensors",
            "final.safetensors",
        ] {
            assert!(sums[0].contains_key(f), "{optimizer}: no {f} in {names:?}");
        }
        assert_eq!(
            sums[0], sums[1],
            "{optimizer}: identical runs, different files"
        );
    }
}

/// Rewrites `path`'s tensor `name` element `index` to NaN with a correctly recomputed
/// checksum (docs/checkpoints.md), as a hand-edited checkpoint would be.
fn poison(path: &Path, name: &str, index: usize) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let values = v
                .data()
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (n, v.shape().to_vec(), values)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors.iter_mut().find(|t| t.0 == name).unwrap().2[index] = f32::NAN;
    let mut h = Sha256::new();
    for (n, shape, values) in &tensors {
        h.update((n.len() as u64).to_le_bytes());
        h.update(n.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for &s in shape {
            h.update((s as u64).to_le_bytes());
        }
        for v in values {
            h.update(v.to_le_bytes());
        }
    }
    h.update(meta["rbd"].as_bytes());
    let sum: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    meta.insert("rbd.sha256".into(), sum);
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            (
                n.clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

#[test]
fn a_checkpoint_with_a_non_finite_parameter_is_refused_naming_it() {
    let dir = scratch("nan-checkpoint");
    let data = data_in(&dir);
    let data_arg = format!("idx:{}", data.display());
    let out = dir.join("run");
    let o = run(&train_args(
        &data_arg,
        out.to_str().unwrap(),
        "sgd",
        &["--epochs", "1", "--lr", "2^-3"],
    ));
    assert!(o.status.success());
    for file in ["checkpoint.safetensors", "final.safetensors"] {
        poison(&out.join(file), "dense_1.bias", 3);
    }
    let before = std::fs::read(out.join("metrics.jsonl")).unwrap();
    let o = run(&["train", "--resume", out.to_str().unwrap(), "--epochs", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("dense_1.bias[3] = NaN"), "{err}");
    assert!(err.contains(".safetensors"), "{err}");
    assert_eq!(std::fs::read(out.join("metrics.jsonl")).unwrap(), before);
}

#[test]
fn the_unclear_errors_of_the_cases_tried_are_clear() {
    let dir = scratch("errors");
    let data = data_in(&dir);
    let results = dir.join("results");
    let one = "[[run]]\nid = \"a\"\noptimizer = \"sgd\"\nlr = \"2^-3\"\n";
    // (manifest head, run tables, words of the error)
    let cases = [
        ("epochs = 1\nseeds = 0", one.to_string(), "seeds = 0"),
        ("epochs = 0\nseeds = 1", one.to_string(), "epochs = 0"),
        (
            "epochs = 1\nseeds = 1",
            format!("{one}paper = nan\n"),
            "paper = NaN must be a finite number",
        ),
        (
            "epochs = 1\nseeds = 1",
            format!("{one}paper = 90.0\npaper_std = -0.5\n"),
            "paper_std = -0.5 must not be negative",
        ),
    ];
    for (i, (head, runs, words)) in cases.iter().enumerate() {
        let m = manifest(&dir, &format!("case{i}"), head, &data, runs);
        let o = reproduce(&m, &results, &["--dry-run"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains(words) && out.contains(&m.display().to_string()),
            "{out}"
        );
        assert!(!out.contains("filter"), "{out}");
    }

    // A data directory that is a file.
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let cifar = |data_dir: &Path| {
        let mut c = rbd();
        c.args([
            "train",
            "--model",
            "fc",
            "--dataset",
            "cifar10",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--out",
            dir.join("never").to_str().unwrap(),
        ])
        .env_remove("RBD_CIFAR10_ARCHIVE")
        .env_remove("RBD_CIFAR10_BUILDER")
        .env_remove("RBD_CIFAR10_URL")
        .env_remove("RBD_DOWNLOAD_MIN_RATE");
        c
    };
    let o = cifar(&file).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("a-file: the data directory is not a directory"),
        "{out}"
    );
    assert!(!out.contains("os error"), "{out}");

    // A local archive that never ends is read no further than the pinned size.
    let t = Instant::now();
    let o = cifar(&dir.join("d1"))
        .env("RBD_CIFAR10_ARCHIVE", "/dev/zero")
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("/dev/zero") && out.contains("more than 170052171"),
        "{out}"
    );
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());

    // A server that trickles: stopped at the deadline its size and the rate give.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/cifar-10-binary.tar.gz",
        listener.local_addr().unwrap()
    );
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = [0u8; 4096];
        let _ = s.read(&mut head);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 170052171\r\nConnection: close\r\n\r\n",
        );
        // A byte every 200 ms until the client hangs up (or 2 minutes pass).
        for _ in 0..600 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let t = Instant::now();
    let o = cifar(&dir.join("d2"))
        .env("RBD_CIFAR10_URL", &url)
        .env("RBD_DOWNLOAD_MIN_RATE", "100000000")
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("too slow") && out.contains("RBD_DOWNLOAD_MIN_RATE"),
        "{out}"
    );
    // 10 s of slack plus 1.7 s for 170 MB at 100 MB/s.
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let _ = server.join();
    let o = cifar(&dir.join("d3"))
        .env("RBD_CIFAR10_URL", &url)
        .env("RBD_DOWNLOAD_MIN_RATE", "fast")
        .output()
        .unwrap();
    assert!(
        text(&o).contains("RBD_DOWNLOAD_MIN_RATE=fast is not a positive number"),
        "{}",
        text(&o)
    );

    // Two sweeps started at the same instant: neither is told about flags that
    // `rbd reproduce` does not have, and afterwards every run is done once.
    let m = manifest(
        &dir,
        "twice",
        "epochs = 1\nseeds = 2",
        &data,
        "[[run]]\nid = \"a\"\noptimizer = \"sgd\"\nlr = \"2^-3\"\n",
    );
    let spawn = || {
        rbd()
            .args([
                "reproduce",
                m.to_str().unwrap(),
                "--device",
                "cpu",
                "--results",
                results.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for o in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        let out = text(&o);
        assert!(
            !out.contains("--resume") && !out.contains("--overwrite"),
            "{out}"
        );
        assert!(
            o.status.success() || out.contains("another rbd process"),
            "{out}"
        );
    }
    let o = reproduce(&m, &results, &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("] done").count(), 2, "{out}");
}

/// Every run directory and search committed under `results/` reads with this binary's
/// readers (python's peer runs aside: rbd never reads them).
#[test]
fn every_committed_result_still_reads() {
    use rbd::reproduce::runner::{read_config, DivergedRecord, DIVERGED};
    use rbd::reproduce::tune::TuneResult;
    use rbd::train::metrics::{read_epochs, read_steps};
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let mut dirs = Vec::new();
    for artefact in std::fs::read_dir(&results).unwrap() {
        let artefact = artefact.unwrap().path();
        let runs = artefact.join("runs");
        if runs.is_dir() {
            dirs.extend(rbd::train::record::runs_in(&runs).unwrap());
        }
    }
    let mut searches = 0;
    for e in std::fs::read_dir(results.join("tune")).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            dirs.extend(rbd::train::record::runs_in(&p).unwrap());
        } else if p.extension().is_some_and(|e| e == "json") {
            let t: TuneResult =
                serde_json::from_str(&read(&p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(!t.trials.is_empty());
            searches += 1;
        }
    }
    assert!(dirs.len() > 100 && searches > 5, "{} runs", dirs.len());
    for d in &dirs {
        read_config(d).unwrap_or_else(|e| panic!("{e:#}"));
        read_epochs(d).unwrap_or_else(|e| panic!("{e:#}"));
        read_steps(d).unwrap_or_else(|e| panic!("{e:#}"));
        rbd::train::trainer::timings(d).unwrap_or_else(|e| panic!("{e:#}"));
        if let Some(text) = rbd::train::record::text(d, DIVERGED).unwrap() {
            DivergedRecord::parse(&text, DIVERGED).unwrap_or_else(|e| panic!("{e:#}"));
        }
    }
}
