//! Sealed and packed runs (`run.json.gz`, `sealed-runs.jsonl.gz`) and `rbd results
//! migrate`: a finished run kept in its folder's pack reads back exactly as the
//! directory it was, a rerun still trains nothing, the migration loses nothing and can
//! be run again (also on a tree an older binary kept writing), a run left open by an
//! older binary (under its old `lr2^K` name) resumes and packs, a packed run given more
//! epochs trains on bit for bit, and every committed run is packed and recognised.

use super::{rbd, reproduce_on_cpu, scratch, synthetic};
use rbd::train::pack::PACK;
use rbd::train::record::{self, SEALED};
use std::path::{Path, PathBuf};
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    t
}

/// A two-run manifest (SGD and RBD at lr 2^-3, 2 epochs) over 1000 synthetic images.
fn mini(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    synthetic(&data, 1000);
    let path = dir.join("lean.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"lean\"\ntitle = \"t\"\n[defaults]\nmodel = \"fc\"\ndataset = \"idx:{}\"\nval_size = 200\ndim = 4\nrow = \"R\"\nepochs = 2\n\n[[run]]\nid = \"sgd-lr2pow-3\"\noptimizer = \"sgd\"\nlr = \"2^-3\"\ncolumn = \"sgd\"\n\n[[run]]\nid = \"rbd\"\noptimizer = \"rbd\"\nlr = \"2^-3\"\ncolumn = \"rbd\"\n",
            data.display()
        ),
    )
    .unwrap();
    path
}

/// `rbd reproduce` on the cpu, one seed.
fn reproduce(manifest: &Path, results: &Path, extra: &[&str]) -> Output {
    reproduce_on_cpu(manifest, results, &[&["--seeds", "1"], extra].concat())
}

fn migrate(results: &Path) -> Output {
    rbd()
        .args(["results", "migrate", "--results", results.to_str().unwrap()])
        .output()
        .unwrap()
}

/// The run's directory as an older rbd left it: every record a file of its own, beside
/// the CSV it derived (written here by `rbd results export`) and a per-run plot.
fn as_left_by_an_older_binary(run: &Path) {
    record::unseal(run).unwrap();
    for (rows, file) in [("metrics", "metrics.csv"), ("steps", "steps.csv")] {
        let o = rbd()
            .args(["results", "export", run.to_str().unwrap(), "--csv", rows])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        std::fs::write(run.join(file), &o.stdout).unwrap();
    }
    std::fs::write(run.join("accuracy.svg"), "<svg/>").unwrap();
}

/// Every file under `dir` (recursively) with its bytes, but locks.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().unwrap() != ".lock" {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn summaries(results: &Path) -> (String, String) {
    let read = |f: &str| std::fs::read_to_string(results.join("lean").join(f)).unwrap();
    let readme: Vec<String> = read("README.md")
        .lines()
        .filter(|l| !l.starts_with(rbd::reproduce::summary::SUMMARISED_BY))
        .map(str::to_string)
        .collect();
    (read("summary.csv"), readme.join("\n"))
}

