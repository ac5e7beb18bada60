//! Reading files into memory, transparently decompressing gzip, without ever reading more
//! than a file's header says it holds.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::DatasetError;

/// The two bytes every gzip stream starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most data rbd reads from one data file (4 GiB). Ten times the largest IDX data set
/// in use (EMNIST ByClass, 0.55 GB); a header declaring more is refused before reading.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// The most a gzip read reserves before data arrive.
const GZIP_RESERVE: u64 = 64 << 20;

/// The most deflate can expand its input (1032:1, a stream of back-references of
/// maximal length): a gzip file of N bytes decompresses to at most this times N.
const GZIP_MAX_RATIO: u64 = 1032;

/// Reads `path` completely; if it starts with the gzip magic bytes `1f 8b` it is
/// decompressed (all members) and the decompressed bytes are returned.
///
/// This reads whatever the file decompresses to: for data files whose header declares
/// their size, [`read_declared`] is the bounded alternative.
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
    // The gzip trailer holds the uncompressed size modulo 2^32: a good capacity hint,
    // if no more than the compressed bytes can expand to (a trailer may lie).
    let hint = raw
        .len()
        .checked_sub(4)
        .map(|i| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]) as usize)
        .unwrap_or(0)
        .min(1 << 30)
        .min(raw.len().saturating_mul(GZIP_MAX_RATIO as usize));
    let mut out = Vec::with_capacity(hint);
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| gzip_error(path, source))?;
    Ok(out)
}

/// What a file's header says about its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Total bytes (header included) the file must hold.
    pub total: u64,
    /// The promise in words, for error messages, e.g. "header says 60000 labels".
    pub what: String,
}

/// Reads a data file (plain or gzip) whose first `header_len` bytes declare its length:
/// the header first, then at most the declared length plus one byte, so that neither a
/// huge plain file nor a gzip bomb is read past what its header promises.
///
/// `declared` validates the header and returns the declared length; it is not called
/// when the file ends inside the header (the short bytes are returned, for the caller's
/// parser to report as truncated). Errors:
/// * a declared length above [`MAX_FILE_BYTES`]: [`DatasetError::DeclaredTooLarge`],
///   before reading past the header;
/// * a plain file longer than declared: [`DatasetError::ExtraBytes`] (from its size on
///   disk, without reading it);
/// * a gzip file that decompresses to more than declared: [`DatasetError::Oversized`],
///   after decompressing only the declared length plus one byte.
///
/// A shorter file is returned as it is (the caller reports the truncation).
pub fn read_declared(
    path: &Path,
    header_len: usize,
    declared: impl FnOnce(&[u8]) -> Result<Declared, DatasetError>,
) -> Result<Vec<u8>, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let plain_len = file
        .metadata()
        .map_err(|e| DatasetError::io(path, e))?
        .len();
    let mut buffered = BufReader::new(file);
    let is_gzip = buffered
        .fill_buf()
        .map_err(|e| DatasetError::io(path, e))?
        .starts_with(&GZIP_MAGIC);
    let map_err = |e: std::io::Error| {
        if is_gzip {
            gzip_error(path, e)
        } else {
            DatasetError::io(path, e)
        }
    };
    let mut reader: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };

    let mut bytes = Vec::with_capacity(header_len);
    (&mut reader)
        .take(header_len as u64)
        .read_to_end(&mut bytes)
        .map_err(map_err)?;
    if bytes.len() < header_len {
        return Ok(bytes);
    }
    let Declared { total, what } = declared(&bytes)?;
    if total > MAX_FILE_BYTES {
        return Err(DatasetError::DeclaredTooLarge {
            path: path.to_path_buf(),
            what,
            declared: total,
            limit: MAX_FILE_BYTES,
        });
    }
    if !is_gzip && plain_len > total {
        return Err(DatasetError::ExtraBytes {
            path: path.to_path_buf(),
            what,
            expected: total,
            actual: plain_len,
            extra: plain_len - total,
        });
    }
    let body = total - header_len as u64;
    // A plain file is at most `total` bytes long here; a gzip stream is cut at one byte
    // past the declared length, which is all it takes to know it is too long.
    // Reserve what a plain file holds, or for gzip what the declared length, a modest
    // start and the compressed size allow (the buffer grows with the data actually
    // there, so a header that lies costs no memory up front).
    let reserve = if is_gzip {
        body.min(GZIP_RESERVE)
            .min(plain_len.saturating_mul(GZIP_MAX_RATIO))
    } else {
        plain_len.saturating_sub(header_len as u64)
    };
    bytes
        .try_reserve_exact(reserve as usize)
        .map_err(|e| DatasetError::io(path, std::io::Error::other(e)))?;
    reader
        .take(body + 1)
        .read_to_end(&mut bytes)
        .map_err(map_err)?;
    if bytes.len() as u64 > total {
        return Err(DatasetError::Oversized {
            path: path.to_path_buf(),
            what,
            expected: total,
        });
    }
    Ok(bytes)
}

fn gzip_error(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Gzip {
        path: path.to_path_buf(),
        source,
    }
}
