//! `rbd reproduce` and `rbd tune` end to end on a small manifest over generated data:
//! the outputs exist and agree with the runs, a killed sweep continues where it
//! stopped (finished runs skipped, the interrupted one resumed), and tuning picks a
//! rate that neither diverges nor crawls.

use super::{
    kill_once_written, manifest_defaults, manifest_run, rbd, run, scratch, scratch_with_data,
};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PLOTS: &str = r#"
[[plot]]
kind = "curves"
file = "curves"
title = "mini"

[[plot]]
kind = "versus"
file = "acc-vs-d.svg"
title = "accuracy against d"
y = "val_accuracy"
"#;

fn manifest(dir: &Path, data: &Path) -> std::path::PathBuf {
    let text = [
        "name = \"mini\"\ntitle = \"a miniature table\"\nepochs = 3\nseeds = 2\nnotes = [\"generated data\"]\n".into(),
        manifest_defaults(data),
        manifest_run("sgd", "2^-3", "SGD", &["paper = 99.0", "paper_std = 0.5"]),
        manifest_run("rbd", "2^0", "RBD", &["x = 20", "series = \"RBD\""]),
        PLOTS.into(),
    ]
    .concat();
    let path = dir.join("mini.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_sweep_writes_its_summary_and_continues_after_a_kill() {
    let (dir, data) = scratch_with_data("reproduce", 1000);
    let m = manifest(&dir, &data);
    let results = dir.join("results");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "reproduce",
            m.to_str().unwrap(),
            "--device",
            "cpu",
            "--results",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(results.to_str().unwrap().to_string());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    // The dry run lists the 4 runs with estimates and writes nothing.
    let o = rbd().args(args(&["--dry-run"])).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.matches(" new ").count(), 4, "{text}");
    assert!(text.contains("4 runs; estimated"), "{text}");
    assert!(!results.exists(), "a dry run wrote {}", results.display());

    // Kill the sweep while its third run (rbd seed 0) trains.
    let third = results.join("mini/runs/rbd-seed0/checkpoint.safetensors");
    kill_once_written(rbd().args(args(&[])), &third, "the third run");
    let done = results.join("mini/runs/sgd-seed1/final.safetensors");
    assert!(done.exists());
    let stamp = std::fs::metadata(&done).unwrap().modified().unwrap();

    let o = run(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("[1/4 sgd seed 0] done") && out.contains("[2/4 sgd seed 1] done"),
        "{out}"
    );
    assert!(out.contains("[3/4 rbd seed 0] resuming"), "{out}");
    assert_eq!(
        std::fs::metadata(&done).unwrap().modified().unwrap(),
        stamp,
        "a finished run was trained again"
    );

    let mini = results.join("mini");
    for f in [
        "summary.csv",
        "README.md",
        "curves-fc-synth.svg",
        "acc-vs-d.svg",
    ] {
        assert!(mini.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(mini.join("summary.csv")).unwrap();
    let sgd: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("sgd,"))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(sgd[4], "2", "two finished seeds: {csv}");
    // The mean in the summary is the mean of the two runs' last validation accuracies.
    let last = |seed: u32| -> f64 {
        let t =
            rbd::train::record::text(&mini.join(format!("runs/sgd-seed{seed}")), "metrics.jsonl")
                .unwrap()
                .unwrap();
        let v: serde_json::Value = serde_json::from_str(t.lines().last().unwrap()).unwrap();
        100.0 * v["val_accuracy"].as_f64().unwrap()
    };
    let mean: f64 = sgd[5].parse().unwrap();
    assert!(
        (mean - (last(0) + last(1)) / 2.0).abs() < 1e-9,
        "{mean} vs {} {}",
        last(0),
        last(1)
    );
    let readme = std::fs::read_to_string(mini.join("README.md")).unwrap();
    assert!(
        readme.contains("paper 99 ± 0.5") && readme.contains("Budget: 3 epochs"),
        "{readme}"
    );
    // Every stretch names the machine that trained it (the killed run has two), and the
    // summary names those machines. The other lines are the epochs' times (an epoch
    // trained again after the kill has two).
    let provenance = rbd::train::record::text(&mini.join("runs/rbd-seed0"), "provenance.jsonl")
        .unwrap()
        .unwrap();
    let stretches: Vec<&str> = provenance
        .lines()
        .filter(|l| l.contains("\"commit\""))
        .collect();
    assert_eq!(stretches.len(), 2, "{provenance}");
    let mut timed: Vec<u64> = provenance
        .lines()
        .filter(|l| l.contains("\"seconds\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    timed.dedup();
    assert_eq!(timed, [1, 2, 3], "{provenance}");
    for line in stretches {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let machine = v["machine"].as_str().unwrap_or_default();
        assert_eq!(machine, rbd::machine::describe(), "{line}");
        assert!(machine.contains(" cores"), "{line}");
        assert!(readme.contains(&format!("on {machine}.")), "{readme}");
    }

    // --summarize trains nothing and rewrites the summary from the runs on disk.
    std::fs::remove_file(mini.join("README.md")).unwrap();
    let o = run(&args(&["--summarize"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("starting") && !out.contains("resuming") && !out.contains(" done"),
        "{out}"
    );
    assert!(mini.join("README.md").exists());

    // A shorter budget is stated in every output and summarised at that epoch.
    let o = run(&args(&["--epochs", "1"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 epochs instead of the paper's 3"));
    let readme = std::fs::read_to_string(mini.join("README.md")).unwrap();
    assert!(readme.contains("reduced reproduction"), "{readme}");
}

/// A dry run says on stderr which run shape it is timing, one line each before it starts
/// (it was silent for minutes), and its stdout stays the table alone: the title, the
/// header, a line per run, the total and where the costs came from.
#[test]
fn a_dry_run_reports_its_measuring_on_stderr_and_only_the_table_on_stdout() {
    let (dir, data) = scratch_with_data("dry-run-progress", 1000);
    let m = manifest(&dir, &data);
    let results = dir.join("results");
    // A data directory of its own: no cached costs, so every shape is measured.
    let cache = dir.join("cache");
    let o = rbd()
        .args([
            "reproduce",
            m.to_str().unwrap(),
            "--device",
            "cpu",
            "--dry-run",
        ])
        .arg("--results")
        .arg(&results)
        .env("RBD_DATA", &cache)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    // Two shapes (sgd and rbd), each measured once for its two seeds, in plan order.
    let progress: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("measuring step costs: "))
        .collect();
    assert_eq!(progress.len(), 2, "{err}");
    assert!(
        progress[0].starts_with("measuring step costs: 1/2 (fc on idx:"),
        "{err}"
    );
    assert!(progress[0].contains(", sgd)"), "{err}");
    assert!(
        progress[1].starts_with("measuring step costs: 2/2 ("),
        "{err}"
    );
    assert!(progress[1].contains(", rbd, d = 20)"), "{err}");
    assert!(!out.contains("measuring"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2 + 4 + 2, "{out}");
    assert!(lines[0].starts_with("mini — "), "{out}");
    assert!(lines[1].starts_with("run "), "{out}");
    assert_eq!(
        lines[2..6].iter().filter(|l| l.contains(" new ")).count(),
        4,
        "{out}"
    );
    assert!(lines[6].starts_with("4 runs; estimated"), "{out}");
    assert!(
        lines[7].starts_with("step costs: 0 run shapes from the cache")
            && lines[7].contains(", 2 measured now"),
        "{out}"
    );
    assert!(!results.exists(), "a dry run wrote {}", results.display());
}

#[test]
fn tune_walks_to_a_rate_that_neither_diverges_nor_crawls() {
    let (dir, data) = scratch_with_data("tune", 1000);
    let results = dir.join("results");
    let dataset = format!("idx:{}", data.display());
    let tune = || {
        run(&[
            "tune",
            "--model",
            "fc",
            "--dataset",
            &dataset,
            "--optimizer",
            "sgd",
            "--epochs",
            "1",
            "--val-size",
            "200",
            "--device",
            "cpu",
            "--results",
            results.to_str().unwrap(),
        ])
    };
    let o = tune();
    assert!(o.status.success());
    let file = results.join("tune/fc-idx-sgd-d250-val-size200.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let best = v["best_exponent"].as_i64().unwrap();
    let trials = v["trials"].as_array().unwrap();
    // Started from MNIST's SGD preset (2^-3), then walked downhill; far fewer
    // than the 27 rates of the full grid.
    assert!(trials.len() >= 3 && trials.len() < 12, "{v}");
    // The chosen rate has the lowest held-out loss of all tried, and a huge rate is
    // recorded as diverged or worse.
    let loss = |e: i64| {
        trials
            .iter()
            .find(|t| t["exponent"] == e)
            .and_then(|t| t["held_out_loss"].as_f64())
    };
    let best_loss = loss(best).unwrap();
    for t in trials {
        if let Some(l) = t["held_out_loss"].as_f64() {
            assert!(best_loss <= l, "{v}");
        }
    }
    assert!(
        (-8..=3).contains(&best),
        "implausible best rate 2^{best}: {v}"
    );
    // One report for every search, naming this one.
    let report = std::fs::read_to_string(results.join("tune/README.md")).unwrap();
    assert!(
        report.contains("## fc-idx-sgd-d250-val-size200\n"),
        "{report}"
    );
    // A second run reuses every trial.
    let o = tune();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("starting"), "a trial ran again: {out}");
}

#[test]
fn a_blocked_run_names_the_tune_that_unblocks_it_and_other_seeds_tune_apart() {
    let (dir, data) = scratch_with_data("tune-key", 600);
    let results = dir.join("results");
    let m = dir.join("tuned.toml");
    std::fs::write(
        &m,
        format!(
            r#"
name = "tuned"
title = "a row at a tuned rate"
epochs = 1
seeds = 2

[defaults]
model = "fc"
dataset = "idx:{}"
val_size = 200
dim = 20
row = "FC-SYNTH"

[[run]]
id = "fpd-variants"
optimizer = "fpd"
lr = "tune"
compartments = "2"
distribution = "bernoulli"
bernoulli_p = 0.25
generator = "philox"
fpd_variant = "released"
augment = false
batch_size = 16
column = "FPD"
"#,
            data.display()
        ),
    )
    .unwrap();
    let dry = || {
        let o = run(&[
            "reproduce",
            m.to_str().unwrap(),
            "--dry-run",
            "--device",
            "cpu",
            "--results",
            results.to_str().unwrap(),
        ]);
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = dry();
    assert_eq!(text.matches("blocked").count(), 2, "{text}");
    // The hint's command, run as given, must write the file the plan reads.
    let hint = text
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in: {text}"));
    let mut words: Vec<&str> = hint.split_whitespace().collect();
    assert_eq!(words.remove(0), "rbd");
    let results_arg = results.to_str().unwrap();
    // The printed command names the results directory itself.
    assert!(hint.contains(&format!("--results {results_arg}")), "{hint}");
    let tune = |extra: &[&str]| {
        let mut a = words.clone();
        a.extend(["--device", "cpu"]);
        a.extend(extra);
        let o = run(&a);
        assert!(o.status.success(), "rbd {}", a.join(" "));
    };
    tune(&[]);
    let seed0 = results.join(
        "tune/fc-idx-fpd-d20-no-augment-batch-size16-bernoulli-p0.25-compartments2-distribution-bernoulli-fpd-variant-released-generator-philox-val-size200.json",
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&seed0).unwrap()).unwrap();
    let best = v["best_exponent"].as_i64().unwrap();
    let text = dry();
    assert!(!text.contains("blocked"), "{text}");
    // Both seeds train at the seed-0 search's rate.
    assert_eq!(
        text.matches(&format!("fpd lr 2^{best},")).count(),
        2,
        "{text}"
    );

    // A search at another seed gets its own file and trials, leaving seed 0's alone.
    let before = std::fs::read(&seed0).unwrap();
    tune(&["--seed", "1"]);
    assert!(results
        .join("tune/fc-idx-fpd-d20-no-augment-batch-size16-bernoulli-p0.25-compartments2-distribution-bernoulli-fpd-variant-released-generator-philox-seed1-val-size200.json")
        .exists());
    assert_eq!(std::fs::read(&seed0).unwrap(), before);
    // The report's section of each search names the command that made it, seed included.
    let report = std::fs::read_to_string(results.join("tune/README.md")).unwrap();
    let section = |name: &str| {
        let start = report
            .find(&format!("## {name}\n"))
            .unwrap_or_else(|| panic!("no section {name}: {report}"));
        let rest = &report[start + 3..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
    };
    let s0 = section(
        "fc-idx-fpd-d20-no-augment-batch-size16-bernoulli-p0.25-compartments2-distribution-bernoulli-fpd-variant-released-generator-philox-val-size200",
    );
    assert!(s0.contains(&format!("made by `{hint}`")), "{s0}");
    let s1 = section(
        "fc-idx-fpd-d20-no-augment-batch-size16-bernoulli-p0.25-compartments2-distribution-bernoulli-fpd-variant-released-generator-philox-seed1-val-size200",
    );
    assert!(
        s1.contains(&format!(
            "made by `{}`",
            hint.replace(" --val-size", " --seed 1 --val-size")
        )),
        "{s1}"
    );
}

#[test]
fn the_help_names_every_built_in_artefact() {
    // The error for an unknown artefact lists the built-in manifests; the help must too.
    let o = rbd()
        .args(["reproduce", "no-such-artefact"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let list = err
        .split("expected one of ")
        .nth(1)
        .and_then(|t| t.split(", or a manifest").next())
        .unwrap_or_else(|| panic!("no list in: {err}"));
    let help = run(&["reproduce", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let names: Vec<&str> = list.split(", ").collect();
    assert!(names.len() >= 19, "{list}");
    for name in names {
        assert!(
            help.contains(&format!(" {name},")) || help.contains(&format!(" {name} ")),
            "`rbd reproduce --help` does not name {name}:\n{help}"
        );
    }
}

#[test]
fn endless_seeds_are_refused_at_once_naming_where_they_came_from() {
    // Found by rbd-fuzz: `seeds = 2^40` planned runs until memory ran out.
    let dir = scratch("endless-seeds");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let good = manifest(&dir, &data);
    let text = std::fs::read_to_string(&good).unwrap();
    assert!(text.contains("seeds = 2\n"), "{text}");
    let bad = dir.join("endless.toml");
    std::fs::write(&bad, text.replace("seeds = 2\n", "seeds = 1099511627776\n")).unwrap();
    let results = dir.join("results");
    let finish = |mut child: std::process::Child| {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                return (status, err);
            }
            if start.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("still planning after a minute");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let spawn = |args: &[&str]| {
        rbd()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (status, err) = finish(spawn(&[
        "reproduce",
        bad.to_str().unwrap(),
        "--dry-run",
        "--results",
        results.to_str().unwrap(),
    ]));
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "{}: seeds = 1099511627776: must be 1 to 1000",
            bad.display()
        )),
        "{err}"
    );
    let (status, err) = finish(spawn(&[
        "reproduce",
        good.to_str().unwrap(),
        "--dry-run",
        "--seeds",
        "1099511627776",
        "--results",
        results.to_str().unwrap(),
    ]));
    assert!(!status.success());
    assert!(
        err.contains("seeds: 1099511627776 seeds per run is more than 1000"),
        "{err}"
    );
    assert!(!results.exists(), "nothing is written for a refused plan");
    std::fs::remove_dir_all(&dir).unwrap();
}
