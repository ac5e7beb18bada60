//! Peers measured in the same run: `--peer torch` runs `bench/peer_torch.py` (embedded
//! in the binary, fed to the interpreter on standard input) and compares its figures
//! with rbd's cpu figures of this run. Without a peer, or when it cannot run, the
//! report says "no peer measured" and prints no ratio.

use crate::cli::BenchArgs;
use anyhow::{bail, Result};
use serde::Serialize;
use std::io::Write;
use std::process::{Command, Stdio};

/// The peer script, as shipped in `bench/peer_torch.py`.
const TORCH_SCRIPT: &str = include_str!("../../bench/peer_torch.py");

/// Environment variable naming the Python interpreter for peers.
pub const PYTHON_ENV: &str = "RBD_PEER_PYTHON";

/// Which peer to measure.
pub enum Choice {
    /// None asked for.
    None,
    /// PyTorch, with this interpreter.
    Torch(String),
}

/// Reads `--peer` and `--python` (else `$RBD_PEER_PYTHON`, else `python3`).
pub fn parse(args: &BenchArgs) -> Result<Choice> {
    match args.peer.as_deref() {
        None => {
            if args.python.is_some() {
                bail!("--python names the interpreter of a peer: add --peer torch");
            }
            Ok(Choice::None)
        }
        Some("torch") => Ok(Choice::Torch(python(args))),
        Some(other) => bail!("--peer: '{other}' (expected torch)"),
    }
}

fn python(args: &BenchArgs) -> String {
    if let Some(p) = &args.python {
        return p.display().to_string();
    }
    match std::env::var(PYTHON_ENV) {
        Ok(p) if !p.is_empty() => p,
        _ => "python3".into(),
    }
}

/// rbd's cpu figures of this run.
pub struct RbdFigures {
    /// SGD step, CIFAR-10 CNN, batch 32.
    pub sgd_ms: Option<f64>,
    /// Fused RBD step at d = 250.
    pub rbd_ms: Option<f64>,
    /// SGD images/s per data-set shape.
    pub images_per_s: Vec<(String, f64)>,
}

/// One comparison of an rbd figure with the peer's.
#[derive(Serialize, Debug)]
pub struct Ratio {
    /// What is compared.
    pub what: String,
    /// Unit of both figures.
    pub unit: &'static str,
    /// rbd's figure (cpu backend, this run).
    pub rbd: f64,
    /// The peer's figure (this run).
    pub peer: f64,
    /// rbd / peer.
    pub ratio: f64,
    /// The ratio in words.
    pub verdict: String,
}

/// What the peer measured, if anything.
#[derive(Serialize, Debug)]
pub struct PeerReport {
    /// Whether a peer was measured in this run.
    pub measured: bool,
    /// "no peer measured" and why, or the peer's description.
    pub note: String,
    /// The peer script's own JSON output.
    pub output: Option<serde_json::Value>,
    /// rbd against the peer.
    pub ratios: Vec<Ratio>,
}

impl PeerReport {
    fn none(why: String) -> Self {
        PeerReport {
            measured: false,
            note: format!("no peer measured: {why}"),
            output: None,
            ratios: Vec::new(),
        }
    }
}

/// glibc's malloc with rbd's `mallopt` settings: blocks up to 32 MiB from the heap,
/// no trimming.
pub const PEER_GLIBC_TUNABLES: &str =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647";

fn run_script(python: &str, script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    let mut command = Command::new(python);
    // The peer gets the allocator setting rbd gives itself (src/main.rs), so neither
    // side pays page faults the other does not; a user's own setting wins.
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        command.env("GLIBC_TUNABLES", PEER_GLIBC_TUNABLES);
    }
    let mut child = command
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the Python interpreter '{python}': {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(|e| format!("writing the peer script to {python}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        return Err(format!("{python} exited with {}: {last}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| format!("the peer script printed no JSON ({e}): {line:.200}"))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(e.to_string());
    }
    Ok(v)
}

fn step_ms(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key)?.get("median_ms")?.as_f64()
}

/// "torch 1 thread": which thread count the peer's best showing came from.
fn threads(v: &serde_json::Value) -> String {
    match v.get("threads").and_then(|t| t.as_u64()) {
        Some(1) => "torch 1 thread".into(),
        Some(n) => format!("torch {n} threads"),
        None => "torch".into(),
    }
}

