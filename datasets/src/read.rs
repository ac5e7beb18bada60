//! Reading a whole file into memory, transparently decompressing gzip.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::DatasetError;

/// The two bytes every gzip stream starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads `path` completely; if it starts with the gzip magic bytes `1f 8b` it is
/// decompressed (all members) and the decompressed bytes are returned.
///
/// A corrupt or truncated gzip stream is a [`DatasetError::Gzip`] naming the file.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let raw = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    decompress_if_gzip(path, raw)
}

/// Decompresses `raw` if it is gzip, else returns it unchanged. `path` is only used for
/// error messages.
pub fn decompress_if_gzip(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, DatasetError> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    // The gzip trailer holds the uncompressed size modulo 2^32: a good capacity hint.
    let hint = raw
        .len()
        .checked_sub(4)
        .map(|i| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]) as usize)
        .unwrap_or(0)
        .min(1 << 30);
    let mut out = Vec::with_capacity(hint);
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| DatasetError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}
