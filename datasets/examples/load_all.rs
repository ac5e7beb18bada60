//! Loads every split of every data set (fetching MNIST and Fashion-MNIST on first use)
//! and prints counts and timings.
//!
//! ```text
//! cargo run --release -p rbd-datasets --example load_all [DATA_DIR] [CIFAR_DIR]
//! ```
//! `DATA_DIR` defaults to `default_data_dir()`; `CIFAR_DIR` (a directory holding or
//! containing `cifar-10-batches-bin/`) defaults to `DATA_DIR/cifar10`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rbd_datasets::*;

fn main() -> Result<(), DatasetError> {
    let mut args = std::env::args().skip(1);
    let data_dir = match args.next().filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => default_data_dir()?,
    };
    let cifar_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| cifar10_dir(&data_dir));
    println!("data directory: {}", data_dir.display());
    for kind in DatasetKind::ALL {
        for split in [Split::Train, Split::Test] {
            let t = Instant::now();
            let loaded = match kind {
                DatasetKind::Cifar10 => load_cifar10_dir(&cifar_dir, split),
                _ => load(kind, split, &data_dir, &mut stderr_log),
            };
            let ds = match loaded {
                Ok(ds) => ds,
                Err(e) => {
                    println!("{kind} {split:?}: {e}");
                    continue;
                }
            };
            let secs = t.elapsed().as_secs_f64();
            let mut hist = [0usize; 10];
            ds.labels.iter().for_each(|&l| hist[l as usize] += 1);
            println!(
                "{kind} {split:?}: {} images of {}×{}×{} in {secs:.3} s; labels per class {hist:?}",
                ds.n, ds.c, ds.h, ds.w
            );
            if split == Split::Train {
                let ds = Arc::new(ds);
                let t = Instant::now();
                let split = validation_split(ds.n, 0)?;
                let loader =
                    TrainLoader::new(ds.clone(), split.train, TrainConfig::for_kind(kind, 0))?;
                let n = loader.prefetch(0, 0)?.count();
                println!(
                    "  one augmented epoch ({n} batches of 32) prepared in {:.3} s",
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(())
}