fn time_ratio(what: &str, rbd: f64, peer: f64) -> Ratio {
    let ratio = rbd / peer;
    let verdict = if ratio <= 1.0 {
        format!("rbd {:.2}× faster", 1.0 / ratio)
    } else {
        format!("rbd {ratio:.2}× slower")
    };
    Ratio {
        what: what.into(),
        unit: "ms",
        rbd,
        peer,
        ratio,
        verdict,
    }
}

/// Runs the chosen peer (after rbd's own measurements) and compares.
pub fn measure(choice: &Choice, args: &BenchArgs, rbd: &RbdFigures) -> PeerReport {
    let python = match choice {
        Choice::None => return PeerReport::none("no --peer given (--peer torch)".into()),
        Choice::Torch(p) => p,
    };
    if !args.json {
        eprintln!("measuring the PyTorch peer with {python}");
    }
    let script_args = vec!["--repeats".to_string(), args.repeats.max(3).to_string()];
    let v = match run_script(python, TORCH_SCRIPT, &script_args) {
        Ok(v) => v,
        Err(why) => return PeerReport::none(why),
    };
    let mut ratios = Vec::new();
    let torch_sgd = step_ms(&v, "sgd_step");
    let torch_rbd = step_ms(&v, "rbd_materialised_step");
    if let (Some(r), Some(t)) = (rbd.sgd_ms, torch_sgd) {
        let what = format!("SGD step, CIFAR-10 CNN ({})", threads(&v["sgd_step"]));
        ratios.push(time_ratio(&what, r, t));
    }
    if let (Some(r), Some(t)) = (rbd.rbd_ms, torch_rbd) {
        let what = format!(
            "RBD step d = 250, torch materialised ({})",
            threads(&v["rbd_materialised_step"])
        );
        ratios.push(time_ratio(&what, r, t));
    }
    if let (Some(rs), Some(rr), Some(ts), Some(tr)) = (rbd.sgd_ms, rbd.rbd_ms, torch_sgd, torch_rbd)
    {
        ratios.push(Ratio {
            what: "RBD step / SGD step (each framework's own)".into(),
            unit: "× SGD",
            rbd: rr / rs,
            peer: tr / ts,
            ratio: (rr / rs) / (tr / ts),
            verdict: format!("rbd {:.2}, torch {:.2}", rr / rs, tr / ts),
        });
    }
    for (dataset, rate) in &rbd.images_per_s {
        let peer = &v["sgd_images_per_s"][dataset.as_str()];
        if let Some(p) = peer["images_per_s"].as_f64() {
            let ratio = rate / p;
            ratios.push(Ratio {
                what: format!("SGD images/s, CNN {dataset} ({})", threads(peer)),
                unit: "images/s",
                rbd: *rate,
                peer: p,
                ratio,
                verdict: format!("rbd {ratio:.2}× torch's images/s"),
            });
        }
    }
    let str_of = |k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_default();
    let note = format!(
        "PyTorch {} (default {} threads; each figure the best of thread counts {}; Python {}, {}; GLIBC_TUNABLES={}), measured in this run after rbd",
        str_of("torch_version").trim_matches('"'),
        str_of("threads"),
        str_of("thread_counts_measured"),
        str_of("python").trim_matches('"'),
        str_of("executable").trim_matches('"'),
        std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| PEER_GLIBC_TUNABLES.into()),
    );
    PeerReport {
        measured: true,
        note,
        output: Some(v),
        ratios,
    }
}

