//! Helpers shared by the integration tests: scratch directories and small files in the
//! real formats.
#![allow(dead_code)]

pub mod http;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::write::GzEncoder;
use flate2::Compression;
use rbd_datasets::Dataset;

/// A fresh empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "rbd-datasets-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random pixel bytes.
pub fn pixels(count: usize, salt: u64) -> Vec<u8> {
    (0..count as u64)
        .map(|i| (rbd_datasets::rng::splitmix64(i ^ (salt << 40)) >> 56) as u8)
        .collect()
}

// The IDX writers are the crate's own (beside its parser); some test targets use none.
#[allow(unused_imports)]
pub use rbd_datasets::{idx_images_bytes, idx_labels_bytes};

/// Bytes of a CIFAR-10 batch with the given labels and pixels (3072 per record).
pub fn cifar_bytes(labels: &[u8], pixels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        b.push(l);
        b.extend_from_slice(&pixels[i * 3072..(i + 1) * 3072]);
    }
    b
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Labels 0..=9 cycling.
pub fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

/// An in-memory data set of `n` random images of `c × h × w`.
pub fn synthetic(n: usize, c: usize, h: usize, w: usize, salt: u64) -> Dataset {
    Dataset::new(pixels(n * c * h * w, salt), labels(n), c, h, w).unwrap()
}

/// A gzip-compressed tar archive of `(path, contents)` regular files, in order.
pub fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Raw name bytes, so that a test can also write a hostile path (`..`).
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A CIFAR-10 batch of `records` records, recognisable per record: label
/// `(record + file) % 10`, pixel bytes 0..4 the record index (little-endian), byte 4 the
/// file index, the rest 0 (so a full-size archive compresses to almost nothing).
pub fn marked_batch(file: u8, records: usize) -> Vec<u8> {
    let mut b = vec![0u8; records * 3073];
    for (i, rec) in b.chunks_exact_mut(3073).enumerate() {
        rec[0] = ((i + file as usize) % 10) as u8;
        rec[1..5].copy_from_slice(&(i as u32).to_le_bytes());
        rec[5] = file;
    }
    b
}

/// The official batch file names, training files first.
pub const CIFAR_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// An archive in the layout of `cifar-10-binary.tar.gz` with `records` records per
/// batch file (10,000 in the official one) made by [`marked_batch`] (file index = position
/// in [`CIFAR_FILES`] + 1), plus `batches.meta.txt` and an unrelated top-level member.
pub fn cifar_archive(records: usize) -> Vec<u8> {
    let batches: Vec<Vec<u8>> = (0..6).map(|f| marked_batch(f as u8 + 1, records)).collect();
    let names: Vec<String> = CIFAR_FILES
        .iter()
        .map(|f| format!("cifar-10-batches-bin/{f}"))
        .collect();
    let mut members: Vec<(&str, &[u8])> = vec![(
        "cifar-10-batches-bin/batches.meta.txt",
        b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n",
    )];
    for (name, data) in names.iter().zip(&batches) {
        members.push((name, data));
    }
    members.push(("unrelated.txt", b"not part of the data set"));
    tar_gz(&members)
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
