//! Splits, training and evaluation batches: shapes, determinism, resume, prefetch.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use rbd_datasets::rng::augment_rng;
use rbd_datasets::*;

fn mnist_like(n: usize) -> Arc<Dataset> {
    Arc::new(synthetic(n, 1, 28, 28, 11))
}

fn cifar_like(n: usize) -> Arc<Dataset> {
    Arc::new(synthetic(n, 3, 32, 32, 12))
}

fn loader(ds: &Arc<Dataset>, kind: DatasetKind, seed: u64, batch: usize) -> TrainLoader {
    let config = TrainConfig {
        batch_size: batch,
        ..TrainConfig::for_kind(kind, seed)
    };
    TrainLoader::new(ds.clone(), all_indices(ds.n), config).unwrap()
}

#[test]
fn validation_block_is_disjoint_and_has_10000_items() {
    for n in [60_000, 50_000] {
        let s = validation_split(n, 3).unwrap();
        assert_eq!(s.held_out.len(), VALIDATION_SIZE);
        assert_eq!(s.train.len(), n - VALIDATION_SIZE);
        let held: HashSet<usize> = s.held_out.iter().copied().collect();
        assert_eq!(held.len(), VALIDATION_SIZE);
        assert!(s.train.iter().all(|i| !held.contains(i)));
        let mut all: Vec<usize> = s.train.iter().chain(&s.held_out).copied().collect();
        all.sort_unstable();
        assert_eq!(all, all_indices(n));
        // Deterministic in the seed, different across seeds, not a contiguous block.
        assert_eq!(validation_split(n, 3).unwrap(), s);
        assert_ne!(validation_split(n, 4).unwrap().held_out, s.held_out);
        assert!(s.held_out[VALIDATION_SIZE - 1] - s.held_out[0] > VALIDATION_SIZE);
    }
    assert!(matches!(
        validation_split(9_999, 0),
        Err(DatasetError::Config(_))
    ));
}

#[test]
fn tuning_split_is_75_25_of_the_given_indices() {
    let base = validation_split(60_000, 1).unwrap().train;
    let t = tuning_split(&base, 1);
    assert_eq!(t.train.len(), 37_500);
    assert_eq!(t.held_out.len(), 12_500);
    let pool: HashSet<usize> = base.iter().copied().collect();
    let held: HashSet<usize> = t.held_out.iter().copied().collect();
    assert!(t
        .train
        .iter()
        .all(|i| pool.contains(i) && !held.contains(i)));
    assert!(t.held_out.iter().all(|i| pool.contains(i)));
    assert_eq!(tuning_split(&base, 1), t);
    let h = holdout_split(&base, 100, 1).unwrap();
    assert_eq!((h.train.len(), h.held_out.len()), (49_900, 100));
}

#[test]
fn batches_have_the_right_shapes_and_drop_the_remainder() {
    let ds = mnist_like(100);
    let l = loader(&ds, DatasetKind::Mnist, 0, 32);
    assert_eq!(l.batches_per_epoch(), 3);
    let batches: Vec<Batch> = l.epoch(0, 0).collect();
    assert_eq!(batches.len(), 3);
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b.shape, [32, 1, 28, 28]);
        assert_eq!(b.images.len(), 32 * 28 * 28);
        assert_eq!(b.labels.len(), 32);
        assert_eq!((b.epoch, b.index), (0, i));
    }
    // 96 distinct images per epoch, each label matching its image's label.
    let order = l.epoch_order(0);
    let seen: HashSet<usize> = order[..96].iter().copied().collect();
    assert_eq!(seen.len(), 96);
    for (b, ids) in batches.iter().zip(order.chunks(32)) {
        let expected: Vec<u32> = ids.iter().map(|&i| ds.labels[i] as u32).collect();
        assert_eq!(b.labels, expected);
    }
    let c = cifar_like(70);
    let b = loader(&c, DatasetKind::Cifar10, 0, 32).batch(1, 1).unwrap();
    assert_eq!(b.shape, [32, 3, 32, 32]);
    assert_eq!(b.images.len(), 32 * 3072);
    assert!(loader(&c, DatasetKind::Cifar10, 0, 32)
        .batch(1, 2)
        .is_none());
}

#[test]
fn same_seed_epoch_batch_gives_identical_batches() {
    let ds = cifar_like(200);
    let (a, b) = (
        loader(&ds, DatasetKind::Cifar10, 5, 32),
        loader(&ds, DatasetKind::Cifar10, 5, 32),
    );
    for (e, i) in [(0, 0), (3, 2), (17, 5)] {
        assert_eq!(a.batch(e, i), b.batch(e, i));
    }
    let other_seed = loader(&ds, DatasetKind::Cifar10, 6, 32);
    assert_ne!(
        a.batch(0, 0).unwrap().images,
        other_seed.batch(0, 0).unwrap().images
    );
}

