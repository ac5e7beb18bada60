//! The training loader: a reshuffled, augmented sequence of full batches per epoch,
//! reproducible from (seed, epoch, batch index), synchronously or on a background thread.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::augment::Augmentation;
use crate::batch::{assemble, Batch};
use crate::dataset::Dataset;
use crate::error::DatasetError;
use crate::kind::DatasetKind;
use crate::order::AugmentOrder;
use crate::preprocess::Preprocess;
use crate::rng::{augment_rng, shuffle, shuffle_rng};

/// The paper's training batch size.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// How many prepared batches the background thread may run ahead.
pub const DEFAULT_PREFETCH_DEPTH: usize = 3;

/// How training batches are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Images per batch; the remainder of an epoch is dropped.
    pub batch_size: usize,
    /// Seed of the shuffles and augmentations.
    pub seed: u64,
    /// Deterministic preprocessing (scaling, and standardisation for CIFAR-10).
    pub preprocess: Preprocess,
    /// Random augmentation.
    pub augmentation: Augmentation,
    /// Whether standardisation comes before the augmentation (default) or after it, as
    /// in the authors' released code.
    pub augment_order: AugmentOrder,
    /// Bound of the background channel (at least 1).
    pub prefetch_depth: usize,
}

impl TrainConfig {
    /// The paper's pipeline for `kind`: batch 32, its preprocessing and augmentation, in
    /// the order [`AugmentOrder::StandardiseFirst`].
    pub fn for_kind(kind: DatasetKind, seed: u64) -> Self {
        TrainConfig {
            batch_size: DEFAULT_BATCH_SIZE,
            seed,
            preprocess: Preprocess::for_kind(kind),
            augmentation: Augmentation::for_kind(kind),
            augment_order: AugmentOrder::default(),
            prefetch_depth: DEFAULT_PREFETCH_DEPTH,
        }
    }

    /// This configuration with `order` as its [`AugmentOrder`].
    pub fn with_augment_order(self, order: AugmentOrder) -> Self {
        TrainConfig {
            augment_order: order,
            ..self
        }
    }
}

/// Produces the training batches of a subset of a data set.
///
/// Epoch `e` visits the subset in an order drawn from `(seed, e)`; batch `b` of it is
/// augmented with choices drawn from `(seed, e, b)`. Any batch can thus be regenerated
/// alone, and a run resumed at `(e, b)` sees exactly the batches it would have seen.
/// Cloning is cheap (the data are shared).
#[derive(Debug, Clone)]
pub struct TrainLoader {
    dataset: Arc<Dataset>,
    indices: Arc<[usize]>,
    config: TrainConfig,
}

impl TrainLoader {
    /// A loader over the images `indices` of `dataset` (e.g. the `train` part of a
    /// [`validation_split`](crate::validation_split)). Fails if the batch size is 0, an
    /// index is out of range, or there is not even one full batch.
    pub fn new(
        dataset: Arc<Dataset>,
        indices: Vec<usize>,
        config: TrainConfig,
    ) -> Result<Self, DatasetError> {
        if config.batch_size == 0 {
            return Err(DatasetError::Config("batch size must be at least 1".into()));
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= dataset.n) {
            return Err(DatasetError::Config(format!(
                "training index {bad} is out of range for a data set of {} images",
                dataset.n
            )));
        }
        if indices.len() < config.batch_size {
            return Err(DatasetError::Config(format!(
                "{} training images do not make one batch of {}",
                indices.len(),
                config.batch_size
            )));
        }
        Ok(TrainLoader {
            dataset,
            indices: indices.into(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The underlying data set.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The training indices, in the order given.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Full batches per epoch (the remainder is dropped).
    pub fn batches_per_epoch(&self) -> usize {
        self.indices.len() / self.config.batch_size
    }

    /// The order in which `epoch` visits the training images (a permutation of the
    /// indices, depending only on seed and epoch).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order = self.indices.to_vec();
        shuffle(&mut shuffle_rng(self.config.seed, epoch), &mut order);
        order
    }

    /// Batch `index` of `epoch` on its own (computes the epoch's order, O(N)), or `None`
    /// past the last full batch.
    pub fn batch(&self, epoch: u64, index: usize) -> Option<Batch> {
        (index < self.batches_per_epoch())
            .then(|| self.make_batch(&self.epoch_order(epoch), epoch, index))
    }

    /// The batches of `epoch` from batch `start` on, prepared on the calling thread.
    pub fn epoch(&self, epoch: u64, start: usize) -> EpochBatches<'_> {
        EpochBatches {
            loader: self,
            order: self.epoch_order(epoch),
            epoch,
            next: start,
        }
    }

    /// The batches of `epoch` from batch `start` on, prepared ahead on a background
    /// thread (at most `prefetch_depth` waiting). Yields exactly what
    /// [`epoch`](Self::epoch) yields.
    pub fn prefetch(&self, epoch: u64, start: usize) -> Result<Prefetch, DatasetError> {
        self.prefetch_epochs(epoch, start, epoch.saturating_add(1))
    }

    /// The batches of epochs `first..end`, starting at batch `start` of `first`,
    /// prepared ahead on a background thread, continuing across epoch boundaries.
    pub fn prefetch_epochs(
        &self,
        first: u64,
        start: usize,
        end: u64,
    ) -> Result<Prefetch, DatasetError> {
        let (tx, rx) = sync_channel(self.config.prefetch_depth.max(1));
        let loader = self.clone();
        let handle = std::thread::Builder::new()
            .name("rbd-batch-prefetch".into())
            .spawn(move || {
                for epoch in first..end {
                    let order = loader.epoch_order(epoch);
                    let from = if epoch == first { start } else { 0 };
                    for index in from..loader.batches_per_epoch() {
                        if tx.send(loader.make_batch(&order, epoch, index)).is_err() {
                            return; // The consumer hung up.
                        }
                    }
                }
            })
            .map_err(|e| DatasetError::io("<prefetch thread>", e))?;
        Ok(Prefetch {
            rx: Some(rx),
            handle: Some(handle),
        })
    }

    fn make_batch(&self, order: &[usize], epoch: u64, index: usize) -> Batch {
        let b = self.config.batch_size;
        let ids = &order[index * b..(index + 1) * b];
        let mut rng = augment_rng(self.config.seed, epoch, index as u64);
        assemble(
            &self.dataset,
            ids,
            self.config.preprocess,
            Some((&self.config.augmentation, &mut rng)),
            self.config.augment_order,
            epoch,
            index,
        )
    }
}

/// Synchronous iterator over the batches of one epoch (see [`TrainLoader::epoch`]).
#[derive(Debug)]
pub struct EpochBatches<'a> {
    loader: &'a TrainLoader,
    order: Vec<usize>,
    epoch: u64,
    next: usize,
}

impl Iterator for EpochBatches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.loader.batches_per_epoch() {
            return None;
        }
        let batch = self.loader.make_batch(&self.order, self.epoch, self.next);
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.loader.batches_per_epoch().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochBatches<'_> {}

/// Batches prepared on a background thread (see [`TrainLoader::prefetch`]).
/// Dropping it early stops the thread.
#[derive(Debug)]
pub struct Prefetch {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for Prefetch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = self.rx.as_ref()?.recv().ok();
        if batch.is_none() {
            // The producer finished (or died): surface a panic instead of ending quietly.
            self.rx = None;
            if let Some(handle) = self.handle.take() {
                if let Err(panic) = handle.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
        batch
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.rx = None; // Unblocks a producer waiting on a full channel.
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
