//! `--distributed` in a build without the `mpi` feature (the default): a clear error
//! that says how to build with MPI, and nothing written.

mod common;

fn rbd(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    common::rbd()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("rbd runs")
}

#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_without_the_mpi_feature_says_how_to_build_it() {
    let dir = std::env::temp_dir().join(format!("rbd-distflag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = rbd(
        &[
            "train",
            "--distributed",
            "--model",
            "fc",
            "--optimizer",
            "rbd",
        ],
        &dir,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--distributed") && err.contains("--features mpi") && err.contains("mpich"),
        "{err}"
    );
    // Nothing was written (no default run directory).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn distributed_options_need_distributed() {
    let dir = std::env::temp_dir();
    for flag in [["--rbd-base", "shared"], ["--collective-timeout", "5"]] {
        let out = rbd(&["train", "--model", "fc", flag[0], flag[1]], &dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--distributed"), "{flag:?}: {err}");
    }
    let out = rbd(&["train", "--distributed", "--rbd-base", "sideways"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected per-worker or shared"), "{err}");
}
