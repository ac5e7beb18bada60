//! An artefact that repeats another's runs on a shorter budget (`reference`): its rows are
//! checked bit for bit against the reference's committed runs, the paper's ordering is
//! checked at its budget, and no gap to the paper is claimed against a budget it did not run.

use super::{manifest_defaults, manifest_run, run, scratch_with_data};
use std::path::Path;

fn manifests(dir: &Path, data: &Path) {
    let common = [
        manifest_defaults(data),
        manifest_run("sgd", "2^-3", "SGD", &["paper = 99.0", "paper_std = 0.5"]),
        manifest_run("rbd", "2^0", "RBD", &["paper = 90.0"]),
    ]
    .concat();
    std::fs::write(
        dir.join("long.toml"),
        format!("name = \"long\"\ntitle = \"the full budget\"\nepochs = 3\nseeds = 1\n{common}"),
    )
    .unwrap();
    std::fs::write(
        dir.join("short.toml"),
        format!(
            "name = \"short\"\ntitle = \"a look\"\nepochs = 1\nseeds = 1\npaper_epochs = 3\nreference = \"{}\"\nclaim_order = [\"SGD\", \"RBD\"]\n{common}",
            dir.join("long.toml").display()
        ),
    )
    .unwrap();
}

#[test]
fn a_short_artefact_is_checked_bit_for_bit_against_its_reference() {
    let (dir, data) = scratch_with_data("reference", 1000);
    manifests(&dir, &data);
    let results = dir.join("results");
    let r = results.to_str().unwrap();
    let long = dir.join("long.toml");
    let short = dir.join("short.toml");
    assert!(run(&[
        "reproduce",
        long.to_str().unwrap(),
        "--device",
        "cpu",
        "--results",
        r
    ])
    .status
    .success());
    let o = run(&[
        "reproduce",
        short.to_str().unwrap(),
        "--device",
        "cpu",
        "--results",
        r,
    ]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("reproduced bit for bit: all 2 runs match"),
        "{out}"
    );
    assert!(out.contains("SGD > RBD"), "{out}");
    // The paper's values (after 3 epochs) are context, never this budget's gap.
    let readme = std::fs::read_to_string(results.join("short/README.md")).unwrap();
    assert!(
        readme.contains("not comparable: 1 of the paper's 3 epochs"),
        "{readme}"
    );
    assert!(!readme.contains("more than 1 point"), "{readme}");
    assert!(readme.contains("| FC-SYNTH | SGD |"), "{readme}");

    // One bit changed in the reference's record is found and named.
    rbd::train::record::unseal(&results.join("long/runs/rbd-seed0")).unwrap();
    let file = results.join("long/runs/rbd-seed0/metrics.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let loss = rows[0]["val_loss"].as_f64().unwrap();
    rows[0]["val_loss"] = serde_json::json!(f64::from_bits(loss.to_bits() ^ 1));
    let new: Vec<String> = rows.iter().map(|v| v.to_string()).collect();
    std::fs::write(&file, new.join("\n") + "\n").unwrap();
    let o = run(&[
        "reproduce",
        short.to_str().unwrap(),
        "--device",
        "cpu",
        "--results",
        r,
        "--summarize",
    ]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1 of 2 runs match"), "{out}");
    assert!(
        out.contains("rbd seed 0: DIFFERS at epoch 1: val_loss"),
        "{out}"
    );
}
