//! Nothing already written breaks (issue 24, item 8). The fixtures under
//! `tests/fixtures/` were recorded with the code before the configuration redesign
//! (commit 63ec056): the run id of every committed `config.json`, the tuning key of every
//! committed `rbd tune` trial, the run id and tuning key of every run the built-in
//! manifests plan, and the final parameters of a short run of each optimiser. A change
//! that alters any of them would orphan run directories (a resumed run refuses a
//! checkpoint of another run id), searches (`results/tune/KEY.json`) or results.

use super::{final_params, run, scratch, scratch_with_data, train_args};
use rbd::reproduce::manifest::{
    tune_file, tuned_rate_file, ArtefactKind, Manifest, PlanOptions, BUILT_IN,
};
use rbd::train::{record, RunConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// `KEY VALUE...` lines of a fixture, by key.
fn fixture(name: &str) -> BTreeMap<String, String> {
    let path = root().join("tests/fixtures").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("KEY VALUE");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Compares `got` with the fixture on the keys both have; writes what was computed to a
/// scratch file named in the failure, so a reviewer can diff the two.
fn check(name: &str, got: &BTreeMap<String, String>, want: &BTreeMap<String, String>) {
    let out = std::env::temp_dir().join(format!("rbd-fixture-{name}"));
    let text: String = got.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    std::fs::write(&out, text).unwrap();
    let differ: Vec<String> = got
        .iter()
        .filter_map(|(k, v)| {
            let w = want.get(k)?;
            (w != v).then(|| format!("{k}: recorded {w}, now {v}"))
        })
        .collect();
    if !differ.is_empty() {
        panic!(
            "{} of {} entries of {name} changed (all computed values in {}):\n{}",
            differ.len(),
            got.len(),
            out.display(),
            differ.join("\n")
        );
    }
}

/// Directories of rbd runs under `results/` (open, sealed or packed): `results/ARTEFACT/runs/RUN/`
/// and the trials of `rbd tune` under `results/tune/KEY/lr2powE/`.
fn committed_configs() -> Vec<PathBuf> {
    let results = root().join("results");
    let mut out = Vec::new();
    let dirs = |p: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.is_dir());
        v.sort();
        v
    };
    for artefact in dirs(&results) {
        let below = if artefact.ends_with("tune") {
            dirs(&artefact)
        } else {
            vec![artefact.join("runs")]
        };
        for parent in below {
            // Directories and packed runs alike.
            for run in record::runs_in(&parent).unwrap() {
                if record::has(&run, "config.json") {
                    out.push(run);
                }
            }
        }
    }
    out
}

#[test]
fn committed_configurations_read_back_unchanged_with_their_run_ids() {
    let results = root().join("results");
    let mut got = BTreeMap::new();
    let configs = committed_configs();
    assert!(!configs.is_empty(), "no committed config.json found");
    for dir in &configs {
        let path = &dir.join("config.json");
        let text = record::text(dir, "config.json").unwrap().unwrap();
        let cfg: RunConfig = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", path.display()));
        // The same text form: every key and value written before reads back as written.
        let written: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            serde_json::to_value(&cfg).unwrap(),
            written,
            "{}: serialises differently",
            path.display()
        );
        let key = path
            .strip_prefix(&results)
            .unwrap()
            .parent()
            .unwrap()
            .display()
            .to_string();
        let mut value = cfg.run_id();
        if key.starts_with("tune/") {
            // A trial's directory is named by the search's key, which it must keep.
            let file = tune_file(Path::new("r"), &cfg);
            value += " ";
            value += &file.file_stem().unwrap().to_string_lossy();
        }
        got.insert(key, value);
    }
    let want = fixture("run-ids.txt");
    check("run-ids.txt", &got, &want);
    let checked = got.keys().filter(|k| want.contains_key(*k)).count();
    assert!(
        checked * 2 > want.len(),
        "only {checked} of the {} recorded run directories are still in results/",
        want.len()
    );
}

#[test]
fn built_in_manifests_plan_the_same_runs() {
    // No tuned rates on disk: runs whose rate is to be tuned plan as blocked, with the
    // same placeholder configuration the recording saw.
    let empty = scratch("manifest-plans");
    let mut got = BTreeMap::new();
    for (name, _) in BUILT_IN {
        let m = Manifest::load(name).unwrap();
        if m.kind != ArtefactKind::Training {
            continue;
        }
        for p in m.plan(&empty, &PlanOptions::default()).unwrap() {
            // The search a run with a rate to tune reads (other runs read none).
            let search = match p.entry.lr.as_deref() {
                Some("tune") => tuned_rate_file(Path::new("r"), &p.cfg)
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                _ => "-".into(),
            };
            got.insert(
                format!("{name}/{}/seed{}", p.entry.id, p.seed),
                format!("{} {search} {}", p.cfg.run_id(), p.cfg.epochs),
            );
        }
    }
    check("manifest-plans.txt", &got, &fixture("manifest-plans.txt"));
}

