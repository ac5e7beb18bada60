//! IDX reader: good files load; every corruption is a typed error naming file and field.

mod common;

use common::*;
use rbd_datasets::*;

const N: usize = 5;
const IMG: usize = 28 * 28;

fn good_pair(
    dir: &TempDir,
    gz_images: bool,
    gz_labels: bool,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let px = pixels(N * IMG, 1);
    let lb = vec![3, 0, 9, 1, 7];
    let mut img = idx_images_bytes(N as u32, 28, 28, &px);
    let mut lab = idx_labels_bytes(&lb);
    let (mut ip, mut lp) = (dir.join("imgs-idx3-ubyte"), dir.join("labs-idx1-ubyte"));
    if gz_images {
        img = gzip(&img);
        ip.set_extension("gz");
    }
    if gz_labels {
        lab = gzip(&lab);
        lp.set_extension("gz");
    }
    write(&ip, &img);
    write(&lp, &lab);
    (ip, lp, px, lb)
}

#[test]
fn good_files_load_plain_gzip_and_mixed() {
    for (gi, gl) in [(false, false), (true, true), (true, false), (false, true)] {
        let dir = TempDir::new("idx-good");
        let (ip, lp, px, lb) = good_pair(&dir, gi, gl);
        let ds = load_idx_pair(&ip, &lp).unwrap();
        assert_eq!((ds.n, ds.c, ds.h, ds.w), (N, 1, 28, 28));
        assert_eq!(ds.images, px);
        assert_eq!(ds.labels, lb);
        assert_eq!(ds.image(2), &px[2 * IMG..3 * IMG]);
        let imgs = read_idx_images(&ip).unwrap();
        assert_eq!((imgs.count, imgs.rows, imgs.cols), (N, 28, 28));
        assert_eq!(read_idx_labels(&lp).unwrap(), lb);
    }
}

#[test]
fn zero_images_is_valid() {
    let dir = TempDir::new("idx-empty");
    let (ip, lp) = (dir.join("i"), dir.join("l"));
    write(&ip, &idx_images_bytes(0, 28, 28, &[]));
    write(&lp, &idx_labels_bytes(&[]));
    let ds = load_idx_pair(&ip, &lp).unwrap();
    assert!(ds.is_empty());
}

fn images_err(bytes: &[u8]) -> (DatasetError, String) {
    let dir = TempDir::new("idx-bad");
    let p = dir.join("train-images-idx3-ubyte");
    write(&p, bytes);
    let e = read_idx_images(&p).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    (e, msg)
}

fn labels_err(bytes: &[u8]) -> (DatasetError, String) {
    let dir = TempDir::new("idx-bad");
    let p = dir.join("train-labels-idx1-ubyte");
    write(&p, bytes);
    let e = read_idx_labels(&p).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
    (e, msg)
}

