//! `load` takes CIFAR-10's source from the environment. Its own test binary with a
//! single test, because it sets environment variables.

mod common;

use common::http::{Reply, Server};
use common::*;
use rbd_datasets::*;

#[test]
fn load_follows_the_environment_and_explains_every_option() {
    let data = TempDir::new("cifar-env");
    let files = TempDir::new("cifar-env-files");
    // The default is the official archive, unless overridden.
    for var in [CIFAR10_URL_ENV, CIFAR10_ARCHIVE_ENV, CIFAR10_BUILDER_ENV] {
        std::env::remove_var(var);
    }
    assert_eq!(Cifar10Source::from_env(), Cifar10Source::official());
    assert_eq!(
        Cifar10Source::official().url,
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    );

    // A mirror that answers 404: the error names it and gives both offline options.
    let server = Server::start(vec![Reply::status(404)]);
    std::env::set_var(CIFAR10_URL_ENV, &server.url);
    let mut log = Vec::new();
    let e = load(DatasetKind::Cifar10, Split::Train, data.path(), &mut |m| {
        log.push(m.to_string())
    })
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::Download { .. }), "{msg}");
    assert!(
        msg.contains("HTTP 404") && msg.contains(&server.url),
        "{msg}"
    );
    assert!(
        msg.contains("RBD_CIFAR10_ARCHIVE=/path/to/cifar-10-binary.tar.gz"),
        "{msg}"
    );
    assert!(
        msg.contains("RBD_CIFAR10_BUILDER=/path/to/build.py"),
        "{msg}"
    );
    assert!(msg.contains(CIFAR10_ARCHIVE_SHA256), "{msg}");
    assert!(!msg.contains("../"), "{msg}");
    assert!(log.iter().any(|l| l.contains(&server.url)), "{log:?}");
    assert_eq!(server.requests(), 1);

    // A local archive takes precedence over the download; the official checksum applies.
    let local = files.join("cifar-10-binary.tar.gz");
    write(&local, &cifar_archive(1));
    std::env::set_var(CIFAR10_ARCHIVE_ENV, &local);
    let e = load(DatasetKind::Cifar10, Split::Test, data.path(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, DatasetError::ArchiveChecksum { .. }), "{e}");
    assert!(e.to_string().contains(&local.display().to_string()), "{e}");
    let missing = files.join("nope.tar.gz");
    std::env::set_var(CIFAR10_ARCHIVE_ENV, &missing);
    let e = load(DatasetKind::Cifar10, Split::Test, data.path(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, DatasetError::Io { .. }), "{e}");
    assert!(e.to_string().contains("nope.tar.gz"), "{e}");
    std::env::remove_var(CIFAR10_ARCHIVE_ENV);

    // A builder script, when no archive is named.
    let script = files.join("build.py");
    write(&script, b"import sys\nsys.exit('builder ran')\n");
    std::env::set_var(CIFAR10_BUILDER_ENV, &script);
    let e = load(DatasetKind::Cifar10, Split::Test, data.path(), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("builder ran"), "{e}");
    std::env::remove_var(CIFAR10_BUILDER_ENV);

    // $SSL_CERT_FILE replaces the built-in roots of an https download; a bad one is
    // named before any connection. Plain http has no TLS and does not read it.
    let saved = std::env::var_os(CERT_FILE_ENV);
    let no_file = files.join("no-such-bundle.pem");
    std::env::set_var(CERT_FILE_ENV, &no_file);
    let plain = Server::start(vec![Reply::status(404)]);
    std::env::set_var(CIFAR10_URL_ENV, &plain.url);
    let over_http = load(DatasetKind::Cifar10, Split::Test, data.path(), &mut |_| {});
    // Nothing listens on port 1: only a bundle read before connecting can be the error.
    std::env::set_var(
        CIFAR10_URL_ENV,
        "https://127.0.0.1:1/cifar-10-binary.tar.gz",
    );
    let unreadable = load(DatasetKind::Cifar10, Split::Test, data.path(), &mut |_| {});
    let empty_bundle = files.join("empty.pem");
    write(&empty_bundle, b"no certificates here\n");
    std::env::set_var(CERT_FILE_ENV, &empty_bundle);
    let empty = load(DatasetKind::Cifar10, Split::Test, data.path(), &mut |_| {});
    match saved {
        Some(v) => std::env::set_var(CERT_FILE_ENV, v),
        None => std::env::remove_var(CERT_FILE_ENV),
    }
    let msg = over_http.unwrap_err().to_string();
    assert!(msg.contains("HTTP 404"), "{msg}");
    assert_eq!(plain.requests(), 1);
    let e = unreadable.unwrap_err();
    assert!(matches!(e, DatasetError::Download { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("$SSL_CERT_FILE: cannot read"), "{msg}");
    assert!(msg.contains("no-such-bundle.pem"), "{msg}");
    let msg = empty.unwrap_err().to_string();
    assert!(msg.contains("empty.pem holds no PEM certificate"), "{msg}");

    std::env::remove_var(CIFAR10_URL_ENV);
    assert_eq!(server.requests(), 1);
    assert_eq!(listing(data.path()), Vec::<String>::new());
}
