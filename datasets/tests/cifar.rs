//! CIFAR-10 binary reader and directory lookup.

mod common;

use common::*;
use rbd_datasets::*;

#[test]
fn good_batches_load_in_order() {
    let dir = TempDir::new("cifar-good");
    let (l1, l2) = (vec![0, 9, 4], vec![5, 5]);
    let (p1, p2) = (pixels(3 * 3072, 1), pixels(2 * 3072, 2));
    write(&dir.join("a.bin"), &cifar_bytes(&l1, &p1));
    write(&dir.join("b.bin"), &cifar_bytes(&l2, &p2));
    let b = read_cifar_batch(&dir.join("a.bin"), 3).unwrap();
    assert_eq!(b.labels, l1);
    assert_eq!(b.images, p1);
    // Two files of different sizes cannot share one expected count.
    assert!(load_cifar_files(&[dir.join("a.bin"), dir.join("b.bin")], 3).is_err());
    write(
        &dir.join("c.bin"),
        &cifar_bytes(&[1, 2, 3], &pixels(3 * 3072, 3)),
    );
    let ds = load_cifar_files(&[dir.join("a.bin"), dir.join("c.bin")], 3).unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w), (6, 3, 32, 32));
    assert_eq!(ds.labels, vec![0, 9, 4, 1, 2, 3]);
    assert_eq!(&ds.images[..3 * 3072], &p1[..]);
    // R, G, B planes come straight from the record: red plane of image 1 first.
    assert_eq!(ds.image(1)[..1024], p1[3072..3072 + 1024]);
}

fn batch_err(bytes: &[u8], records: usize) -> (DatasetError, String) {
    let dir = TempDir::new("cifar-bad");
    let p = dir.join("data_batch_3.bin");
    write(&p, bytes);
    let e = read_cifar_batch(&p, records).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("data_batch_3.bin"), "{msg}");
    (e, msg)
}

#[test]
fn truncated_batch() {
    let b = cifar_bytes(&[1, 2, 3], &pixels(3 * 3072, 4));
    let (e, msg) = batch_err(&b[..2 * 3073 + 100], 3);
    assert!(
        matches!(
            e,
            DatasetError::Truncated {
                expected: 9219,
                actual: 6246,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("record 2 is incomplete"), "{msg}");
    // Whole records but too few of them.
    let (e, msg) = batch_err(&b[..2 * 3073], 3);
    assert!(matches!(e, DatasetError::Truncated { .. }), "{msg}");
    assert!(msg.contains("expected 3 records of 3073 bytes"), "{msg}");
}

#[test]
fn extra_bytes_in_batch() {
    let mut b = cifar_bytes(&[1, 2], &pixels(2 * 3072, 5));
    b.push(0);
    let (e, msg) = batch_err(&b, 2);
    assert!(
        matches!(e, DatasetError::ExtraBytes { extra: 1, .. }),
        "{msg}"
    );
    let b = cifar_bytes(&[1, 2, 3], &pixels(3 * 3072, 5));
    let (e, _) = batch_err(&b, 2);
    assert!(matches!(e, DatasetError::ExtraBytes { extra: 3073, .. }));
}

#[test]
fn label_out_of_range_in_batch() {
    let (e, msg) = batch_err(&cifar_bytes(&[1, 2, 10, 3], &pixels(4 * 3072, 6)), 4);
    assert!(
        matches!(
            e,
            DatasetError::LabelOutOfRange {
                record: 2,
                value: 10,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("label at record 2 is 10, expected 0..=9"),
        "{msg}"
    );
}

#[test]
fn missing_cifar_says_where_to_put_it_and_how_to_fetch_it() {
    // Reading a directory never fetches (`load` does; see tests/cifar_fetch.rs).
    let dir = TempDir::new("cifar-missing");
    let cifar = cifar10_dir(dir.path());
    let e = load_cifar10_dir(&cifar, Split::Train).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DatasetError::CifarMissing { .. }), "{msg}");
    assert!(msg.contains("www.cs.toronto.edu"), "{msg}");
    assert!(msg.contains("data_batch_1.bin"), "{msg}");
    assert!(msg.contains(&format!("into {}", cifar.display())), "{msg}");
    assert!(msg.contains("RBD_CIFAR10_ARCHIVE=PATH"), "{msg}");
    assert!(msg.contains("RBD_CIFAR10_BUILDER=PATH/build.py"), "{msg}");
    // No path outside the repository or the user's directories.
    assert!(!msg.contains("../"), "{msg}");
    // Nothing was created.
    assert!(!cifar.exists());
}

#[test]
fn cifar_dir_is_found_directly_or_nested() {
    // The official layout with 10,000-record files is too large to be worth writing for
    // every test run, so only the lookup is exercised here, with placeholder files.
    let dir = TempDir::new("cifar-lookup");
    let nested = dir.join(CIFAR_BATCHES_DIR);
    std::fs::create_dir_all(&nested).unwrap();
    write(&nested.join(CIFAR_TEST_FILE), b"");
    assert_eq!(
        resolve_cifar10_dir(dir.path(), Split::Test).unwrap(),
        nested
    );
    assert_eq!(resolve_cifar10_dir(&nested, Split::Test).unwrap(), nested);
    let e = resolve_cifar10_dir(dir.path(), Split::Train).unwrap_err();
    assert!(e.to_string().contains("data_batch_5.bin"));
    // A present but empty test file is a truncation error, not "missing".
    let e = load_cifar10_dir(dir.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            DatasetError::Truncated {
                actual: 0,
                expected: 30_730_000,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn full_size_official_layout_loads_through_load() {
    // Present files are read as they are: `load` fetches nothing (no server is named,
    // and the default URL is never contacted when the split is there).
    let dir = TempDir::new("cifar-full");
    let nested = cifar10_dir(dir.path()).join(CIFAR_BATCHES_DIR);
    std::fs::create_dir_all(&nested).unwrap();
    let lb = labels(CIFAR_RECORDS_PER_FILE);
    let px = pixels(CIFAR_RECORDS_PER_FILE * 3072, 9);
    write(&nested.join(CIFAR_TEST_FILE), &cifar_bytes(&lb, &px));
    let mut log = Vec::new();
    let ds = load(DatasetKind::Cifar10, Split::Test, dir.path(), &mut |m| {
        log.push(m.to_string())
    })
    .unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w), (10_000, 3, 32, 32));
    assert_eq!(ds.labels, lb);
    assert_eq!(ds.images, px);
    assert!(log.is_empty(), "{log:?}");
}

#[test]
fn oversized_batch_is_refused_from_its_size() {
    let dir = TempDir::new("cifar-huge");
    let p = dir.join("test_batch.bin");
    // A sparse 8 GiB file: refused from its length, never read.
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(8 << 30).unwrap();
    let e = read_cifar_batch(&p, CIFAR_RECORDS_PER_FILE).unwrap_err();
    assert!(
        matches!(e, DatasetError::ExtraBytes { actual, .. } if actual == 8 << 30),
        "{e}"
    );
    assert!(e.to_string().contains("test_batch.bin"), "{e}");
}