#[test]
fn different_epochs_give_different_orders() {
    let ds = mnist_like(500);
    let l = loader(&ds, DatasetKind::Mnist, 9, 32);
    let orders: Vec<Vec<usize>> = (0..5).map(|e| l.epoch_order(e)).collect();
    for i in 0..5 {
        let mut sorted = orders[i].clone();
        sorted.sort_unstable();
        assert_eq!(sorted, all_indices(500));
        for j in i + 1..5 {
            assert_ne!(orders[i], orders[j]);
        }
    }
    assert_eq!(l.epoch_order(3), orders[3]);
}

#[test]
fn resume_at_a_batch_reproduces_the_stream() {
    let ds = mnist_like(300);
    let l = loader(&ds, DatasetKind::Mnist, 2, 32);
    let full: Vec<Batch> = l.epoch(4, 0).collect();
    let resumed: Vec<Batch> = l.epoch(4, 5).collect();
    assert_eq!(resumed, full[5..]);
    assert_eq!(l.epoch(4, 5).len(), full.len() - 5);
    assert_eq!(l.epoch(4, 99).count(), 0);
    // A fresh loader (new process) agrees too.
    let again = loader(&ds, DatasetKind::Mnist, 2, 32);
    assert_eq!(again.epoch(4, 7).next(), Some(full[7].clone()));
}

#[test]
fn background_loader_yields_exactly_the_synchronous_batches() {
    for (ds, kind) in [
        (mnist_like(400), DatasetKind::Mnist),
        (cifar_like(150), DatasetKind::Cifar10),
    ] {
        let l = loader(&ds, kind, 13, 32);
        for start in [0, 3] {
            let sync: Vec<Batch> = l.epoch(2, start).collect();
            let bg: Vec<Batch> = l.prefetch(2, start).unwrap().collect();
            assert_eq!(bg, sync);
        }
        // Across epochs.
        let sync: Vec<Batch> = l
            .epoch(1, 2)
            .chain(l.epoch(2, 0))
            .chain(l.epoch(3, 0))
            .collect();
        let bg: Vec<Batch> = l.prefetch_epochs(1, 2, 4).unwrap().collect();
        assert_eq!(bg, sync);
        // Dropping early stops the thread without hanging.
        let mut p = l.prefetch(0, 0).unwrap();
        assert!(p.next().is_some());
        drop(p);
    }
}

#[test]
fn training_batch_is_preprocess_then_augment_with_per_batch_rng() {
    for (ds, kind) in [
        (mnist_like(64), DatasetKind::Mnist),
        (cifar_like(64), DatasetKind::Cifar10),
    ] {
        let cfg = TrainConfig::for_kind(kind, 21);
        let l = TrainLoader::new(ds.clone(), all_indices(ds.n), cfg).unwrap();
        let (e, b) = (3, 1);
        let batch = l.batch(e, b).unwrap();
        let ids = &l.epoch_order(e)[32..64];
        let len = ds.image_len();
        let mut rng = augment_rng(21, e, b as u64);
        let mut pre = vec![0.0f32; len];
        let mut out = vec![0.0f32; len];
        for (k, &id) in ids.iter().enumerate() {
            cfg.preprocess.apply(ds.image(id), &mut pre);
            let params = cfg.augmentation.draw(&mut rng);
            augment_image(
                &pre,
                (ds.c, ds.h, ds.w),
                cfg.augmentation.pad,
                &params,
                &mut out,
            );
            assert_eq!(&batch.images[k * len..(k + 1) * len], &out[..]);
        }
    }
}

#[test]
fn eval_batches_keep_the_remainder_and_are_not_augmented() {
    let ds = cifar_like(25);
    let idx: Vec<usize> = (5..25).rev().collect();
    let batches: Vec<Batch> = eval_batches(&ds, &idx, 8, Preprocess::CIFAR10).collect();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        vec![8, 8, 4]
    );
    assert_eq!(batches[2].shape, [4, 3, 32, 32]);
    assert_eq!(eval_batches(&ds, &idx, 8, Preprocess::CIFAR10).len(), 3);
    let mut expected = vec![0.0f32; 3072];
    for (k, &id) in idx.iter().enumerate() {
        let b = &batches[k / 8];
        Preprocess::CIFAR10.apply(ds.image(id), &mut expected);
        assert_eq!(&b.images[(k % 8) * 3072..(k % 8 + 1) * 3072], &expected[..]);
        assert_eq!(b.labels[k % 8], ds.labels[id] as u32);
        assert_eq!(b.index, k / 8);
    }
    assert_eq!(eval_batches(&ds, &[], 8, Preprocess::CIFAR10).count(), 0);
}

