//! CIFAR-10 on first use, against a server on the loopback address serving archives in
//! the official layout that the tests build themselves (nothing leaves this machine).

mod common;

use std::path::Path;

use common::http::{refused_url, Reply, Server};
use common::*;
use rbd_datasets::*;

const FULL: usize = CIFAR_RECORDS_PER_FILE;

fn source(url: &str, archive: &[u8]) -> Cifar10Source {
    Cifar10Source {
        url: url.to_string(),
        archive: None,
        builder: None,
        sha256: sha256_hex(archive),
        size: Some(archive.len() as u64),
    }
}

struct Outcome {
    result: Result<std::path::PathBuf, DatasetError>,
    log: Vec<String>,
    progress: Vec<DownloadProgress>,
}

fn ensure(data: &Path, split: Split, src: &Cifar10Source) -> Outcome {
    let (mut log, mut progress) = (Vec::new(), Vec::new());
    let result = ensure_cifar10(
        data,
        split,
        src,
        &mut |m| log.push(m.to_string()),
        &mut |p| progress.push(p),
    );
    Outcome {
        result,
        log,
        progress,
    }
}

/// Nothing but the (possibly empty) data directory itself: no `cifar10`, no scratch.
fn assert_nothing_left(data: &Path) {
    let left = listing(data);
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn assert_offline_help(msg: &str) {
    assert!(msg.contains("RBD_CIFAR10_ARCHIVE="), "{msg}");
    assert!(msg.contains("RBD_CIFAR10_BUILDER="), "{msg}");
    assert!(msg.contains("cifar-10-binary.tar.gz"), "{msg}");
    assert!(!msg.contains("../"), "{msg}");
}

fn check_loaded(data: &Path) {
    let dir = cifar10_dir(data);
    let test = load_cifar10_dir(&dir, Split::Test).unwrap();
    assert_eq!((test.n, test.c, test.h, test.w), (FULL, 3, 32, 32));
    // Record 1234 of test_batch.bin (file index 6): label (1234 + 6) % 10 = 0.
    assert_eq!(test.labels[1234], 0);
    assert_eq!(&test.image(1234)[..5], &[0xd2, 0x04, 0, 0, 6]);
    let train = load_cifar10_dir(&dir, Split::Train).unwrap();
    assert_eq!(train.n, 5 * FULL);
    // Record 7 of data_batch_3.bin is image 2·10,000 + 7.
    assert_eq!(&train.image(2 * FULL + 7)[..5], &[7, 0, 0, 0, 3]);
    assert_eq!(train.labels[2 * FULL + 7], 0);
}

#[test]
fn downloads_verifies_unpacks_once_and_local_archive_works_too() {
    let archive = cifar_archive(FULL);
    let server = Server::start(vec![Reply::ok(archive.clone())]);
    let data = TempDir::new("cifar-fetch-ok");
    let src = source(&server.url, &archive);

    let first = ensure(data.path(), Split::Test, &src);
    let batches = first.result.unwrap();
    assert_eq!(batches, cifar10_dir(data.path()).join(CIFAR_BATCHES_DIR));
    assert_eq!(server.requests(), 1);
    // Progress: from 0 to the whole archive, never past it, with the total known.
    let last = first.progress.last().unwrap();
    assert_eq!((last.done, last.total), (archive.len() as u64, src.size));
    assert_eq!(last.percent(), Some(100.0));
    assert!(first.progress.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(
        first.log.iter().any(|l| l.contains(&server.url)),
        "{:?}",
        first.log
    );
    assert!(
        first.log.iter().any(|l| l.contains("verified")),
        "{:?}",
        first.log
    );
    // Only the data set is left: batches and metadata, no archive, no scratch directory,
    // no member from outside cifar-10-batches-bin/.
    assert_eq!(listing(data.path()), ["cifar10"]);
    assert_eq!(listing(&cifar10_dir(data.path())), [CIFAR_BATCHES_DIR]);
    let mut expected: Vec<&str> = CIFAR_FILES.to_vec();
    expected.push("batches.meta.txt");
    expected.sort();
    assert_eq!(listing(&batches), expected);
    check_loaded(data.path());

    // A second load of either split finds the files: no request, no message.
    for split in [Split::Test, Split::Train] {
        let again = ensure(data.path(), split, &src);
        assert_eq!(again.result.unwrap(), batches);
        assert!(again.log.is_empty() && again.progress.is_empty());
    }
    assert_eq!(server.requests(), 1);
    drop(data);

    // The same archive as a local file (the offline option), no server involved.
    let files = TempDir::new("cifar-local");
    let local = files.join("cifar-10-binary.tar.gz");
    write(&local, &archive);
    let data = TempDir::new("cifar-local-data");
    let offline = Cifar10Source {
        url: refused_url(),
        archive: Some(local.clone()),
        ..src
    };
    let out = ensure(data.path(), Split::Train, &offline);
    out.result.unwrap();
    assert!(out.progress.is_empty());
    assert!(
        out.log
            .iter()
            .any(|l| l.contains(&local.display().to_string())),
        "{:?}",
        out.log
    );
    check_loaded(data.path());
    assert_eq!(server.requests(), 1);
}

#[test]
fn wrong_checksum_is_refused_and_leaves_nothing() {
    let archive = cifar_archive(2);
    let server = Server::start(vec![Reply::ok(archive.clone())]);
    let data = TempDir::new("cifar-fetch-sum");
    let mut src = source(&server.url, &archive);
    src.sha256 = CIFAR10_ARCHIVE_SHA256.to_string();
    let e = ensure(data.path(), Split::Train, &src).result.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::ArchiveChecksum { .. }), "{msg}");
    assert!(msg.contains(&server.url), "{msg}");
    assert!(msg.contains(CIFAR10_ARCHIVE_SHA256), "{msg}");
    assert!(msg.contains(&sha256_hex(&archive)), "{msg}");
    assert!(msg.contains("nothing was unpacked"), "{msg}");
    assert_offline_help(&msg);
    assert_nothing_left(data.path());

    // A local archive with the wrong checksum likewise.
    let files = TempDir::new("cifar-local-sum");
    let local = files.join("copy.tar.gz");
    write(&local, &archive);
    src.archive = Some(local.clone());
    let e = ensure(data.path(), Split::Train, &src).result.unwrap_err();
    assert!(matches!(e, DatasetError::ArchiveChecksum { .. }), "{e}");
    assert!(e.to_string().contains("copy.tar.gz"), "{e}");
    assert_nothing_left(data.path());
}