/// The peer table (or the "no peer measured" line).
pub fn print(p: &PeerReport) {
    println!("peer: {}", p.note);
    if !p.measured {
        return;
    }
    if p.ratios.is_empty() {
        println!("no rbd cpu figure in this run to compare with (--backends cpu or all)");
        return;
    }
    println!(
        "{:<58} {:>9} {:>10} {:>10}  ratio",
        "comparison (rbd: cpu backend)", "unit", "rbd", "torch"
    );
    for r in &p.ratios {
        println!(
            "{:<58} {:>9} {:>10.2} {:>10.2}  {}",
            r.what, r.unit, r.rbd, r.peer, r.verdict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_is_no_peer_and_no_ratio() {
        let e = run_script("/nonexistent/python-for-rbd", TORCH_SCRIPT, &[]).unwrap_err();
        assert!(e.contains("/nonexistent/python-for-rbd"), "{e}");
    }

    fn args(peer: Option<&str>, python: Option<&str>) -> BenchArgs {
        BenchArgs {
            json: true,
            repeats: 1,
            backends: "cpu".into(),
            quick: true,
            peer: peer.map(String::from),
            python: python.map(std::path::PathBuf::from),
        }
    }

    #[test]
    fn flags_are_checked() {
        assert!(matches!(parse(&args(None, None)).unwrap(), Choice::None));
        assert!(parse(&args(Some("jax"), None)).is_err());
        assert!(parse(&args(None, Some("/usr/bin/python3"))).is_err());
        match parse(&args(Some("torch"), Some("/opt/py"))).unwrap() {
            Choice::Torch(p) => assert_eq!(p, "/opt/py"),
            Choice::None => panic!("torch expected"),
        }
    }

    /// A stand-in interpreter that reads the script from stdin and prints `json`.
    fn fake_python(name: &str, json: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rbd-peer-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("python");
        std::fs::write(&path, format!("#!/bin/sh\ncat >/dev/null\necho '{json}'\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        path
    }

    #[test]
    fn measured_peer_figures_become_ratios_against_this_runs_figures() {
        let json = r#"{"torch_version": "9.9", "threads": 2, "thread_counts_measured": [2, 1], "python": "3.x", "sgd_step": {"median_ms": 10.0, "threads": 1}, "rbd_materialised_step": {"median_ms": 200.0, "threads": 2}, "sgd_images_per_s": {"mnist": {"images_per_s": 1000.0, "threads": 1}}}"#;
        let py = fake_python("ok", json);
        let a = args(Some("torch"), py.to_str());
        let rbd = RbdFigures {
            sgd_ms: Some(12.0),
            rbd_ms: Some(20.0),
            images_per_s: vec![("mnist".into(), 1500.0), ("cifar10".into(), 900.0)],
        };
        let r = measure(&parse(&a).unwrap(), &a, &rbd);
        assert!(r.measured, "{r:?}");
        assert!(r.note.contains("PyTorch 9.9"), "{}", r.note);
        let find = |w: &str| r.ratios.iter().find(|x| x.what.starts_with(w)).unwrap();
        let sgd = find("SGD step");
        assert!((sgd.ratio - 1.2).abs() < 1e-12 && sgd.what.contains("1 thread"));
        assert_eq!(sgd.verdict, "rbd 1.20× slower");
        let rbd_step = find("RBD step d = 250");
        assert_eq!(rbd_step.verdict, "rbd 10.00× faster");
        assert!(rbd_step.what.contains("2 threads"));
        assert!((find("RBD step / SGD").peer - 20.0).abs() < 1e-12);
        assert!((find("SGD images/s, CNN mnist").ratio - 1.5).abs() < 1e-12);
        // No peer figure for cifar10: no ratio for it.
        assert!(r.ratios.iter().all(|x| !x.what.contains("cifar10")));
    }

    #[test]
    fn a_peer_without_torch_measures_nothing() {
        let py = fake_python(
            "notorch",
            r#"{"error": "cannot import torch: No module named torch"}"#,
        );
        let a = args(Some("torch"), py.to_str());
        let rbd = RbdFigures {
            sgd_ms: Some(12.0),
            rbd_ms: Some(20.0),
            images_per_s: Vec::new(),
        };
        let r = measure(&parse(&a).unwrap(), &a, &rbd);
        assert!(!r.measured && r.ratios.is_empty() && r.output.is_none());
        assert!(
            r.note.starts_with("no peer measured: cannot import torch"),
            "{}",
            r.note
        );
    }

    #[test]
    fn ratios_say_which_side_is_faster() {
        assert_eq!(time_ratio("x", 5.0, 10.0).verdict, "rbd 2.00× faster");
        assert_eq!(time_ratio("x", 15.0, 10.0).verdict, "rbd 1.50× slower");
    }
}