#[test]
fn loader_rejects_bad_configurations() {
    let ds = mnist_like(40);
    let cfg = TrainConfig::for_kind(DatasetKind::Mnist, 0);
    let bad = |indices: Vec<usize>, batch_size| {
        TrainLoader::new(ds.clone(), indices, TrainConfig { batch_size, ..cfg }).unwrap_err()
    };
    assert!(bad(all_indices(40), 0).to_string().contains("batch size"));
    assert!(bad(vec![0, 40], 1).to_string().contains("index 40"));
    assert!(bad(all_indices(31), 32).to_string().contains("one batch"));
}

#[test]
fn dataset_kind_names() {
    for (s, k) in [
        ("mnist", DatasetKind::Mnist),
        ("fmnist", DatasetKind::FashionMnist),
        ("fashion-mnist", DatasetKind::FashionMnist),
        ("Fashion-MNIST", DatasetKind::FashionMnist),
        ("cifar10", DatasetKind::Cifar10),
        ("cifar-10", DatasetKind::Cifar10),
    ] {
        assert_eq!(s.parse::<DatasetKind>().unwrap(), k);
    }
    for k in DatasetKind::ALL {
        assert_eq!(k.to_string().parse::<DatasetKind>().unwrap(), k);
    }
    let e = "svhn".parse::<DatasetKind>().unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("svhn") && msg.contains("mnist, fmnist, fashion-mnist, cifar10, cifar-10"),
        "{msg}"
    );
    assert_eq!(DatasetKind::Cifar10.shape(), (3, 32, 32));
    assert_eq!(DatasetKind::Mnist.count(Split::Train), 60_000);
    assert_eq!(DatasetKind::Cifar10.count(Split::Train), 50_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn batch_depends_only_on_seed_epoch_and_index(seed: u64, epoch in 0u64..1_000_000, index in 0usize..6) {
        let ds = mnist_like(200);
        let l = loader(&ds, DatasetKind::Mnist, seed, 32);
        let direct = l.batch(epoch, index).unwrap();
        // Generating other batches first changes nothing.
        let _ = l.batch(epoch + 1, 0);
        let via_iter = l.epoch(epoch, index).next().unwrap();
        prop_assert_eq!(&direct, &via_iter);
        prop_assert_eq!(direct.shape, [32, 1, 28, 28]);
        prop_assert!(direct.images.iter().all(|v| v.is_finite() && (-0.5..=1.5).contains(v)));
    }
}

/// The batch's images one by one, with the augmentation choices drawn for each.
fn images_with_params(l: &TrainLoader, epoch: u64, index: usize) -> (Batch, Vec<AugParams>) {
    let cfg = l.config();
    let batch = l.batch(epoch, index).unwrap();
    let mut rng = augment_rng(cfg.seed, epoch, index as u64);
    let params = (0..batch.len())
        .map(|_| cfg.augmentation.draw(&mut rng))
        .collect();
    (batch, params)
}

/// Whether output pixel (y, x) of a `side`² crop with `params` lies in the padding.
fn in_padding(params: &AugParams, pad: usize, side: usize, y: usize, x: usize) -> bool {
    let x = if params.flip { side - 1 - x } else { x };
    let (sy, sx) = (y + params.dy, x + params.dx);
    sy < pad || sx < pad || sy >= side + pad || sx >= side + pad
}