#[test]
fn truncated_download_is_an_error_and_leaves_nothing() {
    let archive = cifar_archive(2);
    let cut = archive.len() / 2;
    let server = Server::start(vec![
        Reply {
            cut_after: Some(cut),
            ..Reply::ok(archive.clone())
        },
        // Whole as announced, but shorter than the pinned size.
        Reply::ok(archive[..cut].to_vec()),
    ]);
    let data = TempDir::new("cifar-fetch-cut");
    let src = source(&server.url, &archive);
    let e = ensure(data.path(), Split::Train, &src).result.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::Download { .. }), "{msg}");
    assert!(
        msg.contains("broke off") || msg.contains("ended early"),
        "{msg}"
    );
    assert_offline_help(&msg);
    assert_nothing_left(data.path());

    let e = ensure(data.path(), Split::Train, &src).result.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "the server announces {cut} bytes, but the pinned file has {}",
            archive.len()
        )),
        "{msg}"
    );
    assert_nothing_left(data.path());
    assert_eq!(server.requests(), 2);
}

#[test]
fn http_errors_and_refused_connections_say_what_to_do() {
    let server = Server::start(vec![Reply::status(404)]);
    let data = TempDir::new("cifar-fetch-404");
    // What a fetch killed by SIGKILL leaves (its process is gone; no pid reaches 10^9):
    // removed by the next fetch.
    let abandoned = data.join(".fetch-cifar10-999999999-1");
    std::fs::create_dir(&abandoned).unwrap();
    write(
        &abandoned.join("cifar-10-binary.tar.gz"),
        b"half an archive",
    );
    let src = source(&server.url, b"irrelevant");
    let e = ensure(data.path(), Split::Test, &src).result.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::Download { .. }), "{msg}");
    assert!(msg.contains("HTTP 404"), "{msg}");
    assert!(msg.contains(&server.url), "{msg}");
    assert_offline_help(&msg);
    assert_nothing_left(data.path());

    let src = source(&refused_url(), b"irrelevant");
    let e = ensure(data.path(), Split::Test, &src).result.unwrap_err();
    assert!(matches!(e, DatasetError::Download { .. }), "{e}");
    assert_offline_help(&e.to_string());
    assert_nothing_left(data.path());
}

#[test]
fn archive_without_the_official_files_is_refused() {
    // Right checksum (the test pins it), wrong contents: batch files of 2 records.
    let archive = cifar_archive(2);
    let server = Server::start(vec![Reply::ok(archive.clone())]);
    let data = TempDir::new("cifar-fetch-layout");
    let e = ensure(data.path(), Split::Test, &source(&server.url, &archive))
        .result
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::BadArchive { .. }), "{msg}");
    assert!(msg.starts_with(&server.url), "{msg}");
    assert!(
        msg.contains("data_batch_1.bin has 6146 bytes, expected 30730000"),
        "{msg}"
    );
    assert_nothing_left(data.path());
    // A member that escapes the directory is never written.
    let evil = tar_gz(&[("cifar-10-batches-bin/../../escaped.bin", b"x")]);
    let files = TempDir::new("cifar-evil");
    write(&files.join("a.tar.gz"), &evil);
    let src = Cifar10Source {
        archive: Some(files.join("a.tar.gz")),
        ..source("http://127.0.0.1:9/unused", &evil)
    };
    let e = ensure(data.path(), Split::Test, &src).result.unwrap_err();
    assert!(matches!(e, DatasetError::BadArchive { .. }), "{e}");
    assert!(!data.path().parent().unwrap().join("escaped.bin").exists());
    assert_nothing_left(data.path());
}

