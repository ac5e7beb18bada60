//! SHA-256 verification of decompressed file contents.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::DatasetError;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Lower-case hex SHA-256 of at most `limit` bytes of `reader`, and how many it hashed;
/// `path` names it in errors.
pub(crate) fn sha256_of_reader(
    path: &Path,
    reader: impl std::io::Read,
    limit: u64,
) -> Result<(String, u64), DatasetError> {
    let mut hasher = Sha256::new();
    let n = std::io::copy(
        &mut std::io::BufReader::new(reader.take(limit)),
        &mut hasher,
    )
    .map_err(|e| DatasetError::io(path, e))?;
    Ok((hex(&hasher.finalize()), n))
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
