//! Helpers of the `rbd` command's integration tests (`tests/cli`, `tests/distributed.rs`,
//! `tests/distributed_flag.rs`, `tests/gpu_check.rs`): the binary, scratch directories,
//! a small learnable data set in the real IDX format, and readers of a run's outputs.
// Each test target uses its own subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `rbd` binary under test, with a private runtime directory for Mesa's EGL.
pub fn rbd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rbd"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

/// Runs `rbd args`, printing its output when it fails.
pub fn run(args: &[&str]) -> Output {
    let out = rbd().args(args).output().expect("rbd runs");
    if !out.status.success() {
        show(&out);
    }
    out
}

/// `rbd reproduce MANIFEST --device cpu --results RESULTS EXTRA...`.
pub fn reproduce_on_cpu(manifest: &Path, results: &Path, extra: &[&str]) -> Output {
    let mut a = vec![
        "reproduce",
        manifest.to_str().unwrap(),
        "--device",
        "cpu",
        "--results",
        results.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    rbd().args(&a).output().unwrap()
}

/// Prints a command's stdout and stderr (for a failing test's log).
pub fn show(out: &Output) {
    eprintln!("stdout: {}", String::from_utf8_lossy(&out.stdout));
    eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
}

/// An empty directory of this test process named `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbd-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A [`scratch`] directory named `name` with [`synthetic`] data of `n` images in its
/// `data/`: (the directory, the data directory).
pub fn scratch_with_data(name: &str, n: usize) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let data = dir.join("data");
    synthetic(&data, n);
    (dir, data)
}

/// The `[defaults]` table of the CLI tests' miniature manifests: the FC on the
/// [`synthetic`] data in `data`, 200 validation images, d = 20, one table row.
pub fn manifest_defaults(data: &Path) -> String {
    format!(
        "\n[defaults]\nmodel = \"fc\"\ndataset = \"idx:{}\"\nval_size = 200\ndim = 20\nrow = \"FC-SYNTH\"\n",
        data.display()
    )
}

/// One `[[run]]` table of a miniature manifest: run `optimizer` (also its id) at rate
/// `lr` in table column `column`, plus the `extra` lines.
pub fn manifest_run(optimizer: &str, lr: &str, column: &str, extra: &[&str]) -> String {
    let mut t = format!(
        "\n[[run]]\nid = \"{optimizer}\"\noptimizer = \"{optimizer}\"\nlr = \"{lr}\"\ncolumn = \"{column}\"\n"
    );
    for line in extra {
        t.push_str(line);
        t.push('\n');
    }
    t
}

/// Starts `cmd` with its output discarded and kills it once `path` exists (the test
/// fails if that takes over 120 s, naming `what`).
pub fn kill_once_written(cmd: &mut Command, path: &Path, what: &str) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(120),
            "{what} never wrote {}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn idx_images(path: &Path, images: &[u8], n: usize) {
    std::fs::write(
        path,
        rbd_datasets::idx_images_bytes(n as u32, 28, 28, images),
    )
    .unwrap();
}

fn idx_labels(path: &Path, labels: &[u8]) {
    std::fs::write(path, rbd_datasets::idx_labels_bytes(labels)).unwrap();
}

/// A learnable 10-class problem of `n` training images (and the first 200 again as the
/// test set) in the four MNIST-named IDX files in `dir`: class k lights a 6×6 block at a
/// class-specific place, plus pseudo-random noise.
pub fn synthetic(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut images = vec![0u8; n * 784];
    let mut labels = vec![0u8; n];
    let mut s = 0x1234_5678u32;
    for i in 0..n {
        let k = (i * 7 + i / 10) % 10;
        labels[i] = k as u8;
        let (r0, c0) = (2 + (k / 5) * 12, 2 + (k % 5) * 5);
        for p in 0..784 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let (r, c) = (p / 28, p % 28);
            let on = r >= r0 && r < r0 + 6 && c >= c0 && c < c0 + 6;
            images[i * 784 + p] = if on { 200 } else { 0 } + (s % 50) as u8;
        }
    }
    idx_images(&dir.join("train-images-idx3-ubyte"), &images, n);
    idx_labels(&dir.join("train-labels-idx1-ubyte"), &labels);
    let test = n.min(200);
    idx_images(
        &dir.join("t10k-images-idx3-ubyte"),
        &images[..test * 784],
        test,
    );
    idx_labels(&dir.join("t10k-labels-idx1-ubyte"), &labels[..test]);
}

/// A run's epoch rows (`metrics.jsonl`, sealed or not).
pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    rbd::train::record::text(dir, "metrics.jsonl")
        .unwrap()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The bytes of a finished run's final tensors, in name order.
pub fn final_params(dir: &Path) -> Vec<u8> {
    let data = std::fs::read(dir.join("final.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&data).unwrap();
    let mut names: Vec<_> = st.names().into_iter().map(String::from).collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| st.tensor(n).unwrap().data().to_vec())
        .collect()
}
