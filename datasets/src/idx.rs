//! IDX files (MNIST, Fashion-MNIST): 28×28 unsigned-byte images and their labels.
//!
//! Format: a big-endian `u32` magic number `0x000008DD` (type 0x08 = unsigned byte,
//! `DD` = number of dimensions), one big-endian `u32` per dimension, then the data in
//! row-major order. Files may be plain or gzip-compressed.

use std::path::Path;

use crate::error::DatasetError;
use crate::read::read_maybe_gzip;

/// Magic number of an IDX file of unsigned-byte images (3 dimensions: N × rows × cols).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension: N).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
/// Side length of an MNIST / Fashion-MNIST image.
pub const IDX_SIDE: usize = 28;
/// Largest valid class index.
pub const MAX_LABEL: u8 = 9;

const IMAGES_HEADER: usize = 16;
const LABELS_HEADER: usize = 8;

/// The contents of an IDX images file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image (always 28).
    pub rows: usize,
    /// Columns per image (always 28).
    pub cols: usize,
    /// `count × rows × cols` bytes, row-major.
    pub pixels: Vec<u8>,
}

/// Reads an IDX images file (plain or gzip) and validates magic, dimensions and length.
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DatasetError> {
    parse_idx_images(path, read_maybe_gzip(path)?)
}

/// Reads an IDX labels file (plain or gzip) and validates magic, length and label range.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DatasetError> {
    parse_idx_labels(path, read_maybe_gzip(path)?)
}

/// Parses the (decompressed) bytes of an IDX images file; `path` names it in errors.
pub fn parse_idx_images(path: &Path, mut bytes: Vec<u8>) -> Result<IdxImages, DatasetError> {
    check_header(
        path,
        &bytes,
        IMAGES_HEADER,
        IDX_IMAGES_MAGIC,
        "IDX unsigned-byte images, 3 dimensions",
    )?;
    let count = be_u32(&bytes, 4) as usize;
    let rows = be_u32(&bytes, 8);
    let cols = be_u32(&bytes, 12);
    for (field, found) in [("image rows", rows), ("image columns", cols)] {
        if found as usize != IDX_SIDE {
            return Err(DatasetError::BadDimension {
                path: path.to_path_buf(),
                field,
                found: found.into(),
                expected: IDX_SIDE as u64,
            });
        }
    }
    let what = format!("header says {count} images of {IDX_SIDE}×{IDX_SIDE}");
    let expected = IMAGES_HEADER as u64 + count as u64 * (IDX_SIDE * IDX_SIDE) as u64;
    check_exact_len(path, bytes.len(), expected, what)?;
    bytes.drain(..IMAGES_HEADER);
    Ok(IdxImages {
        count,
        rows: IDX_SIDE,
        cols: IDX_SIDE,
        pixels: bytes,
    })
}

/// Parses the (decompressed) bytes of an IDX labels file; `path` names it in errors.
pub fn parse_idx_labels(path: &Path, mut bytes: Vec<u8>) -> Result<Vec<u8>, DatasetError> {
    check_header(
        path,
        &bytes,
        LABELS_HEADER,
        IDX_LABELS_MAGIC,
        "IDX unsigned-byte labels, 1 dimension",
    )?;
    let count = be_u32(&bytes, 4) as u64;
    let what = format!("header says {count} labels");
    check_exact_len(path, bytes.len(), LABELS_HEADER as u64 + count, what)?;
    bytes.drain(..LABELS_HEADER);
    check_labels(path, &bytes, |i| i as u64)?;
    Ok(bytes)
}

/// Fails with [`DatasetError::LabelOutOfRange`] at the first label above 9;
/// `record` maps a position in `labels` to the record index reported.
pub(crate) fn check_labels(
    path: &Path,
    labels: &[u8],
    record: impl Fn(usize) -> u64,
) -> Result<(), DatasetError> {
    match labels.iter().position(|&l| l > MAX_LABEL) {
        None => Ok(()),
        Some(i) => Err(DatasetError::LabelOutOfRange {
            path: path.to_path_buf(),
            record: record(i),
            value: labels[i],
        }),
    }
}

/// Fails unless `actual == expected`, with a truncation or extra-bytes error.
pub(crate) fn check_exact_len(
    path: &Path,
    actual: usize,
    expected: u64,
    what: String,
) -> Result<(), DatasetError> {
    let actual = actual as u64;
    if actual < expected {
        Err(DatasetError::Truncated {
            path: path.to_path_buf(),
            what,
            expected,
            actual,
        })
    } else if actual > expected {
        Err(DatasetError::ExtraBytes {
            path: path.to_path_buf(),
            what,
            expected,
            actual,
            extra: actual - expected,
        })
    } else {
        Ok(())
    }
}

/// Checks the magic number (when at least 4 bytes are present) and that the whole
/// header of `header` bytes is present.
fn check_header(
    path: &Path,
    bytes: &[u8],
    header: usize,
    magic: u32,
    what: &'static str,
) -> Result<(), DatasetError> {
    if bytes.len() >= 4 {
        check_magic(path, bytes, magic, what)?;
    }
    if bytes.len() >= header {
        return Ok(());
    }
    Err(DatasetError::Truncated {
        path: path.to_path_buf(),
        what: format!("the header of {what} needs {header} bytes"),
        expected: header as u64,
        actual: bytes.len() as u64,
    })
}

fn check_magic(
    path: &Path,
    bytes: &[u8],
    expected: u32,
    what: &'static str,
) -> Result<(), DatasetError> {
    let found = be_u32(bytes, 0);
    if found == expected {
        Ok(())
    } else {
        Err(DatasetError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected,
            what,
        })
    }
}

/// Big-endian `u32` at `offset`; the caller guarantees `offset + 4 <= bytes.len()`.
fn be_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_be_bytes(b)
}
