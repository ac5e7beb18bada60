//! Where a run's optimiser steps fall in its epochs: batches per step, the steps an
//! epoch runs from a batch on, the step a position implies, and which checkpoint
//! positions are valid.
//!
//! Two accountings. Whole steps (the default): each epoch runs ⌊batches / bps⌋ steps
//! from its batch 0 and drops the rest. Straddling steps (NES with `nes_epochs =
//! released`, the authors' released code): the batches of all epochs form one stream,
//! every step takes the next bps batches of it, an epoch ends with the step that
//! reached or crossed its last batch, and the next epoch starts at the batch that
//! step's overflow reached. A position is then (epoch, batch) with `batch` counted from
//! the epoch's start, past its end while the crossing step's evaluation is pending.
//! NES's `update` accounting is the straddling one with a run epoch one update long:
//! the run's epochs then span `bps` batches of the stream instead of a data epoch's.

use super::config::RunConfig;
use rbd_optim::OptimizerKind;

/// Batches one step of `optimizer` consumes (over all ranks of a distributed run).
pub fn batches_per_step(cfg: &RunConfig, optimizer: OptimizerKind) -> usize {
    let ranks = cfg.distributed.map_or(1, |d| d.ranks);
    ranks * optimizer.batches_per_step(&cfg.settings)
}

/// Batches of the stream one run epoch spans: a data epoch's `per_epoch`, or one
/// update's with NES's `update` accounting.
pub fn epoch_span(cfg: &RunConfig, per_epoch: usize) -> usize {
    if cfg.nes_update_per_epoch() {
        batches_per_step(cfg, OptimizerKind::Nes)
    } else {
        per_epoch
    }
}

/// The data epoch, and the batch in it, that run position (`epoch`, `batch`) of a
/// straddling run reads next (data epochs of `per_epoch` batches).
pub fn stream_position(
    cfg: &RunConfig,
    per_epoch: usize,
    epoch: u64,
    batch: usize,
) -> (u64, usize) {
    let consumed = epoch * epoch_span(cfg, per_epoch) as u64 + batch as u64;
    (
        consumed / per_epoch as u64,
        (consumed % per_epoch as u64) as usize,
    )
}

/// Steps an epoch of `per_epoch` batches runs from batch `batch` on, at `bps` batches
/// per step: whole steps only, or (straddling) until one reaches or crosses the end.
pub fn steps_from(straddles: bool, per_epoch: usize, batch: usize, bps: usize) -> usize {
    let left = per_epoch.saturating_sub(batch);
    if straddles {
        left.div_ceil(bps)
    } else {
        left / bps
    }
}

/// The batch the epoch after one that ended at `batch` starts at (the crossing step's
/// overflow; 0 with whole steps).
pub fn carried_batch(per_epoch: usize, batch: usize) -> usize {
    batch.saturating_sub(per_epoch)
}

/// Steps that epochs `0..epoch` plus `batch` batches of `epoch` take.
pub fn expected_step(cfg: &RunConfig, per_epoch: usize, epoch: u64, batch: usize) -> u64 {
    if cfg.nes_straddles() {
        // One stream: every step took exactly bps of the batches before this position.
        let bps = batches_per_step(cfg, OptimizerKind::Nes) as u64;
        return (epoch * epoch_span(cfg, per_epoch) as u64 + batch as u64) / bps;
    }
    let mut step = 0;
    for e in 0..=epoch {
        let bps = batches_per_step(cfg, cfg.segment_at(e).1.optimizer);
        step += if e < epoch {
            per_epoch / bps
        } else {
            batch / bps
        } as u64;
    }
    step
}

