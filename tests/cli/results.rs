//! The committed results regenerate from the committed runs: every summary, README,
//! plot, `results/README.md` and the status section of the repository's README, bit
//! for bit less the line that says when and where each was summarised; and no findings
//! file types a result by hand.

use super::{rbd, scratch};
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_committed_summary_and_readme_regenerates_from_the_committed_runs() {
    let out = rbd()
        .current_dir(repo())
        .args(["reproduce", "all", "--check", "--results", "results"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`rbd reproduce all --check` found differences (run `rbd reproduce all --summarize` and commit):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(" 0 differ from the runs; 0 numbers typed by hand"),
        "{stdout}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_check_names_a_summary_that_no_longer_matches_its_runs_and_summarize_mends_it() {
    let dir = scratch("results-check");
    let results = dir.join("results");
    copy_dir(&repo().join("results/quick"), &results.join("quick"));
    let all = |flag: &str| {
        rbd()
            .args(["reproduce", "all", flag, "--results"])
            .arg(&results)
            .output()
            .unwrap()
    };
    assert!(all("--summarize").status.success());
    let clean = all("--check");
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    // One seed's last epoch changes: the cell's README and summary.csv no longer match.
    // The runs are sealed: open one to change it.
    rbd::train::record::unseal(&results.join("quick/runs/fc-mnist-sgd-seed0")).unwrap();
    let metrics = results.join("quick/runs/fc-mnist-sgd-seed0/metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let last = text.lines().last().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    let old = v["val_accuracy"].as_f64().unwrap();
    let changed = last.replace(
        &format!("\"val_accuracy\":{}", serde_json::to_string(&old).unwrap()),
        "\"val_accuracy\":0.5",
    );
    assert_ne!(changed, last);
    std::fs::write(&metrics, text.replace(&last, &changed)).unwrap();
    let stale = all("--check");
    let stdout = String::from_utf8_lossy(&stale.stdout);
    assert_eq!(stale.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("quick/README.md: line"), "{stdout}");
    assert!(stdout.contains("quick/summary.csv"), "{stdout}");
    // A hand-typed result in a findings file is named too.
    std::fs::write(
        results.join("quick/findings.md"),
        "- SGD ends at 98.05 here.\n",
    )
    .unwrap();
    assert!(all("--summarize").status.success());
    let typed = all("--check");
    assert_eq!(typed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typed.stderr).contains("quick/findings.md:1"));
    std::fs::write(
        results.join("quick/findings.md"),
        "- SGD ends at {{quick/fc-mnist-sgd mean}} here, std {{quick/fc-mnist-sgd std}}.\n",
    )
    .unwrap();
    assert!(all("--summarize").status.success());
    let readme = std::fs::read_to_string(results.join("quick/README.md")).unwrap();
    // One seed: the spread is not printed as a measured 0.00.
    assert!(
        readme.contains("- SGD ends at 50.00 here, std (1 seed: no std)."),
        "{readme}"
    );
    assert!(all("--check").status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
