//! `rbd experiment orthogonality`: Figure B.8 of the supplementary material (the
//! computation lives in `rbd::reproduce::orthogonality`; `rbd reproduce b8` runs it with
//! the paper's settings).

use crate::cli::OrthogonalityArgs;
use anyhow::Result;
use rbd::reproduce::orthogonality;

/// Runs the experiment.
pub fn orthogonality(args: &OrthogonalityArgs) -> Result<()> {
    let distribution = args.distribution.with_p(0.5);
    let stream = orthogonality::stream(distribution, args.seed);
    let rows = orthogonality::compute(&stream, args.pairs, args.max_exponent)
        .map_err(|e| anyhow::anyhow!("--max-exponent/--pairs: {e}"))?;
    print!("{}", orthogonality::table(&rows));
    orthogonality::write(&args.out, &rows, args.pairs)?;
    println!(
        "wrote {}/orthogonality.csv and orthogonality.svg",
        args.out.display()
    );
    Ok(())
}