#[test]
fn finished_runs_seal_and_a_migrated_tree_summarises_the_same_and_trains_nothing() {
    let dir = scratch("lean-seal");
    let m = mini(&dir);
    let results = dir.join("results");
    ok(reproduce(&m, &results, &[]));
    let runs = results.join("lean/runs");
    let sgd = runs.join("sgd-lr2pow-3-seed0");
    for run in [&sgd, &runs.join("rbd-seed0")] {
        // Packed as it finished: only the parameters stay in its directory.
        let names: Vec<String> = std::fs::read_dir(run)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".lock" && !n.ends_with(".safetensors"))
            .collect();
        assert!(names.is_empty(), "{}: {names:?}", run.display());
        assert!(record::is_packed(run) && run.join("final.safetensors").exists());
        assert_eq!(rbd::train::metrics::read_epochs(run).unwrap().len(), 2);
    }
    assert_eq!(
        rbd::train::pack::names(&runs).unwrap(),
        ["rbd-seed0", "sgd-lr2pow-3-seed0"]
    );
    assert!(!rbd::train::metrics::read_steps(&sgd).unwrap().is_empty());

    // The same runs as an older binary left them: summaries from the open directories.
    for run in [&sgd, &runs.join("rbd-seed0")] {
        as_left_by_an_older_binary(run);
    }
    ok(reproduce(&m, &results, &["--summarize"]));
    let open = summaries(&results);
    assert!(open.0.contains("sgd-lr2pow-3,"), "{}", open.0);

    let out = ok(migrate(&results));
    assert!(
        out.contains("0 renamed, 2 sealed now, 2 packed now") && out.contains("0 in progress"),
        "{out}"
    );
    assert!(!sgd.join("metrics.csv").exists() && !sgd.join("accuracy.svg").exists());
    assert!(record::is_packed(&sgd) && !sgd.join(SEALED).exists());
    ok(reproduce(&m, &results, &["--summarize"]));
    assert_eq!(
        summaries(&results),
        open,
        "the summaries changed with sealing"
    );

    // A rerun finds both runs finished: nothing trained, nothing written in the runs.
    let before = tree(&runs);
    let out = ok(reproduce(&m, &results, &[]));
    assert_eq!(out.matches("] done").count(), 2, "{out}");
    assert!(
        !out.contains("starting") && !out.contains("resuming"),
        "{out}"
    );
    assert_eq!(tree(&runs), before);
}

#[test]
fn migration_is_idempotent_and_refuses_a_record_it_cannot_trust() {
    let dir = scratch("lean-migrate");
    let m = mini(&dir);
    let results = dir.join("results");
    ok(reproduce(&m, &results, &[]));
    let sgd = results.join("lean/runs/sgd-lr2pow-3-seed0");
    as_left_by_an_older_binary(&sgd);
    let metrics = std::fs::read_to_string(sgd.join("metrics.jsonl")).unwrap();

    ok(migrate(&results));
    let sealed = tree(&results);
    let again = ok(migrate(&results));
    assert!(
        again.contains("0 sealed now, 0 packed now (0 bytes), 2 packed before"),
        "{again}"
    );
    assert_eq!(tree(&results), sealed, "a second migration changed files");
    // The sealed text is the file's text, byte for byte.
    assert_eq!(
        record::text(&sgd, "metrics.jsonl").unwrap().as_deref(),
        Some(metrics.as_str())
    );

    // A damaged sealed record beside the run's files: refused, the files stay.
    as_left_by_an_older_binary(&sgd);
    std::fs::write(sgd.join(SEALED), b"\x1f\x8b not really gzip").unwrap();
    let o = migrate(&results);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&sgd.join(SEALED).display().to_string()),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(sgd.join("metrics.jsonl")).unwrap(),
        metrics
    );

    // A record changed after sealing: refused, both kept.
    std::fs::remove_file(sgd.join(SEALED)).unwrap();
    ok(migrate(&results));
    record::unseal(&sgd).unwrap();
    ok(migrate(&results));
    let rows = record::text(&sgd, "metrics.jsonl").unwrap().unwrap();
    // Put an open copy back beside the packed record, with one digit changed.
    std::fs::write(
        sgd.join("metrics.jsonl"),
        rows.replacen("\"epoch\":1", "\"epoch\":7", 1),
    )
    .unwrap();
    let o = migrate(&results);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("differs"), "{}", text(&o));
    assert!(sgd.join("metrics.jsonl").exists() && record::is_packed(&sgd));
    // An identical copy (a packing interrupted) is removed.
    std::fs::write(sgd.join("metrics.jsonl"), &rows).unwrap();
    ok(migrate(&results));
    assert!(!sgd.join("metrics.jsonl").exists());

    // A damaged pack: refused, naming it, and the pack stays as it is.
    let pack = results.join("lean/runs").join(PACK);
    let mut bytes = std::fs::read(&pack).unwrap();
    let cut = bytes.len() - 5;
    bytes.truncate(cut);
    std::fs::write(&pack, &bytes).unwrap();
    let o = migrate(&results);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&pack.display().to_string()),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&pack).unwrap(), bytes);
}

