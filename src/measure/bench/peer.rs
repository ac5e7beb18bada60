//! Peers measured in the same run: `--peer torch` runs `bench/bench_peer_torch.py`,
//! `--peer jax` runs `bench/bench_peer_jax.py` (both embedded in the binary, fed to an
//! interpreter on standard input), after rbd's own measurements, and the report
//! compares their figures with rbd's cpu figures of this run: each peer's, and the
//! fastest peer's RBD step. Without a peer, or when one cannot run, the report says
//! "no peer measured" (with why) and prints no ratio for it.

use super::BenchArgs;
use anyhow::{bail, Result};
use serde::Serialize;
use std::io::Write;
use std::process::{Command, Stdio};

/// The PyTorch peer script, as shipped in `bench/bench_peer_torch.py`.
const TORCH_SCRIPT: &str = include_str!("../../../bench/bench_peer_torch.py");
/// The JAX peer script, as shipped in `bench/bench_peer_jax.py`.
const JAX_SCRIPT: &str = include_str!("../../../bench/bench_peer_jax.py");

/// Environment variable naming the Python interpreter for peers.
pub const PYTHON_ENV: &str = "RBD_PEER_PYTHON";

/// A peer framework.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// PyTorch (materialised and chunked RBD steps).
    Torch,
    /// JAX under jit (materialised and scanned-chunk RBD steps).
    Jax,
}

impl PeerKind {
    fn name(self) -> &'static str {
        match self {
            PeerKind::Torch => "torch",
            PeerKind::Jax => "jax",
        }
    }
    fn script(self) -> &'static str {
        match self {
            PeerKind::Torch => TORCH_SCRIPT,
            PeerKind::Jax => JAX_SCRIPT,
        }
    }
}

/// The peers asked for, each with its interpreter.
pub type Choice = Vec<(PeerKind, String)>;

/// Reads `--peer NAME[=PYTHON]` (repeatable) and `--python` (the interpreter of peers
/// without their own; else `$RBD_PEER_PYTHON`, else `python3`).
pub fn parse(args: &BenchArgs) -> Result<Choice> {
    if args.peer.is_empty() && args.python.is_some() {
        bail!("--python names the interpreter of a peer: add --peer torch or --peer jax");
    }
    let mut out: Choice = Vec::new();
    for spec in &args.peer {
        let (name, python) = match spec.split_once('=') {
            Some((n, p)) if !p.is_empty() => (n, p.to_string()),
            Some((n, _)) => bail!("--peer {spec}: no interpreter after '=' (--peer {n}=PATH)"),
            None => (spec.as_str(), default_python(args)),
        };
        let kind = match name {
            "torch" => PeerKind::Torch,
            "jax" => PeerKind::Jax,
            other => bail!("--peer: '{other}' (expected torch or jax, optionally =PYTHON)"),
        };
        if out.iter().any(|(k, _)| *k == kind) {
            bail!("--peer {name} given twice");
        }
        out.push((kind, python));
    }
    Ok(out)
}

fn default_python(args: &BenchArgs) -> String {
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
    /// RBD steps at d = 250 (Gaussian directions, packed signs), by name.
    pub rbd_ms: Vec<(String, f64)>,
    /// SGD images/s per data-set shape.
    pub images_per_s: Vec<(String, f64)>,
}

/// One comparison of an rbd figure with a peer's.
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

/// What one peer measured, if anything.
#[derive(Serialize, Debug)]
pub struct PeerRun {
    /// Which peer.
    pub peer: PeerKind,
    /// Whether it was measured in this run.
    pub measured: bool,
    /// "no peer measured" and why, or the peer's description.
    pub note: String,
    /// The peer script's own JSON output.
    pub output: Option<serde_json::Value>,
}