#[test]
fn augment_first_pads_in_pixel_space_then_standardises_each_crop() {
    // Bright images (pixels 128..=255), so that black padding stands out.
    let n = 64;
    let px: Vec<u8> = pixels(n * 3072, 31).iter().map(|p| p | 0x80).collect();
    let ds = Arc::new(Dataset::new(px, labels(n), 3, 32, 32).unwrap());
    let released = TrainConfig::for_kind(DatasetKind::Cifar10, 5)
        .with_augment_order(AugmentOrder::AugmentFirst);
    let paper = TrainConfig::for_kind(DatasetKind::Cifar10, 5);
    assert_eq!(paper.augment_order, AugmentOrder::StandardiseFirst);
    let l_rel = TrainLoader::new(ds.clone(), all_indices(n), released).unwrap();
    let l_pap = TrainLoader::new(ds.clone(), all_indices(n), paper).unwrap();
    let (e, b) = (2, 1);
    let (rel, params) = images_with_params(&l_rel, e, b);
    let (pap, params_pap) = images_with_params(&l_pap, e, b);
    assert_eq!(
        params, params_pap,
        "the order must not change the random choices"
    );
    let ids = &l_rel.epoch_order(e)[32..64];
    let pad = released.augmentation.pad;
    let mut padded_images = 0;
    for (k, &id) in ids.iter().enumerate() {
        let img = &rel.images[k * 3072..(k + 1) * 3072];
        // Bit for bit: scale, crop and flip with zero padding, standardise the crop.
        let mut unit = vec![0.0f32; 3072];
        scale_to_unit(ds.image(id), &mut unit);
        let mut expected = vec![0.0f32; 3072];
        augment_image(&unit, (3, 32, 32), pad, &params[k], &mut expected);
        standardise(&mut expected);
        assert_eq!(img, &expected[..]);
        // Each crop has mean 0 and standard deviation 1.
        let mean = img.iter().map(|&v| f64::from(v)).sum::<f64>() / 3072.0;
        let var = img
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / 3072.0;
        assert!(mean.abs() < 1e-5, "image {k}: mean {mean}");
        assert!(
            (var.sqrt() - 1.0).abs() < 1e-4,
            "image {k}: std {}",
            var.sqrt()
        );
        // Padding: black in pixel space, so after standardisation it is the image's
        // lowest value and not 0; in the paper's order it is exactly 0.
        let paper_img = &pap.images[k * 3072..(k + 1) * 3072];
        let min = img.iter().copied().fold(f32::INFINITY, f32::min);
        let mut any = false;
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let i = c * 1024 + y * 32 + x;
                    if in_padding(&params[k], pad, 32, y, x) {
                        any = true;
                        assert_eq!(img[i], min, "image {k} pixel {i}");
                        assert!(img[i] < -1.0, "image {k} pixel {i}: {}", img[i]);
                        assert_eq!(paper_img[i], 0.0, "image {k} pixel {i}");
                    } else {
                        assert!(img[i] > min, "image {k} pixel {i}");
                    }
                }
            }
        }
        padded_images += usize::from(any);
    }
    assert!(padded_images > 16, "only {padded_images} crops had padding");
}

#[test]
fn both_orders_agree_without_standardisation_and_evaluate_alike() {
    // MNIST is only scaled: the two orders give the same batches, bit for bit.
    let ds = mnist_like(64);
    let cfg = TrainConfig::for_kind(DatasetKind::Mnist, 9);
    let a = TrainLoader::new(ds.clone(), all_indices(64), cfg).unwrap();
    let b = TrainLoader::new(
        ds.clone(),
        all_indices(64),
        cfg.with_augment_order(AugmentOrder::AugmentFirst),
    )
    .unwrap();
    assert_eq!(a.batch(1, 1), b.batch(1, 1));
    // CIFAR-10 training batches differ, but the default is unchanged.
    let ds = cifar_like(64);
    let cfg = TrainConfig::for_kind(DatasetKind::Cifar10, 9);
    let a = TrainLoader::new(ds.clone(), all_indices(64), cfg).unwrap();
    let same = cfg.with_augment_order(AugmentOrder::StandardiseFirst);
    let released = cfg.with_augment_order(AugmentOrder::AugmentFirst);
    let b = TrainLoader::new(ds.clone(), all_indices(64), same).unwrap();
    let c = TrainLoader::new(ds.clone(), all_indices(64), released).unwrap();
    assert_eq!(a.batch(0, 1), b.batch(0, 1));
    assert_ne!(a.batch(0, 1), c.batch(0, 1));
}

#[test]
fn augment_order_names() {
    for order in AugmentOrder::ALL {
        assert_eq!(order.name().parse::<AugmentOrder>().unwrap(), order);
        assert_eq!(order.to_string(), order.name());
    }
    assert_eq!(AugmentOrder::default(), AugmentOrder::StandardiseFirst);
    assert_eq!(
        "Released".parse::<AugmentOrder>().unwrap(),
        AugmentOrder::AugmentFirst
    );
    assert_eq!(
        "paper".parse::<AugmentOrder>().unwrap(),
        AugmentOrder::StandardiseFirst
    );
    let e = "sideways".parse::<AugmentOrder>().unwrap_err().to_string();
    assert!(e.contains("sideways") && e.contains("augment-first"), "{e}");
}

#[test]
fn standardise_first_batches_are_unchanged_bit_for_bit() {
    // SHA-256 of the f32 bytes of batches 0 and 1 of epoch 3, computed with the code as
    // it was before `AugmentOrder` existed (commit 5620263): the default order must keep
    // reproducing it exactly.
    const BEFORE: &str = "669544fe0195641021628febb08221430eb7576c01ffa609623ea93cc977ab18";
    let ds = cifar_like(64);
    for cfg in [
        TrainConfig::for_kind(DatasetKind::Cifar10, 9),
        TrainConfig::for_kind(DatasetKind::Cifar10, 9)
            .with_augment_order(AugmentOrder::StandardiseFirst),
    ] {
        let l = TrainLoader::new(ds.clone(), all_indices(64), cfg).unwrap();
        let mut bytes = Vec::new();
        for b in 0..2 {
            for v in l.batch(3, b).unwrap().images {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        assert_eq!(sha256_hex(&bytes), BEFORE);
    }
}