#[test]
fn an_old_format_run_in_progress_under_its_old_name_resumes_and_seals() {
    let dir = scratch("lean-resume");
    let m = mini(&dir);
    // The run straight through, for reference.
    let straight = dir.join("straight");
    ok(reproduce(&m, &straight, &["--only", "sgd-lr2pow-3"]));

    // An older binary stopped it after epoch 1: open files, a checkpoint, no final
    // parameters, and the directory named with a `^`.
    let results = dir.join("results");
    ok(reproduce(
        &m,
        &results,
        &["--only", "sgd-lr2pow-3", "--epochs", "1"],
    ));
    let run = results.join("lean/runs/sgd-lr2pow-3-seed0");
    as_left_by_an_older_binary(&run);
    std::fs::rename(
        run.join("final.safetensors"),
        run.join("checkpoint.safetensors"),
    )
    .unwrap();
    let old = results.join("lean/runs/sgd-lr2^-3-seed0");
    std::fs::rename(&run, &old).unwrap();

    // Migration renames it and leaves it open: it is not finished.
    let out = ok(migrate(&results));
    assert!(out.contains("1 renamed, 0 sealed now"), "{out}");
    assert!(out.contains("1 in progress"), "{out}");
    assert!(run.join("metrics.jsonl").exists() && !old.exists());
    // Back under the old name: the sweep adopts it, resumes it and seals it.
    std::fs::rename(&run, &old).unwrap();
    let out = ok(reproduce(&m, &results, &["--only", "sgd-lr2pow-3"]));
    assert!(
        out.contains("renaming") && out.contains("resuming after 1 epochs"),
        "{out}"
    );
    assert!(record::is_packed(&run) && !run.join("metrics.jsonl").exists());
    assert!(run.join("final.safetensors").exists());
    // Bit for bit the run that was never stopped.
    let reference = straight.join("lean/runs/sgd-lr2pow-3-seed0");
    for name in ["metrics.jsonl", "steps.jsonl"] {
        assert_eq!(
            record::text(&run, name).unwrap(),
            record::text(&reference, name).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn export_and_migrate_name_what_is_wrong() {
    let dir = scratch("lean-errors");
    let o = rbd()
        .args(["results", "export", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("not a run directory"), "{}", text(&o));
    let missing = dir.join("nowhere");
    let o = migrate(&missing);
    assert!(!o.status.success());
    assert!(text(&o).contains("--results"), "{}", text(&o));
}

#[test]
fn a_tree_an_older_binary_kept_writing_migrates_into_the_packs_it_has() {
    let dir = scratch("lean-mixed");
    let m = mini(&dir);
    let results = dir.join("results");
    let runs = results.join("lean/runs");
    // A second SGD seed stopped after its first epoch, as an older binary left it:
    // open files and a checkpoint.
    ok(reproduce_on_cpu(
        &m,
        &results,
        &["--seeds", "2", "--only", "sgd-lr2pow-3", "--epochs", "1"],
    ));
    let open = runs.join("sgd-lr2pow-3-seed1");
    as_left_by_an_older_binary(&open);
    std::fs::rename(
        open.join("final.safetensors"),
        open.join("checkpoint.safetensors"),
    )
    .unwrap();
    // Both seed-0 runs finish with this binary (packed); then the SGD one is as an
    // older binary leaves a finished run: sealed in its own directory.
    ok(reproduce(&m, &results, &[]));
    assert_eq!(
        rbd::train::pack::names(&runs).unwrap(),
        ["rbd-seed0", "sgd-lr2pow-3-seed0"]
    );
    let sgd = runs.join("sgd-lr2pow-3-seed0");
    record::unseal(&sgd).unwrap();
    record::seal(&sgd).unwrap();
    assert!(sgd.join(SEALED).exists() && !record::is_packed(&sgd));
    ok(reproduce(&m, &results, &["--summarize"]));
    let before = summaries(&results);

    let out = ok(migrate(&results));
    assert!(
        out.contains("0 sealed now, 1 packed now") && out.contains("1 packed before"),
        "{out}"
    );
    assert!(out.contains("1 in progress"), "{out}");
    assert_eq!(
        rbd::train::pack::names(&runs).unwrap(),
        ["rbd-seed0", "sgd-lr2pow-3-seed0"]
    );
    assert!(!sgd.join(SEALED).exists() && open.join("metrics.jsonl").exists());
    ok(reproduce(&m, &results, &["--summarize"]));
    assert_eq!(
        summaries(&results),
        before,
        "the summaries changed with packing"
    );
    let out = ok(reproduce(&m, &results, &[]));
    assert_eq!(out.matches("] done").count(), 2, "{out}");
}

#[test]
fn a_packed_run_given_more_epochs_trains_on_bit_for_bit_and_packs_again() {
    let dir = scratch("lean-extend");
    let m = mini(&dir);
    let straight = dir.join("straight");
    ok(reproduce(&m, &straight, &["--only", "sgd-lr2pow-3"]));
    let results = dir.join("results");
    ok(reproduce(
        &m,
        &results,
        &["--only", "sgd-lr2pow-3", "--epochs", "1"],
    ));
    let run = results.join("lean/runs/sgd-lr2pow-3-seed0");
    assert!(record::is_packed(&run));
    let out = ok(reproduce(&m, &results, &["--only", "sgd-lr2pow-3"]));
    assert!(out.contains("resuming after 1 epochs"), "{out}");
    assert!(record::is_packed(&run) && !run.join("metrics.jsonl").exists());
    let reference = straight.join("lean/runs/sgd-lr2pow-3-seed0");
    for name in ["metrics.jsonl", "steps.jsonl"] {
        assert_eq!(
            record::text(&run, name).unwrap(),
            record::text(&reference, name).unwrap(),
            "{name}"
        );
    }
    // A new run may not start where a packed one is.
    let o = rbd()
        .args(["train", "--out", run.to_str().unwrap(), "--device", "cpu"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("already holds a run"), "{}", text(&o));
}

/// Every run committed under `results/` is in its folder's pack (none left as a
/// directory of records), and each planned run of a built-in manifest or tune trial
/// that has a record reads as finished: a rerun trains nothing.
#[test]
fn every_committed_run_is_packed_and_finished() {
    use rbd::reproduce::manifest::{Manifest, PlanOptions, BUILT_IN};
    use rbd::reproduce::runner::{over, state, RunState};
    // Relative, as `rbd reproduce` plans it (a tuned rate's source names its file), from
    // the package root, where cargo runs the tests.
    let results = Path::new("results").to_path_buf();
    assert!(
        results.join("README.md").exists(),
        "run from the package root"
    );
    let mut unpacked = Vec::new();
    let mut todo = vec![results.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n == SEALED || n == "config.json")
            {
                unpacked.push(p);
            }
        }
    }
    assert!(
        unpacked.is_empty(),
        "{} records not packed (run `rbd results migrate`), e.g. {:?}",
        unpacked.len(),
        &unpacked[..unpacked.len().min(3)]
    );

    let mut finished = 0;
    for (name, _) in BUILT_IN {
        let manifest = Manifest::load(name).unwrap();
        let opts = PlanOptions {
            seeds: Some(5),
            data_dir: std::env::temp_dir(),
            ..PlanOptions::default()
        };
        let Ok(planned) = manifest.plan(&results, &opts) else {
            continue; // not a training artefact
        };
        for run in planned
            .iter()
            .filter(|r| record::has(&r.dir, "config.json"))
        {
            assert!(record::is_packed(&run.dir), "{}", run.dir.display());
            let s = state(run).unwrap();
            // A campaign item may train a manifest's run on a reduced budget: planned at
            // the manifest's epochs it is then a finished shorter run, to be extended.
            let own_epochs = record::text(&run.dir, "config.json")
                .unwrap()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["epochs"].as_u64());
            assert!(
                matches!(s, RunState::Done | RunState::Diverged(_))
                    || matches!(s, RunState::Partial { epochs_done } if Some(epochs_done) == own_epochs),
                "{}: {s:?} (its own budget: {own_epochs:?} epochs)",
                run.dir.display()
            );
            finished += 1;
        }
    }
    let mut trials = 0;
    for search in std::fs::read_dir(results.join("tune")).unwrap() {
        let search = search.unwrap().path();
        if search.is_dir() {
            for trial in record::runs_in(&search).unwrap() {
                assert!(record::is_packed(&trial), "{}", trial.display());
                assert!(over(&trial).unwrap(), "{}", trial.display());
                trials += 1;
            }
        }
    }
    assert!(
        finished > 100 && trials > 50,
        "{finished} runs, {trials} trials"
    );
}