/// Why (epoch, batch, step) cannot be a position of `cfg`'s run, if it cannot.
pub fn check_position(
    cfg: &RunConfig,
    per_epoch: usize,
    epoch: u64,
    batch: usize,
    step: u64,
) -> Result<(), String> {
    if cfg.nes_straddles() {
        let bps = batches_per_step(cfg, OptimizerKind::Nes);
        let span = epoch_span(cfg, per_epoch);
        // The crossing step started inside the epoch, so it ended before bps more.
        if batch >= span + bps {
            return Err(format!(
                "batch {batch} is past the {span} batches of an epoch and the {bps} of one straddling step"
            ));
        }
        let consumed = epoch * span as u64 + batch as u64;
        if !consumed.is_multiple_of(bps as u64) {
            return Err(format!(
                "epoch {epoch} batch {batch} is {consumed} batches into the run, not a whole number of {bps}-batch steps"
            ));
        }
    } else if batch > per_epoch {
        // batch == per_epoch: every step of the epoch ran, its evaluation had not.
        return Err(format!(
            "batch {batch} is past the {per_epoch} batches of an epoch"
        ));
    }
    let want = expected_step(cfg, per_epoch, epoch, batch);
    if step != want {
        return Err(format!(
            "step {step} does not match epoch {epoch} batch {batch} (expected step {want})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::{resolve_schedule, ScheduleSpec};
    use crate::train::kinds::{DatasetSpec, PresetSource};
    use rbd_engine::random_bases::DistributionKind;
    use rbd_models::ModelKind;
    use rbd_optim::NesEpochs;

    fn nes(dim: usize, variant: NesEpochs) -> RunConfig {
        let ds = DatasetSpec::Known(rbd_datasets::DatasetKind::Mnist);
        let spec: ScheduleSpec = "nes@2^-3".parse().unwrap();
        let segs = resolve_schedule(
            &spec,
            None,
            ModelKind::Fc,
            &ds,
            DistributionKind::Gaussian,
            PresetSource::Paper,
        )
        .unwrap();
        let mut c = RunConfig::new(ModelKind::Fc, ds, segs);
        c.settings.directions.dim = dim;
        c.settings.nes.nes_epochs = variant;
        c
    }

    /// Walks `epochs` epochs as the trainer does: steps per epoch, the batch each
    /// ends at, the batch the next starts at. Returns the steps of each epoch and the
    /// batches consumed, checking every position it passes.
    fn walk(cfg: &RunConfig, per_epoch: usize, epochs: u64) -> (Vec<usize>, u64) {
        let bps = batches_per_step(cfg, OptimizerKind::Nes);
        let span = epoch_span(cfg, per_epoch);
        let (mut batch, mut step, mut consumed) = (0usize, 0u64, 0u64);
        let mut per = Vec::new();
        for epoch in 0..epochs {
            assert_eq!(check_position(cfg, per_epoch, epoch, batch, step), Ok(()));
            let n = steps_from(cfg.nes_straddles(), span, batch, bps);
            for _ in 0..n {
                batch += bps;
                step += 1;
                consumed += bps as u64;
                assert_eq!(
                    check_position(cfg, per_epoch, epoch, batch, step),
                    Ok(()),
                    "epoch {epoch} batch {batch}"
                );
            }
            per.push(n);
            batch = carried_batch(span, batch);
        }
        (per, consumed)
    }

    #[test]
    fn released_steps_straddle_and_add_up_to_the_released_loop() {
        // MNIST at d = 250: 1562 batches an epoch, 6.248 updates.
        let cfg = nes(250, NesEpochs::Released);
        let (per, consumed) = walk(&cfg, 1562, 100);
        // The released loop: while images / train_size < epochs, one update of d
        // batches: ceil(epochs · batches / d) updates.
        let total: usize = per.iter().sum();
        assert_eq!(total, (100 * 1562usize).div_ceil(250));
        assert_eq!(total, 625);
        assert_eq!(&per[..5], &[7, 6, 6, 6, 7]);
        // Every batch of the 100 epochs is used; the last update overflows into the
        // stream's next epoch by less than one update.
        assert!((100 * 1562..100 * 1562 + 250).contains(&consumed));
        // A d that divides the epoch: the same as whole steps, nothing carried.
        let cfg = nes(11, NesEpochs::Released);
        let (per, consumed) = walk(&cfg, 22 * 11, 5);
        assert_eq!(per, vec![22; 5]);
        assert_eq!(consumed, 5 * 22 * 11);
    }

    #[test]
    fn update_epochs_are_one_update_each_from_one_stream() {
        // The released code's NES as run: 100 "epochs" are 100 updates of d batches.
        let cfg = nes(250, NesEpochs::Update);
        let (per, consumed) = walk(&cfg, 1562, 100);
        assert_eq!(per, vec![1; 100]);
        assert_eq!(consumed, 100 * 250);
        // The stream runs on over the data's epochs: update 16 (0-based) reads from
        // batch 4000 of the stream, data epoch 2's batch 876.
        assert_eq!(stream_position(&cfg, 1562, 16, 0), (2, 876));
        // The released accounting reads the same stream, a data epoch per run epoch.
        let released = nes(250, NesEpochs::Released);
        assert_eq!(stream_position(&released, 1562, 2, 876), (2, 876));
        assert_eq!(stream_position(&released, 1562, 0, 1600), (1, 38));
        // Positions: before and after the epoch's update, nothing in between.
        assert_eq!(check_position(&cfg, 1562, 3, 0, 3), Ok(()));
        assert_eq!(check_position(&cfg, 1562, 3, 250, 4), Ok(()));
        assert!(check_position(&cfg, 1562, 3, 100, 3).is_err());
        assert!(check_position(&cfg, 1562, 3, 500, 5).is_err());
        assert!(check_position(&cfg, 1562, 3, 0, 4).is_err());
    }

    #[test]
    fn whole_steps_drop_each_epochs_remainder() {
        let cfg = nes(250, NesEpochs::Whole);
        let (per, consumed) = walk(&cfg, 1562, 4);
        assert_eq!(per, vec![6; 4]);
        assert_eq!(consumed, 4 * 1500);
        assert!(!cfg.nes_straddles());
    }

    #[test]
    fn positions_a_straddling_run_cannot_reach_are_refused() {
        let cfg = nes(4, NesEpochs::Released);
        // 10 batches an epoch: steps end at 4, 8, 12 (epoch 0 ends, 2 carried), ...
        assert_eq!(check_position(&cfg, 10, 0, 12, 3), Ok(()));
        assert_eq!(check_position(&cfg, 10, 1, 2, 3), Ok(()));
        assert!(check_position(&cfg, 10, 1, 2, 4)
            .unwrap_err()
            .contains("expected step 3"));
        assert!(check_position(&cfg, 10, 1, 3, 3)
            .unwrap_err()
            .contains("whole number"));
        assert!(check_position(&cfg, 10, 0, 16, 4)
            .unwrap_err()
            .contains("straddling"));
        // Whole steps never pass an epoch's end.
        let whole = nes(4, NesEpochs::Whole);
        assert!(check_position(&whole, 10, 0, 12, 3).is_err());
        assert_eq!(check_position(&whole, 10, 1, 0, 2), Ok(()));
    }
}
