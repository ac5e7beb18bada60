//! Finished runs as they are committed: a run's sealed record `run.json.gz` (one gzip
//! member, `{"rbd_run_record": 1, "files": {NAME: TEXT}}`, read by `record::read_sealed`)
//! and a folder's pack `runs/sealed-runs.jsonl.gz` (one such member a run, each with its
//! `"run"` name, read by `pack::load`, here past its cache: `pack::read`). Generated as rbd writes them (a configuration and
//! metric rows as the records' texts), then mutated inside a member's JSON, in its gzip
//! stream, or, for a pack, in its list of members (repeated, dropped, reordered, renamed
//! to a hostile name, given another format). A valid file reads back every record's text.

use super::config::random_config;
use super::idx::gzip_case;
use super::{gzip, keep_valid, Case, Target, Verdict, GZIP_RATIO};
use crate::json;
use crate::rng::Rng;
use rbd::train::pack::{check_name, read, PACK};
use rbd::train::record::{read_sealed, Sealed, FORMAT, SEALED};
use std::collections::BTreeMap;
use std::path::Path;

/// `record::read_sealed` on a generated `run.json.gz`.
pub struct SealedRun;

/// `pack::read` (what `pack::load` caches) on a generated `sealed-runs.jsonl.gz`: the case
/// directory is reused, so a cache keyed by the file's stamp could answer for another case.
pub struct SealedPack;

/// A run's records as rbd seals them: its configuration and a few metric rows.
fn records(rng: &mut Rng) -> BTreeMap<String, String> {
    let cfg = random_config(rng);
    let mut files = BTreeMap::new();
    files.insert(
        "config.json".to_string(),
        serde_json::to_string_pretty(&cfg).expect("a configuration serialises"),
    );
    let rows: String = (1..=rng.below(4))
        .map(|e| {
            format!(
                "{{\"epoch\":{e},\"step\":{},\"optimizer\":\"rbd\",\"lr\":0.125,\"train_loss\":{},\"val_accuracy\":0.{}}}\n",
                e * 1250,
                rng.f64().abs(),
                rng.below(10_000)
            )
        })
        .collect();
    files.insert("metrics.jsonl".to_string(), rows);
    if rng.chance(1, 3) {
        files.insert(
            "provenance.jsonl".to_string(),
            "{\"commit\":\"0736065\",\"from_epoch\":0,\"from_step\":0}\n".to_string(),
        );
    }
    files
}

/// The JSON text of a member: the record, with the run's name in a pack.
fn member_json(run: Option<&str>, files: &BTreeMap<String, String>) -> String {
    let mut v = serde_json::json!({ "rbd_run_record": FORMAT, "files": files });
    if let Some(run) = run {
        v["run"] = serde_json::Value::String(run.to_string());
    }
    serde_json::to_string(&v).expect("a record serialises")
}

/// The expected texts, one blob: `name\0text\0` for every record in name order.
fn flatten(files: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in files {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// The expected runs, one blob: each run's name, `\0`, then its [`flatten`]ed records.
fn flatten_runs<'a>(
    runs: impl Iterator<Item = (&'a String, &'a BTreeMap<String, String>)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, files) in runs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend(flatten(files));
    }
    out
}

/// One member's bytes: its JSON mutated, its gzip broken, or as written.
fn member_bytes(rng: &mut Rng, json: &str, valid: bool) -> (Vec<u8>, String) {
    if valid {
        return (gzip(json.as_bytes()), String::new());
    }
    match rng.below(3) {
        0 => {
            let (text, what) = json::mutate_text(rng, json, false);
            (gzip(&text), format!("JSON: {what}"))
        }
        1 => gzip_case(rng, json.as_bytes(), false),
        _ => {
            // A format this rbd does not read, or a hostile run name.
            let mut v: serde_json::Value = serde_json::from_str(json).expect("own JSON");
            let what = if v.get("run").is_some() && rng.chance(1, 2) {
                let name = *rng.pick(&["", "../escape", "a/b", ".hidden", "x\\y", "ok-seed0"]);
                v["run"] = serde_json::Value::String(name.to_string());
                format!("run named {name:?}")
            } else {
                let f = *rng.pick(&[0u64, 2, u32::MAX as u64, u64::MAX]);
                v["rbd_run_record"] = serde_json::json!(f);
                format!("format {f}")
            };
            (gzip(v.to_string().as_bytes()), what)
        }
    }
}

