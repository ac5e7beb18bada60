//! `rbd reproduce campaign` end to end over generated data: the status view reads where
//! the plan stands from the disk, a campaign killed mid-run continues where it stopped
//! and ends bitwise identical to one never killed, finished work is never trained again,
//! a rate search unblocks the runs that wait for it, and `--hours` stops with a
//! checkpoint.

use super::{
    final_params, kill_once_written, manifest_defaults, manifest_run, rbd, run, scratch_with_data,
};
use std::path::{Path, PathBuf};

fn files(dir: &Path, data: &Path) -> PathBuf {
    let manifest = [
        "name = \"mini\"\ntitle = \"a miniature artefact\"\nepochs = 3\nseeds = 2\npaper_seeds = 2\n".into(),
        manifest_defaults(data),
        manifest_run("sgd", "2^-3", "SGD", &[]),
        manifest_run("rbd", "2^0", "RBD", &[]),
        manifest_run("fpd", "tune", "FPD", &[]),
    ]
    .concat();
    std::fs::write(dir.join("mini.toml"), manifest).unwrap();
    let m = dir.join("mini.toml");
    let plan = format!(
        r#"
title = "a miniature campaign"

[[item]]
artefact = "{m}"
only = ["rbd"]
seeds = 1
why = "first"

[[item]]
artefact = "{m}"
only = ["fpd"]
tune_epochs = 1
why = "the rate the next item waits for"

[[item]]
artefact = "{m}"
only = ["sgd", "fpd"]
seeds = 1
epochs = 2
why = "a reduced budget"
"#,
        m = m.display()
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, plan).unwrap();
    path
}