/// A run whose rate comes from `rbd tune` keeps its id wherever the results directory is:
/// the id hashes the rate's source, which once held the `--results` path as given, so
/// `--results /tmp/x` (or an absolute path to the same `results/`) planned other ids
/// than `results` and refused the committed runs as "another configuration".
#[test]
fn tuned_runs_keep_their_ids_under_any_results_directory() {
    let committed = root().join("results");
    let elsewhere = scratch("tuned-elsewhere").join("some").join("results-copy");
    std::fs::create_dir_all(elsewhere.join("tune")).unwrap();
    for e in std::fs::read_dir(committed.join("tune")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            std::fs::copy(&p, elsewhere.join("tune").join(p.file_name().unwrap())).unwrap();
        }
    }
    let m = Manifest::load("table1-tuned").unwrap();
    let ids = |results: &Path| -> BTreeMap<String, String> {
        m.plan(results, &PlanOptions::default())
            .unwrap()
            .into_iter()
            .filter(|p| p.blocked.is_none())
            .map(|p| {
                let key = format!("table1-tuned/runs/{}-seed{}", p.entry.id, p.seed);
                (key, p.cfg.run_id())
            })
            .collect()
    };
    let here = ids(&committed);
    assert!(
        !here.is_empty(),
        "no tuned rate found under {}",
        committed.display()
    );
    assert_eq!(ids(&elsewhere), here, "{}", elsewhere.display());
    // The committed runs, recorded with the default `results`, are the same runs.
    let want = fixture("run-ids.txt");
    let recorded = here.keys().filter(|k| want.contains_key(*k)).count();
    assert!(recorded >= 9, "only {recorded} tuned runs in run-ids.txt");
    check("tuned-run-ids.txt", &here, &want);
}

/// FNV-1a (64-bit) of a run's final tensors, in name order.
fn params_hash(dir: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in final_params(dir) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A short run of every optimiser and of the settings the redesign moved, each compared
/// with the final parameters the code before it produced: the trajectories are bitwise
/// unchanged.
#[test]
fn short_runs_of_each_optimiser_end_on_the_recorded_bits() {
    let (dir, data) = scratch_with_data("stability-runs", 600);
    let data_arg = format!("idx:{}", data.display());
    let cases: &[(&str, &str, &[&str])] = &[
        ("sgd", "sgd", &["--lr", "2^-3", "--epochs", "2"]),
        (
            "rbd",
            "rbd",
            &["--lr", "2^0", "--dim", "20", "--epochs", "2"],
        ),
        (
            "rbd-variants",
            "rbd",
            &[
                "--lr",
                "2^-1",
                "--dim",
                "12",
                "--compartments",
                "layer",
                "--split-dim",
                "--distribution",
                "bernoulli",
                "--bernoulli-p",
                "0.25",
                "--generator",
                "philox",
                "--correlation",
            ],
        ),
        (
            "rbd-capped",
            "rbd",
            &[
                "--lr",
                "2^0",
                "--dim",
                "6",
                "--compartments",
                "cap:50000",
                "--distribution",
                "bernoulli-released",
                "--batch-size",
                "16",
                "--no-augment",
            ],
        ),
        (
            "fpd",
            "fpd",
            &["--lr", "2^-1", "--dim", "20", "--epochs", "2"],
        ),
        (
            "fpd-released",
            "fpd",
            &[
                "--lr",
                "2^-1",
                "--dim",
                "20",
                "--epochs",
                "2",
                "--fpd-variant",
                "released",
                "--distribution",
                "uniform",
            ],
        ),
        (
            "nes",
            "nes",
            &["--lr", "2^-2", "--dim", "4", "--epochs", "2"],
        ),
        (
            "nes-released",
            "nes",
            &[
                "--lr",
                "2^-2",
                "--dim",
                "5",
                "--epochs",
                "2",
                "--nes-epochs",
                "released",
                "--nes-sigma",
                "0.02",
            ],
        ),
        (
            "nes-update",
            "nes",
            &[
                "--lr",
                "2^-2",
                "--dim",
                "5",
                "--epochs",
                "3",
                "--nes-epochs",
                "update",
            ],
        ),
        (
            "rbd-materialized",
            "rbd-materialized",
            &["--lr", "2^0", "--dim", "8", "--epochs", "2"],
        ),
        (
            "schedule",
            "sgd",
            &[
                "--schedule",
                "sgd@2^-3:1,rbd@2^0:2,fpd@2^-1:3,nes@2^-2",
                "--dim",
                "4",
                "--epochs",
                "4",
            ],
        ),
    ];
    let mut got = BTreeMap::new();
    for (name, optimizer, extra) in cases {
        let out = dir.join(name);
        let o = run(&train_args(
            &data_arg,
            out.to_str().unwrap(),
            optimizer,
            extra,
        ));
        assert!(o.status.success(), "{name}: {extra:?} failed");
        got.insert(name.to_string(), params_hash(&out));
    }
    let want = fixture("final-params.txt");
    check("final-params.txt", &got, &want);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
}