impl Target for SealedRun {
    fn name(&self) -> &'static str {
        "sealed"
    }

    fn about(&self) -> &'static str {
        "a finished run's run.json.gz (record::read_sealed)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let files = records(rng);
        let json = member_json(None, &files);
        let valid = keep_valid(rng);
        let (bytes, what) = member_bytes(rng, &json, valid);
        let mut case = Case::one(
            SEALED,
            bytes,
            if valid { "valid".into() } else { what },
            valid,
        );
        if valid {
            case.expect.push(("files".into(), flatten(&files)));
        }
        case
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        Verdict::of(read_sealed(&dir.join(SEALED)), |s: Sealed| {
            match case.expected("files") {
                Some(want) if want != flatten(&s.files).as_slice() => {
                    Verdict::Wrong("a valid record read back other texts".into())
                }
                _ if s.rbd_run_record != FORMAT => {
                    Verdict::Wrong(format!("format {} accepted", s.rbd_run_record))
                }
                _ => Verdict::Accepted,
            }
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // The decompressed text (at most deflate's ratio) and its parsed strings.
        4 * GZIP_RATIO * input + (64 << 10)
    }
}

impl Target for SealedPack {
    fn name(&self) -> &'static str {
        "pack"
    }

    fn about(&self) -> &'static str {
        "a folder's runs/sealed-runs.jsonl.gz (pack::read, as pack::load)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let n = rng.range(1, 4);
        let runs: Vec<(String, BTreeMap<String, String>)> = (0..n)
            .map(|i| (format!("run-{}-seed{i}", rng.below(100)), records(rng)))
            .collect();
        // Names are unique (the seed suffix) and a pack lists them in name order.
        let mut runs = runs;
        runs.sort_by(|a, b| a.0.cmp(&b.0));
        let valid = keep_valid(rng);
        let mut members: Vec<Vec<u8>> = runs
            .iter()
            .map(|(name, files)| gzip(member_json(Some(name), files).as_bytes()))
            .collect();
        let mut what = "valid".to_string();
        if !valid {
            let i = rng.below(members.len());
            what = match rng.below(6) {
                0 => {
                    members.push(members[i].clone());
                    format!("member {} repeated at the end", i + 1)
                }
                1 if members.len() > 1 => {
                    members.remove(i);
                    format!("member {} dropped", i + 1)
                }
                2 => {
                    members.reverse();
                    "members reversed".into()
                }
                3 => {
                    let len = rng.range(1, 40);
                    let junk = rng.bytes(len);
                    members.push(junk);
                    "junk after the last member".into()
                }
                _ => {
                    let json = member_json(Some(&runs[i].0), &runs[i].1);
                    let (bytes, how) = member_bytes(rng, &json, false);
                    members[i] = bytes;
                    format!("member {}: {how}", i + 1)
                }
            };
        }
        let mut case = Case::one(PACK, members.concat(), what, valid);
        if valid {
            let all = flatten_runs(runs.iter().map(|(n, f)| (n, f)));
            case.expect.push(("runs".into(), all));
        }
        case
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        Verdict::of(read(&dir.join(PACK)), |pack| {
            // Whatever is accepted names plain files and is of this rbd's format.
            for (name, m) in &pack.runs {
                if check_name(name).is_err() {
                    return Verdict::Wrong(format!("run name {name:?} accepted"));
                }
                if m.sealed.rbd_run_record != FORMAT {
                    return Verdict::Wrong(format!("format {} accepted", m.sealed.rbd_run_record));
                }
            }
            if let Some(want) = case.expected("runs") {
                let got = flatten_runs(pack.runs.iter().map(|(n, m)| (n, &m.sealed.files)));
                if got != want {
                    return Verdict::Wrong("a valid pack read back other runs".into());
                }
            }
            Verdict::Accepted
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        4 * GZIP_RATIO * input + (64 << 10)
    }
}