/// Every peer's run and the comparisons.
#[derive(Serialize, Debug)]
pub struct PeerReport {
    /// One entry per peer asked for.
    pub runs: Vec<PeerRun>,
    /// "no peer measured: …" when none was asked for.
    pub note: Option<String>,
    /// rbd against each peer, then against the fastest peer's RBD step.
    pub ratios: Vec<Ratio>,
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

/// "torch 1 thread", "jax chunks of 50": how the peer's figure was obtained.
fn how(kind: PeerKind, v: &serde_json::Value) -> String {
    let mut s = kind.name().to_string();
    match v.get("threads").and_then(|t| t.as_u64()) {
        Some(1) => s.push_str(", 1 thread"),
        Some(n) => s.push_str(&format!(", {n} threads")),
        None => {}
    }
    if let Some(k) = v.get("chunk").and_then(|t| t.as_u64()) {
        s.push_str(&format!(", chunks of {k}"));
    }
    s
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

/// The RBD step variants a peer reports: (JSON key, words).
const PEER_RBD_STEPS: [(&str, &str); 2] = [
    ("rbd_materialised_step", "materialised"),
    ("rbd_chunked_step", "chunked on the fly"),
];

/// Runs the chosen peers (after rbd's own measurements) and compares.
pub fn measure(choice: &Choice, args: &BenchArgs, rbd: &RbdFigures) -> PeerReport {
    if choice.is_empty() {
        return PeerReport {
            runs: Vec::new(),
            note: Some("no peer measured: no --peer given (--peer torch, --peer jax)".into()),
            ratios: Vec::new(),
        };
    }
    let mut runs = Vec::new();
    let mut ratios = Vec::new();
    // The fastest RBD step of any peer: (ms, what).
    let mut fastest: Option<(f64, String)> = None;
    let rbd_gauss = rbd.rbd_ms.first().map(|x| x.1);
    for (kind, python) in choice {
        if !args.json {
            eprintln!("measuring the {} peer with {python}", kind.name());
        }
        let script_args = vec!["--repeats".to_string(), args.repeats.max(3).to_string()];
        let v = match run_script(python, kind.script(), &script_args) {
            Ok(v) => v,
            Err(why) => {
                runs.push(PeerRun {
                    peer: *kind,
                    measured: false,
                    note: format!("no peer measured: {why}"),
                    output: None,
                });
                continue;
            }
        };
        if let (Some(r), Some(t)) = (rbd.sgd_ms, step_ms(&v, "sgd_step")) {
            let what = format!("SGD step, CIFAR-10 CNN ({})", how(*kind, &v["sgd_step"]));
            ratios.push(time_ratio(&what, r, t));
        }
        for (key, words) in PEER_RBD_STEPS {
            let Some(t) = step_ms(&v, key) else { continue };
            let label = format!("RBD step d = 250, {words} ({})", how(*kind, &v[key]));
            if let Some(r) = rbd_gauss {
                ratios.push(time_ratio(&format!("{label} vs rbd gaussian"), r, t));
            }
            if fastest.as_ref().is_none_or(|f| t < f.0) {
                fastest = Some((t, label));
            }
        }
        for (dataset, rate) in &rbd.images_per_s {
            let peer = &v["sgd_images_per_s"][dataset.as_str()];
            if let Some(p) = peer["images_per_s"].as_f64() {
                let ratio = rate / p;
                ratios.push(Ratio {
                    what: format!("SGD images/s, CNN {dataset} ({})", how(*kind, peer)),
                    unit: "images/s",
                    rbd: *rate,
                    peer: p,
                    ratio,
                    verdict: format!("rbd {ratio:.2}× {}'s images/s", kind.name()),
                });
            }
        }
        runs.push(PeerRun {
            peer: *kind,
            measured: true,
            note: describe(*kind, &v),
            output: Some(v),
        });
    }
    if let Some((t, what)) = fastest {
        for (name, r) in &rbd.rbd_ms {
            ratios.push(time_ratio(
                &format!("rbd {name} vs the fastest peer RBD step ({what})"),
                *r,
                t,
            ));
        }
    }
    PeerReport {
        runs,
        note: None,
        ratios,
    }
}

/// The peer in words: framework version, threads, interpreter.
fn describe(kind: PeerKind, v: &serde_json::Value) -> String {
    let str_of = |k: &str| {
        v.get(k)
            .map(|x| x.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| PEER_GLIBC_TUNABLES.into());
    match kind {
        PeerKind::Torch => format!(
            "PyTorch {} (default {} threads; each figure the best of thread counts {}; Python {}, {}; GLIBC_TUNABLES={tunables}), measured in this run after rbd",
            str_of("torch_version"),
            str_of("threads"),
            str_of("thread_counts_measured"),
            str_of("python"),
            str_of("executable"),
        ),
        PeerKind::Jax => format!(
            "JAX {} ({} backend, XLA's own threads; Python {}, {}; GLIBC_TUNABLES={tunables}), measured in this run after rbd",
            str_of("jax_version"),
            str_of("backend"),
            str_of("python"),
            str_of("executable"),
        ),
    }
}

/// The peer table (or the "no peer measured" lines).
pub fn print(p: &PeerReport) {
    if let Some(note) = &p.note {
        println!("peer: {note}");
        return;
    }
    for r in &p.runs {
        println!("peer {}: {}", r.peer.name(), r.note);
    }
    if p.ratios.is_empty() {
        println!("no rbd cpu figure in this run to compare with (--backends cpu or all)");
        return;
    }
    println!(
        "{:<86} {:>9} {:>10} {:>10}  ratio",
        "comparison (rbd: cpu backend)", "unit", "rbd", "peer"
    );
    for r in &p.ratios {
        println!(
            "{:<86} {:>9} {:>10.2} {:>10.2}  {}",
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

    fn args(peer: &[&str], python: Option<&str>) -> BenchArgs {
        BenchArgs {
            json: true,
            repeats: 1,
            backends: "cpu".into(),
            quick: true,
            peer: peer.iter().map(|s| s.to_string()).collect(),
            python: python.map(std::path::PathBuf::from),
        }
    }

    #[test]
    fn flags_are_checked() {
        assert!(parse(&args(&[], None)).unwrap().is_empty());
        assert!(parse(&args(&["numpy"], None)).is_err());
        assert!(parse(&args(&[], Some("/usr/bin/python3"))).is_err());
        assert!(parse(&args(&["torch", "torch"], None)).is_err());
        assert!(parse(&args(&["jax="], None)).is_err());
        let c = parse(&args(
            &["torch", "jax=/venv-jax/bin/python"],
            Some("/opt/py"),
        ))
        .unwrap();
        assert_eq!(
            c,
            vec![
                (PeerKind::Torch, "/opt/py".to_string()),
                (PeerKind::Jax, "/venv-jax/bin/python".to_string())
            ]
        );
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

    fn figures() -> RbdFigures {
        RbdFigures {
            sgd_ms: Some(12.0),
            rbd_ms: vec![("gaussian".into(), 20.0), ("rademacher".into(), 14.0)],
            images_per_s: vec![("mnist".into(), 1500.0), ("cifar10".into(), 900.0)],
        }
    }

    #[test]
    fn measured_peer_figures_become_ratios_against_this_runs_figures() {
        let torch = r#"{"torch_version": "9.9", "threads": 2, "thread_counts_measured": [2, 1], "python": "3.x", "sgd_step": {"median_ms": 10.0, "threads": 1}, "rbd_materialised_step": {"median_ms": 200.0, "threads": 2}, "rbd_chunked_step": {"median_ms": 350.0, "threads": 2, "chunk": 50}, "sgd_images_per_s": {"mnist": {"images_per_s": 1000.0, "threads": 1}}}"#;
        let jax = r#"{"jax_version": "0.9", "backend": "cpu", "python": "3.x", "sgd_step": {"median_ms": 8.0}, "rbd_materialised_step": {"median_ms": 140.0}, "rbd_chunked_step": {"median_ms": 175.0, "chunk": 10}}"#;
        let (pt, pj) = (fake_python("t", torch), fake_python("j", jax));
        let a = args(
            &[
                &format!("torch={}", pt.display()),
                &format!("jax={}", pj.display()),
            ],
            None,
        );
        let r = measure(&parse(&a).unwrap(), &a, &figures());
        assert!(r.runs.iter().all(|x| x.measured), "{r:?}");
        assert!(r.runs[0].note.contains("PyTorch 9.9"), "{}", r.runs[0].note);
        assert!(r.runs[1].note.contains("JAX 0.9"), "{}", r.runs[1].note);
        let find = |w: &str| r.ratios.iter().find(|x| x.what.starts_with(w)).unwrap();
        let sgd = find("SGD step, CIFAR-10 CNN (torch");
        assert!((sgd.ratio - 1.2).abs() < 1e-12 && sgd.what.contains("1 thread"));
        assert_eq!(sgd.verdict, "rbd 1.20× slower");
        let m = find("RBD step d = 250, materialised (torch, 2 threads)");
        assert_eq!(m.verdict, "rbd 10.00× faster");
        let c = find("RBD step d = 250, chunked on the fly (jax, chunks of 10)");
        assert!((c.ratio - 20.0 / 175.0).abs() < 1e-12);
        // The fastest peer step is JAX's materialised one, 140 ms.
        let fast = find("rbd rademacher vs the fastest peer");
        assert!(fast.what.contains("materialised (jax)"), "{}", fast.what);
        assert_eq!(fast.verdict, "rbd 10.00× faster");
        assert!((find("SGD images/s, CNN mnist").ratio - 1.5).abs() < 1e-12);
        // No peer figure for cifar10: no ratio for it.
        assert!(r.ratios.iter().all(|x| !x.what.contains("cifar10")));
    }

    #[test]
    fn a_peer_without_its_framework_measures_nothing_and_the_others_still_count() {
        let none = fake_python(
            "notorch",
            r#"{"error": "cannot import torch: No module named torch"}"#,
        );
        let jax = fake_python(
            "jaxonly",
            r#"{"jax_version": "0.9", "rbd_materialised_step": {"median_ms": 100.0}}"#,
        );
        let a = args(
            &[
                &format!("torch={}", none.display()),
                &format!("jax={}", jax.display()),
            ],
            None,
        );
        let r = measure(&parse(&a).unwrap(), &a, &figures());
        assert!(!r.runs[0].measured && r.runs[0].output.is_none());
        assert!(
            r.runs[0]
                .note
                .starts_with("no peer measured: cannot import torch"),
            "{}",
            r.runs[0].note
        );
        assert!(r.runs[1].measured);
        assert!(r.ratios.iter().all(|x| !x.what.contains("torch")));
        assert!(r.ratios.iter().any(|x| x.what.contains("fastest peer")));
    }

    #[test]
    fn no_peer_no_ratio() {
        let a = args(&[], None);
        let r = measure(&parse(&a).unwrap(), &a, &figures());
        assert!(r.ratios.is_empty() && r.runs.is_empty());
        assert!(r.note.unwrap().starts_with("no peer measured"));
    }

    #[test]
    fn ratios_say_which_side_is_faster() {
        assert_eq!(time_ratio("x", 5.0, 10.0).verdict, "rbd 2.00× faster");
        assert_eq!(time_ratio("x", 15.0, 10.0).verdict, "rbd 1.50× slower");
    }
}
