//! `rbd results`: migrate a results tree, export a run's rows.

use crate::cli::{ExportArgs, ExportRows, MigrateArgs};
use anyhow::{bail, Result};
use rbd::train::{metrics, record, trainer::CONFIG};

/// `rbd results migrate`.
pub fn migrate(args: &MigrateArgs) -> Result<()> {
    let m = rbd::reproduce::migrate::migrate(&args.results)?;
    for (from, to) in &m.renamed {
        println!("renamed {} -> {}", from.display(), to.display());
    }
    for dir in &m.sealed {
        println!("sealed {}", dir.display());
    }
    for dir in &m.packed {
        println!("packed {}", dir.display());
    }
    for dir in &m.open {
        println!("left open (in progress) {}", dir.display());
    }
    println!(
        "{}: {} renamed, {} sealed now, {} packed now ({} bytes), {} packed before, {} in progress",
        args.results.display(),
        m.renamed.len(),
        m.sealed.len(),
        m.packed.len(),
        m.bytes,
        m.already,
        m.open.len()
    );
    Ok(())
}

/// `rbd results export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    if !record::has(&args.run, CONFIG) {
        bail!(
            "{}: not a run directory (no {CONFIG}, no {} and not in its folder's {})",
            args.run.display(),
            record::SEALED,
            rbd::train::pack::PACK
        );
    }
    let text = match args.csv {
        ExportRows::Metrics => metrics::metrics_csv(&metrics::read_epochs(&args.run)?),
        ExportRows::Steps => metrics::steps_csv(&metrics::read_steps(&args.run)?),
    };
    print!("{text}");
    Ok(())
}
