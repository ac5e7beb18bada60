//! SHA-256 verification of decompressed file contents.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::DatasetError;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Fails with [`DatasetError::Checksum`] (naming `path` and both hashes) unless the
/// SHA-256 of `bytes` is `expected` (lower-case hex).
pub fn verify_sha256(path: &Path, bytes: &[u8], expected: &str) -> Result<(), DatasetError> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(DatasetError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        })
    }
}