fn args(plan: &Path, results: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["reproduce", "campaign", "--device", "cpu", "--plan"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(plan.display().to_string());
    a.push("--results".into());
    a.push(results.display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn status(plan: &Path, results: &Path, data: &Path) -> String {
    let o = rbd()
        .args(args(plan, results, &["--status"]))
        .env("RBD_DATA", data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The status line of item `n`.
fn line(text: &str, n: usize) -> String {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{n} ")))
        .unwrap_or_else(|| panic!("no line for item {n}: {text}"))
        .to_string()
}

#[test]
fn a_campaign_resumes_after_a_kill_skips_what_is_done_and_tunes_before_it_trains() {
    let (dir, data) = scratch_with_data("campaign", 1000);
    let plan = files(&dir, &data);
    let results = dir.join("results");

    let s = status(&plan, &results, &data);
    assert!(
        line(&s, 1).contains("0/1") && line(&s, 1).contains("left"),
        "{s}"
    );
    assert!(
        line(&s, 2).contains("0/1") && line(&s, 2).contains("rate search"),
        "{s}"
    );
    // Item 3 waits for item 2's rate: its fpd run is blocked, its sgd run is not.
    assert!(
        line(&s, 3).contains("0/2") && line(&s, 3).contains("(paper: 3 × 2)"),
        "{s}"
    );
    assert!(!results.exists(), "--status wrote {}", results.display());

    // Kill the campaign while its first run trains.
    let first = results.join("mini/runs/rbd-seed0/checkpoint.safetensors");
    kill_once_written(
        rbd()
            .args(args(&plan, &results, &[]))
            .env("RBD_DATA", &data),
        &first,
        "the first run",
    );

    let o = rbd()
        .args(args(&plan, &results, &[]))
        .env("RBD_DATA", &data)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("nothing runnable is left"), "{out}");
    // The search ran before the runs that wait for it, which then trained at its rate.
    assert!(results.join("tune").read_dir().unwrap().next().is_some());
    let i_tune = out.find("tuned: 2^").expect("the search ran");
    let i_fpd = out.find("[fpd seed 0] starting").expect("fpd trained");
    assert!(i_tune < i_fpd, "{out}");
    // Item 3's budget: 2 epochs, stated beside the paper's.
    let rows = |id: &str| {
        rbd::train::record::text(&results.join(format!("mini/runs/{id}")), "metrics.jsonl")
            .unwrap()
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(
        (rows("rbd-seed0"), rows("sgd-seed0"), rows("fpd-seed0")),
        (3, 2, 2)
    );
    assert!(out.contains("2 epochs × 1 seed (paper: 3 × 2)"), "{out}");

    // The same plan never killed ends bitwise identical.
    let clean = dir.join("clean");
    let o = rbd()
        .args(args(&plan, &clean, &[]))
        .env("RBD_DATA", &data)
        .output()
        .unwrap();
    assert!(o.status.success());
    for id in ["rbd-seed0", "sgd-seed0", "fpd-seed0"] {
        assert_eq!(
            final_params(&results.join("mini/runs").join(id)),
            final_params(&clean.join("mini/runs").join(id)),
            "{id} differs after the kill"
        );
    }

    // Done is done: a rerun trains nothing and touches no run.
    let stamp = |id: &str| {
        std::fs::metadata(results.join(format!("mini/runs/{id}/final.safetensors")))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = [stamp("rbd-seed0"), stamp("sgd-seed0"), stamp("fpd-seed0")];
    let o = run(&args(&plan, &results, &[])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("starting") && !out.contains("resuming") && !out.contains("tuned"),
        "{out}"
    );
    assert_eq!(
        before,
        [stamp("rbd-seed0"), stamp("sgd-seed0"), stamp("fpd-seed0")]
    );

    // The status view says so, and sets each finished run's estimate against its time.
    let s = status(&plan, &results, &data);
    for n in 1..=3 {
        assert!(line(&s, n).contains("done"), "{s}");
    }
    assert!(
        s.contains("3 items done, 0 running, 0 left, 0 blocked"),
        "{s}"
    );
    for id in ["mini/rbd-seed0", "mini/sgd-seed0", "mini/fpd-seed0"] {
        let l = s
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id}: {s}"));
        // Estimated and measured, both ways (in all, and quickest epoch × epochs), and
        // trained here: comparable, so no caveat.
        assert_eq!(l.matches('%').count(), 2, "{l}");
        assert!(l.contains(&rbd::machine::describe()), "{l}");
        assert!(
            !l.contains("not comparable") && !l.contains("not recorded"),
            "{l}"
        );
    }

    // Costs measured on a quiet machine are kept, and the next status reads them all
    // instead of timing steps again; it says how many came from where.
    let cached = |s: &str| -> usize {
        let l = s
            .lines()
            .find(|l| l.starts_with("step costs: "))
            .unwrap_or_else(|| panic!("no step costs line: {s}"));
        l["step costs: ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let kept = std::fs::read_to_string(data.join("estimates.json"))
        .map(|t| t.matches("\"step\"").count())
        .unwrap_or(0);
    assert_eq!(cached(&status(&plan, &results, &data)), kept);
}

#[test]
fn hours_stop_a_campaign_with_a_checkpoint_and_bad_plans_are_refused() {
    let (dir, data) = scratch_with_data("campaign-hours", 1000);
    let plan = files(&dir, &data);
    let results = dir.join("results");
    // A budget of 0.36 s ends the first run early, with a checkpoint and exit 0.
    let o = rbd()
        .args(args(&plan, &results, &["--hours", "0.0001"]))
        .env("RBD_DATA", &data)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("budget is spent"), "{out}");
    let run_dir = results.join("mini/runs/rbd-seed0");
    assert!(
        run_dir.join("checkpoint.safetensors").exists()
            || run_dir.join("final.safetensors").exists(),
        "no checkpoint in {}",
        run_dir.display()
    );

    // --fit starts nothing that ends after the budget: 0.36 s fits no run and no search,
    // and nothing is started (a started run's checkpoint would not outlive the machine).
    let fit_results = dir.join("results-fit");
    let o = rbd()
        .args(args(&plan, &fit_results, &["--hours", "0.0001", "--fit"]))
        .env("RBD_DATA", &data)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("rbd seed 0: not started: needs about"),
        "{out}"
    );
    assert!(!fit_results.join("mini/runs").exists(), "{out}");
    // A day fits the miniature runs even on a machine the whole test suite loads (an
    // hour once did not, unexplained): --fit then trains what a plain campaign would.
    let o = rbd()
        .args(args(&plan, &fit_results, &["--hours", "24", "--fit"]))
        .env("RBD_DATA", &data)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("not started"), "{out}");
    assert!(out.contains("nothing runnable is left"), "{out}");
    assert!(
        status(&plan, &fit_results, &data).contains("3 items done"),
        "{}",
        status(&plan, &fit_results, &data)
    );

    // Flags that belong to one artefact, and plans that cannot run, name the problem.
    for (extra, want) in [
        (vec!["--only", "x"], "--only"),
        (vec!["--epochs", "3"], "--epochs"),
        (vec!["--hours", "0"], "positive number of hours"),
        (vec!["--fit"], "--hours"),
    ] {
        let o = rbd().args(args(&plan, &results, &extra)).output().unwrap();
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = rbd()
        .args(["reproduce", "table1", "--status"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("rbd reproduce campaign"));
    let bad = dir.join("bad.toml");
    for (text, want) in [
        (format!("title = \"t\"\n[[item]]\nartefact = \"{}\"\nonly = [\"nothing\"]\nwhy = \"w\"\n", dir.join("mini.toml").display()), "selects no run"),
        (format!("title = \"t\"\n[[item]]\nartefact = \"{}\"\nseeds = 0\nwhy = \"w\"\n", dir.join("mini.toml").display()), "seeds must be at least 1"),
        (format!("title = \"t\"\n[[item]]\nartefact = \"{}\"\nonly = [\"sgd\"]\ntune_epochs = 2\nwhy = \"w\"\n", dir.join("mini.toml").display()), "no selected run has lr = \"tune\""),
        ("title = \"t\"\n[[item]]\nartefact = \"no-such\"\nwhy = \"w\"\n".to_string(), "unknown artefact 'no-such'"),
        ("title = \"t\"\n[[item]]\nartefact = \"fig1\"\nwhy = \"w\"\nepoch = 3\n".to_string(), "unknown field `epoch`"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let o = rbd().args(["reproduce", "campaign", "--status", "--plan", bad.to_str().unwrap()]).output().unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want) && err.contains("bad.toml"), "{want}: {err}");
    }
}

/// A campaign leading its own session (started with `setsid`) lowers its scheduling
/// group's nice too: with Linux's autogroups a thread's nice counts only inside its
/// session's group, and a nice-19 campaign otherwise took half of a 2-core machine from
/// other sessions' builds. Caught: a campaign that set only its threads' nice.
#[cfg(target_os = "linux")]
#[test]
fn a_campaign_in_its_own_session_lowers_its_scheduling_group() {
    let autogroups = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled")
        .is_ok_and(|t| t.trim() == "1");
    if !autogroups
        || std::process::Command::new("setsid")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("skipped: no autogroup scheduling or no setsid on this machine");
        return;
    }
    let (dir, data) = scratch_with_data("campaign-autogroup", 1000);
    let plan = files(&dir, &data);
    let results = dir.join("results");
    let mut child = std::process::Command::new("setsid")
        .arg(env!("CARGO_BIN_EXE_rbd"))
        .args(args(&plan, &results, &["--hours", "0.01"]))
        .env("RBD_DATA", &data)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // setsid runs the program in its own process (it forks only for a group leader).
    let file = format!("/proc/{}/autogroup", child.id());
    let mut seen = String::new();
    for _ in 0..200 {
        seen = std::fs::read_to_string(&file).unwrap_or_default();
        if seen.contains("nice 19") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("nice 19"), "{file}: {seen:?}");
}
