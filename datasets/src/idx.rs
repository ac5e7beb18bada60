//! IDX files (MNIST, Fashion-MNIST): 28×28 unsigned-byte images and their labels.
//!
//! Format: a big-endian `u32` magic number `0x000008DD` (type 0x08 = unsigned byte,
//! `DD` = number of dimensions), one big-endian `u32` per dimension, then the data in
//! row-major order. Files may be plain or gzip-compressed.

use std::path::Path;

use crate::error::DatasetError;
use crate::read::{read_declared, Declared};

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

/// The bytes of an IDX file of `n` images of `rows × cols` (`pixels` row-major): what
/// [`parse_idx_images`] reads (tests write small data sets with it).
pub fn idx_images_bytes(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(IMAGES_HEADER + pixels.len());
    b.extend_from_slice(&IDX_IMAGES_MAGIC.to_be_bytes());
    for d in [n, rows, cols] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

/// The bytes of an IDX labels file: what [`parse_idx_labels`] reads.
pub fn idx_labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(LABELS_HEADER + labels.len());
    b.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

/// Reads an IDX images file (plain or gzip) and validates magic, dimensions and length.
/// The header is read first and then at most the declared size plus one byte, so a gzip
/// bomb or a huge file is refused without being read whole.
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DatasetError> {
    parse_idx_images(path, read_idx_bytes(path, IdxKind::Images)?)
}

/// Reads an IDX labels file (plain or gzip) and validates magic, length and label range,
/// reading at most the declared size plus one byte (see [`read_idx_images`]).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DatasetError> {
    parse_idx_labels(path, read_idx_bytes(path, IdxKind::Labels)?)
}

/// The two kinds of IDX file rbd reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxKind {
    /// 3-dimensional unsigned-byte images (`*-idx3-ubyte`).
    Images,
    /// 1-dimensional unsigned-byte labels (`*-idx1-ubyte`).
    Labels,
}

impl IdxKind {
    /// The kind an official file name denotes (`idx3` images, else labels).
    pub fn of_name(name: &str) -> Self {
        if name.contains("idx3") {
            IdxKind::Images
        } else {
            IdxKind::Labels
        }
    }
}

/// The (decompressed) bytes of an IDX file, header included, reading the header first
/// and then at most the declared size plus one byte; the header's magic number and
/// dimensions are checked before the data are read. The bytes still go through
/// [`parse_idx_images`] or [`parse_idx_labels`], which report truncation.
pub fn read_idx_bytes(path: &Path, kind: IdxKind) -> Result<Vec<u8>, DatasetError> {
    match kind {
        IdxKind::Images => read_declared(path, IMAGES_HEADER, |h| images_declared(path, h)),
        IdxKind::Labels => read_declared(path, LABELS_HEADER, |h| labels_declared(path, h)),
    }
}

/// Validates a complete images header; returns the file length it declares.
fn images_declared(path: &Path, bytes: &[u8]) -> Result<Declared, DatasetError> {
    check_header(
        path,
        bytes,
        IMAGES_HEADER,
        IDX_IMAGES_MAGIC,
        "IDX unsigned-byte images, 3 dimensions",
    )?;
    let count = be_u32(bytes, 4) as usize;
    let rows = be_u32(bytes, 8);
    let cols = be_u32(bytes, 12);
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
    Ok(Declared {
        total: IMAGES_HEADER as u64 + count as u64 * (IDX_SIDE * IDX_SIDE) as u64,
        what: format!("header says {count} images of {IDX_SIDE}×{IDX_SIDE}"),
    })
}

/// Validates a complete labels header; returns the file length it declares.
fn labels_declared(path: &Path, bytes: &[u8]) -> Result<Declared, DatasetError> {
    check_header(
        path,
        bytes,
        LABELS_HEADER,
        IDX_LABELS_MAGIC,
        "IDX unsigned-byte labels, 1 dimension",
    )?;
    let count = be_u32(bytes, 4) as u64;
    Ok(Declared {
        total: LABELS_HEADER as u64 + count,
        what: format!("header says {count} labels"),
    })
}

/// Parses the (decompressed) bytes of an IDX images file; `path` names it in errors.
pub fn parse_idx_images(path: &Path, mut bytes: Vec<u8>) -> Result<IdxImages, DatasetError> {
    let Declared { total, what } = images_declared(path, &bytes)?;
    check_exact_len(path, bytes.len() as u64, total, what)?;
    let count = be_u32(&bytes, 4) as usize;
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
    let Declared { total, what } = labels_declared(path, &bytes)?;
    check_exact_len(path, bytes.len() as u64, total, what)?;
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
    actual: u64,
    expected: u64,
    what: String,
) -> Result<(), DatasetError> {
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
