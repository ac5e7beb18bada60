//! CIFAR-10 binary batches: records of 1 label byte followed by 3072 pixel bytes
//! (the 1024 R, then 1024 G, then 1024 B values of a 32×32 image, row-major).

use std::path::Path;

use crate::error::DatasetError;
use crate::idx::{check_exact_len, check_labels};

/// Side length of a CIFAR-10 image.
pub const CIFAR_SIDE: usize = 32;
/// Colour channels of a CIFAR-10 image.
pub const CIFAR_CHANNELS: usize = 3;
/// Pixel bytes per record (3 × 32 × 32).
pub const CIFAR_PIXELS: usize = CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE;
/// Bytes per record (1 label byte + 3072 pixel bytes).
pub const CIFAR_RECORD: usize = 1 + CIFAR_PIXELS;
/// Records in each official batch file.
pub const CIFAR_RECORDS_PER_FILE: usize = 10_000;
/// The five training batch files, in order (50,000 images).
pub const CIFAR_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file (10,000 images).
pub const CIFAR_TEST_FILE: &str = "test_batch.bin";

/// The contents of one CIFAR-10 batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarBatch {
    /// `labels.len() × 3072` pixel bytes, each image as R, G, B planes (CHW).
    pub images: Vec<u8>,
    /// One class index 0..=9 per image.
    pub labels: Vec<u8>,
}

/// Reads a CIFAR-10 batch file that must hold exactly `expected_records` records
/// (10,000 for the official files). The file length must match exactly and every
/// label must be 0..=9.
pub fn read_cifar_batch(path: &Path, expected_records: usize) -> Result<CifarBatch, DatasetError> {
    // A file longer than required is refused from its size, without reading it.
    let len = std::fs::metadata(path)
        .map_err(|e| DatasetError::io(path, e))?
        .len();
    let expected = (expected_records * CIFAR_RECORD) as u64;
    if len > expected {
        return Err(DatasetError::ExtraBytes {
            path: path.to_path_buf(),
            what: records_what(expected_records),
            expected,
            actual: len,
            extra: len - expected,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    parse_cifar_batch(path, &bytes, expected_records)
}

fn records_what(expected_records: usize) -> String {
    format!("expected {expected_records} records of {CIFAR_RECORD} bytes")
}

/// Parses the bytes of a CIFAR-10 batch file; `path` names it in errors.
pub fn parse_cifar_batch(
    path: &Path,
    bytes: &[u8],
    expected_records: usize,
) -> Result<CifarBatch, DatasetError> {
    let expected = (expected_records * CIFAR_RECORD) as u64;
    let what = if bytes.len().is_multiple_of(CIFAR_RECORD) || bytes.len() as u64 > expected {
        records_what(expected_records)
    } else {
        format!(
            "expected {expected_records} records of {CIFAR_RECORD} bytes, record {} is incomplete",
            bytes.len() / CIFAR_RECORD
        )
    };
    check_exact_len(path, bytes.len() as u64, expected, what)?;
    let mut images = Vec::with_capacity(expected_records * CIFAR_PIXELS);
    let mut labels = Vec::with_capacity(expected_records);
    for record in bytes.chunks_exact(CIFAR_RECORD) {
        labels.push(record[0]);
        images.extend_from_slice(&record[1..]);
    }
    check_labels(path, &labels, |i| i as u64)?;
    Ok(CifarBatch { images, labels })
}
