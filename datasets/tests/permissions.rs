//! An unreadable data directory is reported as "permission denied" naming the path, not
//! as a missing file (and does not start a fetch).
//!
//! Root reads through any mode bits, so when this runs as root (as CI does) the check
//! runs in a child process: this test binary, copied to a scratch directory, run as
//! user `nobody` with `setpriv`. The directory gets mode 000 either way.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use rbd_datasets::*;

/// Set in the child process: the locked data directory to probe.
const PROBE_ENV: &str = "RBD_TEST_PERMISSION_PROBE_DIR";

#[test]
fn unreadable_data_directory_is_permission_denied() {
    let data = TempDir::new("perm");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = data.join("locked");
    std::fs::create_dir(&locked).unwrap();
    for sub in ["mnist", "cifar10"] {
        std::fs::create_dir(locked.join(sub)).unwrap();
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let privileged = std::fs::read_dir(&locked).is_ok();
    let outcome = if privileged {
        run_probe_unprivileged(&locked)
    } else {
        probe(&locked);
        Ok(())
    };
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    outcome.unwrap();
}

/// Runs [`probe_child`] as `nobody`; `Err` describes why it failed.
fn run_probe_unprivileged(locked: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().unwrap();
    let scratch = TempDir::new("perm-exe");
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = scratch.join("probe");
    std::fs::copy(&exe, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&copy)
        .args(["--exact", "probe_child", "--ignored", "--nocapture"])
        .env(PROBE_ENV, locked)
        .output()
        .map_err(|e| format!("cannot run setpriv (util-linux) to drop root: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("1 passed") {
        Ok(())
    } else {
        Err(format!("probe as nobody failed ({}):\n{text}", out.status))
    }
}

/// The checks, run by a process that the directory's mode bits deny.
fn probe(locked: &Path) {
    // MNIST: permission denied on the directory's files, no fetch attempted.
    let mut log = Vec::new();
    let e = load(DatasetKind::Mnist, Split::Train, locked, &mut |m| {
        log.push(m.to_string())
    })
    .unwrap_err();
    assert_denied(&e, "mnist");
    assert!(log.is_empty(), "a fetch was started: {log:?}");
    let e = find_idx_file(&locked.join("mnist"), "train-images-idx3-ubyte").unwrap_err();
    assert_denied(&e, "train-images-idx3-ubyte");
    // CIFAR-10: not "missing", and no download.
    let e = load_cifar10_dir(&cifar10_dir(locked), Split::Test).unwrap_err();
    assert_denied(&e, "cifar10");
    let mut log = Vec::new();
    let e = load(DatasetKind::Cifar10, Split::Test, locked, &mut |m| {
        log.push(m.to_string())
    })
    .unwrap_err();
    assert_denied(&e, "cifar10");
    assert!(log.is_empty(), "a download was started: {log:?}");
}

fn assert_denied(e: &DatasetError, names: &str) {
    let msg = e.to_string();
    match e {
        DatasetError::Io { source, path } => {
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{msg}");
            assert!(path.display().to_string().contains(names), "{msg}");
        }
        other => panic!("expected permission denied, got: {other}"),
    }
    assert!(msg.contains("Permission denied"), "{msg}");
}

/// Entry point of the child process (see the module comment); does nothing unless
/// started by [`unreadable_data_directory_is_permission_denied`].
#[test]
#[ignore]
fn probe_child() {
    if let Some(dir) = std::env::var_os(PROBE_ENV) {
        probe(Path::new(&dir));
    }
}
