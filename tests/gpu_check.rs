//! `scripts/gpu-check.sh --quick` runs end to end on a CPU adapter (llvmpipe) and
//! writes one JSON file with every section, each holding the figures it exists for.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

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

#[test]
fn quick_gpu_check_writes_every_section() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("rbd-gpu-check-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("gpu-check.json");
    let status = Command::new("bash")
        .arg(root.join("scripts/gpu-check.sh"))
        .arg("--quick")
        .arg(&out)
        .env("RBD_BIN", env!("CARGO_BIN_EXE_rbd"))
        .status()
        .expect("bash runs the script");
    let text = std::fs::read_to_string(&out).expect("the script writes its JSON file");
    let report: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", out.display()));
    assert!(status.success(), "gpu-check.sh --quick failed:\n{report:#}");
    assert_eq!(report["mode"], "quick");
    assert_eq!(report["device"], "wgpu-cpu");
    assert!(report["data"].as_str().unwrap().contains("synthetic"));
    assert_eq!(report["all_ok"], true);

    let devices = section(&report, "devices")["output"].as_str().unwrap();
    assert!(devices.contains("cpu: native Rust backend"), "{devices}");

    let kernels = &section(&report, "bench_kernels")["output"];
    let rows = kernels["rows"].as_array().expect("bench kernels rows");
    assert!(!rows.is_empty());
    for r in rows {
        assert!(r["backend"].as_str().unwrap().starts_with("wgpu"), "{r}");
        positive(&r["timing"]["median_ms"], "kernel time");
    }

    let rbd = &section(&report, "bench_rbd")["output"];
    let steps = rbd["steps"].as_array().expect("bench rbd steps");
    for name in ["sgd", "rbd (fused)"] {
        let s = steps
            .iter()
            .find(|s| s["optimizer"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {rbd:#}"));
        positive(&s["timing"]["median_ms"], name);
    }
    // No peer asked for: no peer figure and no ratio.
    assert_eq!(rbd["peer"]["measured"], false);
    assert!(rbd["peer"]["ratios"].as_array().unwrap().is_empty());

    for (name, optimizer) in [("profile_sgd", "sgd"), ("profile_rbd", "rbd")] {
        let p = &section(&report, name)["output"];
        assert_eq!(p["optimizer"], optimizer);
        assert_eq!(p["backend"], "wgpu");
        assert_eq!(p["timing"], "wall-clock, synchronised per op");
        let step = positive(&p["step_ms"]["median_ms"], "step");
        let phase = |n: &str| {
            p["phases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["phase"] == n)
                .map(|r| r["median_ms"].as_f64().unwrap())
                .unwrap_or_else(|| panic!("{name}: no phase {n}"))
        };
        positive(&Value::from(phase("forward")), "forward");
        positive(&Value::from(phase("backward")), "backward");
        let profiled = positive(&p["profiled_step_ms"]["median_ms"], "profiled step");
        assert!(phase("forward") + phase("backward") <= profiled, "{p:#}");
        assert!(step > 0.0);
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
        let ops = p["op_totals"].as_array().unwrap();
        assert!(
            ops.iter().any(|o| o["op"] == "conv2d_backward_weight"),
            "{p:#}"
        );
        // The coordinator fills these at merge; until then they are null.
        assert!(p.get("gpu_counters").is_some());
    }

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
    let _ = std::fs::remove_dir_all(&dir);
}
