//! The bare-machine GPU call, simulated on a CPU adapter (llvmpipe), as issue 27 asks:
//! `scripts/gpu-pack.sh --quick` packs the prebuilt binary and reports the total against
//! the device tool's 64 MiB; `scripts/gpu-check.sh --quick` then runs from a folder that
//! holds only the script and the pack, with no cargo or rustc on PATH, an empty HOME
//! (no data-set cache) and no network (a new network namespace: `unshare -n`, or
//! `unshare -rn` where only user namespaces are allowed). It must write the full JSON:
//! every section, each with the figures it exists for, and the paper section's run
//! directories.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn section<'a>(report: &'a Value, name: &str) -> &'a Value {
    let s = &report["sections"][name];
    assert!(s.is_object(), "section {name} missing: {report:#}");
    assert_eq!(s["ok"], true, "section {name} failed: {s:#}");
    s
}

fn positive(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!(x > 0.0 && x.is_finite(), "{what} = {x}");
    x
}

/// A PATH folder of links to every program in /usr/bin and /bin except the Rust
/// toolchain's: a machine without cargo.
fn path_without_cargo(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for system in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let Ok(entries) = std::fs::read_dir(system) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let n = name.to_string_lossy();
            if ["cargo", "rustc", "rustup", "rustdoc", "clippy"]
                .iter()
                .any(|t| n.starts_with(t))
            {
                continue;
            }
            let link = bin.join(&name);
            if !link.exists() {
                let _ = std::os::unix::fs::symlink(e.path(), link);
            }
        }
    }
    bin
}