#[test]
fn wrong_magic() {
    let mut b = idx_images_bytes(1, 28, 28, &pixels(IMG, 2));
    b[3] = 0x01;
    let (e, msg) = images_err(&b);
    assert!(
        matches!(
            e,
            DatasetError::BadMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("0x00000801") && msg.contains("0x00000803"),
        "{msg}"
    );

    let mut b = idx_labels_bytes(&[1, 2]);
    b[2] = 0x0d; // float type
    let (e, msg) = labels_err(&b);
    assert!(
        matches!(
            e,
            DatasetError::BadMagic {
                found: 0x0d01,
                expected: 0x801,
                ..
            }
        ),
        "{msg}"
    );

    // A labels file passed as images (shorter than an images header) is still "magic".
    let (e, _) = images_err(&idx_labels_bytes(&[1]));
    assert!(matches!(e, DatasetError::BadMagic { .. }));
    // Gzipped files are checked after decompression.
    let mut b = idx_images_bytes(1, 28, 28, &pixels(IMG, 2));
    b[0] = 0x42;
    let (e, _) = images_err(&gzip(&b));
    assert!(matches!(
        e,
        DatasetError::BadMagic {
            found: 0x4200_0803,
            ..
        }
    ));
}

#[test]
fn wrong_dims() {
    let (e, msg) = images_err(&idx_images_bytes(1, 27, 28, &pixels(27 * 28, 3)));
    assert!(
        matches!(
            e,
            DatasetError::BadDimension {
                field: "image rows",
                found: 27,
                expected: 28,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("image rows is 27, expected 28"), "{msg}");
    let (e, msg) = images_err(&idx_images_bytes(1, 28, 32, &pixels(28 * 32, 3)));
    assert!(
        matches!(
            e,
            DatasetError::BadDimension {
                field: "image columns",
                found: 32,
                ..
            }
        ),
        "{msg}"
    );
}

#[test]
fn truncated_images_file() {
    let full = idx_images_bytes(5, 28, 28, &pixels(5 * IMG, 4));
    let cut = &full[..1000];
    let (e, msg) = images_err(cut);
    assert!(
        matches!(
            e,
            DatasetError::Truncated {
                expected: 3936,
                actual: 1000,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains(
            "truncated: header says 5 images of 28×28 (3936 bytes) but file has 1000 bytes"
        ),
        "{msg}"
    );
    // Truncated inside the header, and an empty file.
    let (e, msg) = images_err(&full[..10]);
    assert!(
        matches!(
            e,
            DatasetError::Truncated {
                expected: 16,
                actual: 10,
                ..
            }
        ),
        "{msg}"
    );
    let (e, _) = images_err(&[]);
    assert!(matches!(e, DatasetError::Truncated { actual: 0, .. }));
    // Labels.
    let (e, msg) = labels_err(&idx_labels_bytes(&[1, 2, 3, 4])[..10]);
    assert!(
        matches!(
            e,
            DatasetError::Truncated {
                expected: 12,
                actual: 10,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("header says 4 labels"), "{msg}");
}

#[test]
fn extra_bytes() {
    let mut b = idx_images_bytes(2, 28, 28, &pixels(2 * IMG, 5));
    b.extend_from_slice(&[0; 7]);
    let (e, msg) = images_err(&b);
    assert!(
        matches!(e, DatasetError::ExtraBytes { extra: 7, .. }),
        "{msg}"
    );
    assert!(msg.contains("7 extra bytes"), "{msg}");
    let mut b = idx_labels_bytes(&[1, 2]);
    b.push(3);
    let (e, _) = labels_err(&b);
    assert!(matches!(
        e,
        DatasetError::ExtraBytes {
            extra: 1,
            expected: 10,
            actual: 11,
            ..
        }
    ));
}

#[test]
fn label_out_of_range() {
    let mut lb = labels(2000);
    lb[1234] = 11;
    lb[1500] = 200;
    let (e, msg) = labels_err(&idx_labels_bytes(&lb));
    assert!(
        matches!(
            e,
            DatasetError::LabelOutOfRange {
                record: 1234,
                value: 11,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("train-labels-idx1-ubyte: label at record 1234 is 11, expected 0..=9"),
        "{msg}"
    );
}

#[test]
fn image_label_count_mismatch() {
    let dir = TempDir::new("idx-count");
    let (ip, lp) = (dir.join("imgs"), dir.join("labs"));
    write(&ip, &idx_images_bytes(3, 28, 28, &pixels(3 * IMG, 6)));
    write(&lp, &idx_labels_bytes(&[1, 2]));
    let e = load_idx_pair(&ip, &lp).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            DatasetError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("imgs") && msg.contains("labs"), "{msg}");
}

#[test]
fn bad_gzip() {
    let good = gzip(&idx_images_bytes(2, 28, 28, &pixels(2 * IMG, 7)));
    // Cut short.
    let (e, msg) = images_err(&good[..good.len() / 2]);
    assert!(matches!(e, DatasetError::Gzip { .. }), "{msg}");
    assert!(msg.contains("bad gzip data"), "{msg}");
    // Corrupted body.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let (e, msg) = images_err(&bad);
    assert!(
        matches!(
            e,
            DatasetError::Gzip { .. }
                | DatasetError::BadMagic { .. }
                | DatasetError::Truncated { .. }
                | DatasetError::ExtraBytes { .. }
        ),
        "{msg}"
    );
    // Only the magic bytes.
    let (e, _) = labels_err(&[0x1f, 0x8b, 0, 0, 0]);
    assert!(matches!(e, DatasetError::Gzip { .. }));
}

#[test]
fn missing_file_names_path() {
    let dir = TempDir::new("idx-missing");
    let e = read_idx_images(&dir.join("nope-idx3-ubyte")).unwrap_err();
    assert!(matches!(e, DatasetError::Io { .. }));
    assert!(e.to_string().contains("nope-idx3-ubyte"));
}

#[test]
fn pinned_checksum_mismatch_names_file_and_both_hashes() {
    let dir = TempDir::new("idx-sum");
    let img = idx_images_bytes(N as u32, 28, 28, &pixels(N * IMG, 8));
    write(&dir.join("train-images-idx3-ubyte"), &img);
    write(
        &dir.join("train-labels-idx1-ubyte.gz"),
        &gzip(&idx_labels_bytes(&labels(N))),
    );
    let e = load_idx_dir(&MNIST, dir.path(), Split::Train).unwrap_err();
    let msg = e.to_string();
    let actual = sha256_hex(&img);
    assert!(matches!(e, DatasetError::Checksum { .. }), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    assert!(
        msg.contains(MNIST.train_images.sha256) && msg.contains(&actual),
        "{msg}"
    );
    // Missing test files are reported with their names.
    let e = load_idx_dir(&MNIST, dir.path(), Split::Test).unwrap_err();
    assert!(e.to_string().contains("t10k-images-idx3-ubyte"), "{e}");
}

#[test]
fn locate_prefers_plain_then_gz() {
    let dir = TempDir::new("idx-locate");
    assert_eq!(locate_idx_file(dir.path(), "f"), None);
    write(&dir.join("f.gz"), b"x");
    assert_eq!(locate_idx_file(dir.path(), "f"), Some(dir.join("f.gz")));
    write(&dir.join("f"), b"x");
    assert_eq!(locate_idx_file(dir.path(), "f"), Some(dir.join("f")));
}

/// A gzip bomb: an IDX images header declaring `declared` images, then `mib` MiB of
/// zeros, as one gzip member per MiB (about 1 KiB each), with the last member's trailer
/// cut off, so that decompressing the whole file fails with a gzip error: a reader that
/// stops at the declared length never gets there.
fn gzip_bomb(declared: u32, mib: usize) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut first = idx_images_bytes(declared, 28, 28, &[]);
    first.extend_from_slice(&zeros[first.len()..]);
    let mut bomb = gzip_best(&first);
    let member = gzip_best(&zeros);
    for _ in 1..mib {
        bomb.extend_from_slice(&member);
    }
    bomb.truncate(bomb.len() - 8);
    bomb
}

fn gzip_best(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn gzip_bomb_is_refused_after_the_declared_size() {
    // 1.1 GiB of zeros in about 1.1 MiB, declaring 2 images (1,584 bytes).
    let bomb = gzip_bomb(2, 1126);
    assert!(bomb.len() < 1_200_000, "{}", bomb.len());
    let dir = TempDir::new("idx-bomb");
    let path = dir.join("train-images-idx3-ubyte.gz");
    write(&path, &bomb);
    let e = read_idx_images(&path).unwrap_err();
    let msg = e.to_string();
    // Oversized, not a gzip error: reading stopped long before the broken end.
    assert!(
        matches!(e, DatasetError::Oversized { expected: 1584, .. }),
        "{msg}"
    );
    assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
    assert!(msg.contains("header says 2 images of 28×28"), "{msg}");
    // The same through the loaders, with a labels file beside it.
    write(&dir.join("labels"), &idx_labels_bytes(&[1, 2]));
    let e = load_idx_pair(&path, &dir.join("labels")).unwrap_err();
    assert!(matches!(e, DatasetError::Oversized { .. }), "{e}");
    // A pinned data set: the header declares the official 60,000 images, and the bomb
    // is refused after 47 MB, before its checksum is computed.
    let mnist = TempDir::new("idx-bomb-mnist");
    write(
        &mnist.join("train-images-idx3-ubyte.gz"),
        &gzip_bomb(60_000, 1126),
    );
    write(
        &mnist.join("train-labels-idx1-ubyte"),
        &idx_labels_bytes(&labels(60_000)),
    );
    let e = load_idx_dir(&MNIST, mnist.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DatasetError::Oversized {
                expected: 47_040_016,
                ..
            }
        ),
        "{e}"
    );
    // Decompressing the whole bomb (into a sink: 1.1 GiB) does fail, so the checks
    // above tell a bounded read from a whole one.
    let mut whole = flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap());
    let e = std::io::copy(&mut whole, &mut std::io::sink()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
}

#[test]
fn huge_declared_sizes_are_refused_before_reading() {
    for gz in [false, true] {
        let dir = TempDir::new("idx-huge");
        let mut bytes = idx_images_bytes(u32::MAX, 28, 28, &pixels(IMG, 3));
        if gz {
            bytes = gzip(&bytes);
        }
        let p = dir.join("imgs");
        write(&p, &bytes);
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(e, DatasetError::DeclaredTooLarge { declared, limit, .. }
                if declared == 16 + u32::MAX as u64 * 784 && limit == MAX_FILE_BYTES),
            "{e}"
        );
        assert!(e.to_string().contains("imgs"), "{e}");
    }
    // A plain file far longer than declared is refused from its size (sparse, never read).
    let dir = TempDir::new("idx-long");
    let p = dir.join("labs");
    write(&p, &idx_labels_bytes(&[1, 2]));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    let e = read_idx_labels(&p).unwrap_err();
    assert!(
        matches!(e, DatasetError::ExtraBytes { expected: 10, actual, .. } if actual == 8 << 30),
        "{e}"
    );
}