#[test]
fn builder_script_is_run_and_checked() {
    let files = TempDir::new("cifar-builder");
    let good = files.join("build.py");
    // Writes all-zero records (label 0) in the official layout.
    write(
        &good,
        b"import os, sys\n\
          out = os.path.join(sys.argv[1], 'cifar-10-batches-bin')\n\
          os.makedirs(out)\n\
          for name in ['data_batch_%d.bin' % i for i in range(1, 6)] + ['test_batch.bin']:\n\
          \x20   open(os.path.join(out, name), 'wb').write(bytes(10000 * 3073))\n",
    );
    let data = TempDir::new("cifar-builder-data");
    let src = Cifar10Source {
        builder: Some(good.clone()),
        ..source(&refused_url(), b"unused")
    };
    let out = ensure(data.path(), Split::Test, &src);
    out.result.unwrap();
    assert!(
        out.log.iter().any(|l| l.contains("build.py")),
        "{:?}",
        out.log
    );
    let test = load_cifar10_dir(&cifar10_dir(data.path()), Split::Test).unwrap();
    assert_eq!(test.n, FULL);
    assert_eq!(listing(data.path()), ["cifar10"]);

    // A builder that fails, or writes the wrong layout: clear errors, nothing left.
    let failing = files.join("fail.py");
    write(&failing, b"import sys\nsys.exit('no JPEG copy here')\n");
    let short = files.join("short.py");
    write(
        &short,
        b"import os, sys\nos.makedirs(os.path.join(sys.argv[1], 'cifar-10-batches-bin'))\n",
    );
    let empty = TempDir::new("cifar-builder-fail");
    for (script, needle) in [
        (&failing, "no JPEG copy here"),
        (&short, "data_batch_1.bin is missing"),
    ] {
        let src = Cifar10Source {
            builder: Some(script.clone()),
            ..src.clone()
        };
        let e = ensure(empty.path(), Split::Test, &src).result.unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
        assert_nothing_left(empty.path());
    }
}

#[test]
fn a_partial_directory_is_completed_and_its_files_kept() {
    // The user unpacked only the test batch (their own copy): a training load fetches
    // the archive and adds the missing files, leaving theirs untouched.
    let archive = cifar_archive(FULL);
    let server = Server::start(vec![Reply::ok(archive.clone())]);
    let data = TempDir::new("cifar-partial");
    let batches = cifar10_dir(data.path()).join(CIFAR_BATCHES_DIR);
    std::fs::create_dir_all(&batches).unwrap();
    let theirs = cifar_bytes(&labels(FULL), &pixels(FULL * 3072, 77));
    write(&batches.join("test_batch.bin"), &theirs);
    let out = ensure(data.path(), Split::Train, &source(&server.url, &archive));
    assert_eq!(out.result.unwrap(), batches);
    assert_eq!(
        std::fs::read(batches.join("test_batch.bin")).unwrap(),
        theirs
    );
    let train = load_cifar10_dir(&batches, Split::Train).unwrap();
    assert_eq!(&train.image(FULL + 3)[..5], &[3, 0, 0, 0, 2]);
    assert_eq!(listing(data.path()), ["cifar10"]);
    assert_eq!(server.requests(), 1);
}

#[test]
fn download_progress_is_logged_every_ten_percent() {
    let mut lines = Vec::new();
    {
        let mut progress = log_download_progress(|m: &str| lines.push(m.to_string()));
        let total = CIFAR10_ARCHIVE_BYTES;
        for done in (0..total).step_by(1 << 16).chain([total]) {
            progress(DownloadProgress {
                done,
                total: Some(total),
            });
        }
    }
    assert_eq!(lines.len(), 11, "{lines:#?}");
    assert_eq!(lines[0], "  0.0 of 162.2 MiB (0%)");
    assert!(lines[1].ends_with("(10%)"), "{lines:?}");
    assert_eq!(lines[10], "  162.2 of 162.2 MiB (100%)");
    // Unknown size: a line every 16 MiB.
    let mut lines = Vec::new();
    {
        let mut progress = log_download_progress(|m: &str| lines.push(m.to_string()));
        for done in (0..=(64u64 << 20)).step_by(1 << 20) {
            progress(DownloadProgress { done, total: None });
        }
    }
    assert_eq!(
        lines,
        [
            "  0.0 MiB",
            "  16.0 MiB",
            "  32.0 MiB",
            "  48.0 MiB",
            "  64.0 MiB"
        ]
    );
}