/// The command prefix that cuts the network, if this machine allows one.
fn no_network() -> Option<Vec<&'static str>> {
    [vec!["unshare", "-n"], vec!["unshare", "-rn"]]
        .into_iter()
        .find(|p| {
            Command::new(p[0])
                .args(&p[1..])
                .arg("true")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn run_bare(prefix: &[&str], env: &[(&str, String)], script: &[&str]) -> Output {
    let mut cmd = Command::new(prefix.first().copied().unwrap_or("bash"));
    if prefix.is_empty() {
        cmd.args(script);
    } else {
        cmd.args(&prefix[1..]).arg("bash").args(script);
    }
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the bare-machine command starts")
}

#[test]
fn the_gpu_call_runs_on_a_bare_machine_and_returns_every_section() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join(format!("rbd-gpu-check-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let bare = tmp.join("bare");
    let pack = bare.join(".gpu-pack");
    std::fs::create_dir_all(bare.join("scripts")).unwrap();

    // Preparation, here: the binary stripped and compressed, the total printed.
    let prep = Command::new("bash")
        .arg(root.join("scripts/gpu-pack.sh"))
        .args(["--quick", "--bin", env!("CARGO_BIN_EXE_rbd"), "--pack"])
        .arg(&pack)
        .current_dir(&root)
        .output()
        .expect("bash runs gpu-pack.sh");
    let said = String::from_utf8_lossy(&prep.stdout);
    assert!(
        prep.status.success(),
        "gpu-pack.sh --quick failed:\n{said}\n{}",
        String::from_utf8_lossy(&prep.stderr)
    );
    assert!(said.contains("of the 64 MiB limit"), "{said}");
    let packed = std::fs::metadata(pack.join("rbd.xz")).unwrap().len();
    let built = std::fs::metadata(env!("CARGO_BIN_EXE_rbd")).unwrap().len();
    assert!(
        packed * 3 < built,
        "rbd.xz ({packed} bytes) is not compressed"
    );
    assert!(pack.join("MANIFEST").exists());

    // The bare machine: the script and the pack only.
    std::fs::copy(
        root.join("scripts/gpu-check.sh"),
        bare.join("scripts/gpu-check.sh"),
    )
    .unwrap();
    let home = tmp.join("home");
    let scratch = tmp.join("tmp");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let path = path_without_cargo(&tmp);
    let mut env = vec![
        ("PATH", path.display().to_string()),
        ("HOME", home.display().to_string()),
        ("TMPDIR", scratch.display().to_string()),
    ];
    for keep in [
        "WGPU_BACKEND",
        "VK_ICD_FILENAMES",
        "VK_DRIVER_FILES",
        "LD_LIBRARY_PATH",
        "XDG_RUNTIME_DIR",
    ] {
        if let Ok(v) = std::env::var(keep) {
            env.push((keep, v));
        }
    }
    let prefix = no_network();
    let prefix: Vec<&str> = match &prefix {
        Some(p) => p.clone(),
        None => {
            // No namespaces here: route any HTTP client to a closed port instead (rbd's
            // only network use is fetching data sets, through ureq, which honours it).
            eprintln!("note: unshare is not permitted here; cutting HTTP with a dead proxy");
            for k in [
                "http_proxy",
                "https_proxy",
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "ALL_PROXY",
            ] {
                env.push((k, "http://127.0.0.1:9".into()));
            }
            Vec::new()
        }
    };
    let cargo = run_bare(
        &prefix,
        &env,
        &["-c", "command -v cargo || command -v rustc"],
    );
    assert!(
        !cargo.status.success(),
        "cargo is on the bare machine's PATH: {}",
        String::from_utf8_lossy(&cargo.stdout)
    );
    if !prefix.is_empty() {
        let net = run_bare(&prefix, &env, &["-c", "cat /proc/net/dev"]);
        let devices = String::from_utf8_lossy(&net.stdout);
        assert!(
            !devices
                .lines()
                .skip(2)
                .any(|l| !l.trim_start().starts_with("lo:")),
            "the bare machine has a network interface besides lo:\n{devices}"
        );
    }

    let out = tmp.join("out");
    let started = std::time::Instant::now();
    let script = bare.join("scripts/gpu-check.sh").display().to_string();
    let run = run_bare(
        &prefix,
        &env,
        &[&script, "--quick", &out.display().to_string()],
    );
    let secs = started.elapsed().as_secs_f64();
    let json = out.join("gpu-check.json");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no {}: {e}\n{}",
            json.display(),
            String::from_utf8_lossy(&run.stderr)
        )
    });
    let report: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", json.display()));
    assert!(
        run.status.success(),
        "gpu-check.sh --quick failed after {secs:.0} s:\n{report:#}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("gpu-check.sh --quick took {secs:.0} s");
    assert_eq!(report["mode"], "quick");
    assert_eq!(report["device"], "wgpu-cpu");
    assert_eq!(report["finished"], true);
    assert_eq!(report["all_ok"], true);
    assert!(report["data"].as_str().unwrap().contains("synthetic"));
    // Nothing reached for a data set: the empty HOME's cache holds at most the cpu
    // plan this machine calibrated (docs/random-directions.md §13), no data.
    let cached: Vec<String> = std::fs::read_dir(home.join(".cache/rbd"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        cached.iter().all(|name| name == "cpu-plan"),
        "the bare machine's cache holds more than the cpu plan: {cached:?}"
    );

    let devices = &section(&report, "devices")["output"];
    assert!(devices["cpu"].as_str().unwrap().contains("native Rust"));
    assert!(!devices["adapters"].as_array().unwrap().is_empty());

    let kernels = &section(&report, "bench_kernels")["output"];
    let rows = kernels["rows"].as_array().expect("bench kernels rows");
    assert!(!rows.is_empty());
    for r in rows {
        assert!(r["backend"].as_str().unwrap().starts_with("wgpu"), "{r}");
        positive(&r["timing"]["median_ms"], "kernel time");
    }
    // Each backend says how it was timed (timestamps where the adapter has them).
    for b in kernels["backends"].as_array().unwrap() {
        assert!(b["timing"].as_str().unwrap().contains("timestamp"), "{b}");
    }

    let rbd = &section(&report, "bench_rbd")["output"];
    let steps = rbd["steps"].as_array().expect("bench rbd steps");
    for name in [
        "sgd",
        "rbd gaussian",
        "rbd rademacher",
        "rbd fastfood (fused)",
    ] {
        let s = steps
            .iter()
            .find(|s| s["optimizer"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {rbd:#}"));
        positive(&s["timing"]["median_ms"], name);
    }
    // The bare machine has no Python peer: none is run, and the report says so.
    assert_eq!(rbd["peer"]["runs"].as_array().map(Vec::len), Some(0));
    assert!(rbd["peer"]["note"]
        .as_str()
        .unwrap()
        .starts_with("no peer measured"));

    for (name, optimizer) in [("profile_sgd", "sgd"), ("profile_rbd", "rbd")] {
        let p = &section(&report, name)["output"];
        assert_eq!(p["optimizer"], optimizer);
        assert_eq!(p["backend"], "wgpu");
        assert_eq!(
            (p["model"].as_str(), p["batch_size"].as_u64()),
            (Some("cnn"), Some(32))
        );
        positive(&p["step_ms"]["median_ms"], "step");
        let layers: Vec<&str> = p["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["layer"].as_str().unwrap())
            .collect();
        for l in [
            "conv2d_1", "conv2d_2", "conv2d_3", "dense_1", "dense_2", "loss",
        ] {
            assert!(layers.contains(&l), "{name}: no layer {l} in {layers:?}");
        }
        // Every dispatch of the step, with its grid and an estimate.
        let par = &p["parallelism"];
        let dispatches = par["dispatches"].as_array().expect("the dispatch log");
        assert!(
            dispatches.len() >= 20,
            "{name}: {} dispatches",
            dispatches.len()
        );
        for d in dispatches {
            assert!(d["total_workgroups"].as_u64().unwrap() >= 1, "{d}");
            assert!(d["threads_per_workgroup"].as_u64().unwrap() >= 1, "{d}");
            assert!(d["est_us"].as_f64().unwrap() >= 0.0, "{d}");
        }
        let kernels: Vec<&str> = dispatches
            .iter()
            .map(|d| d["kernel"].as_str().unwrap())
            .collect();
        for k in ["conv_forward", "conv_backward_data", "conv_backward_weight"] {
            assert!(kernels.contains(&k), "{name}: no {k} in {kernels:?}");
        }
    }
    // Issue 27's target for the CNN-CIFAR10 SGD step: no dispatch below 264 workgroups
    // unless its estimate is under 10 µs.
    let sgd = &section(&report, "profile_sgd")["output"]["parallelism"];
    assert_eq!(sgd["meets_target"], true, "{sgd:#}");

    for name in ["train_sgd", "train_rbd"] {
        let s = section(&report, name);
        let m = &s["metrics"];
        assert_eq!(m["epoch"], 1, "{name}: {s:#}");
        assert!(m["train_loss"].as_f64().unwrap().is_finite(), "{name}: {m}");
        // The clock is not in the metrics row but beside it.
        let t = &s["timing"];
        assert_eq!(t["epoch"], 1, "{name}: {s:#}");
        assert!(t["seconds"].as_f64().unwrap() > 0.0, "{name}: {t}");
    }

    // The paper section: a run directory, returned as a tarball that resumes.
    let paper = section(&report, "paper_gpu_quick");
    assert_eq!(paper["stopped_at_budget"], false, "{paper:#}");
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(out.join("paper-runs.tar.gz"))
        .output()
        .unwrap();
    let files = String::from_utf8_lossy(&listing.stdout);
    assert!(
        // A finished run is packed into sealed-runs.jsonl.gz (an older binary's sealed
        // into run.json.gz); one in progress keeps metrics.jsonl.
        files.lines().any(|l| l.ends_with("metrics.jsonl")
            || l.ends_with("run.json.gz")
            || l.ends_with(rbd::train::pack::PACK)),
        "no run directory in paper-runs.tar.gz:\n{files}"
    );
    assert!(out.join("gpu-check.log").exists());
    let _ = std::fs::remove_dir_all(&tmp);
}
