//! Builds the optimiser of a schedule segment from the run configuration.

use super::config::RunConfig;
use anyhow::{bail, Result};
use rbd_engine::{Device, Tensor};
use rbd_kernels::random_bases::{Distribution, Generator, Stream};
use rbd_models::ParamLayout;
use rbd_optim::{Compartments, FixedProjection, MaterializedRbd, Nes, Optimizer, RandomBases, Sgd};

/// What optimisers may need to be built.
pub struct Context<'a> {
    /// The run.
    pub cfg: &'a RunConfig,
    /// Where θ lives.
    pub device: &'a Device,
    /// The parameter layout.
    pub layout: &'a ParamLayout,
}

/// The direction distribution named by `--distribution` (`p` for Bernoulli).
pub fn distribution(name: &str, p: f64) -> Result<Distribution> {
    Ok(match name {
        "gaussian" => Distribution::Gaussian,
        "uniform" => Distribution::Uniform,
        "bernoulli" => Distribution::Bernoulli { p: p as f32 },
        other => bail!("--distribution: '{other}' (expected gaussian, uniform or bernoulli)"),
    })
}

/// The direction stream of a run.
pub fn stream(cfg: &RunConfig) -> Result<Stream> {
    let generator = match cfg.generator.as_str() {
        "philox" => Generator::Philox,
        "threefry" => Generator::Threefry,
        other => bail!("--generator: '{other}' (expected philox or threefry)"),
    };
    let distribution = distribution(&cfg.distribution, cfg.bernoulli_p)?;
    Ok(Stream {
        generator,
        distribution,
        seed: cfg.seed,
    })
}

/// The optimiser of segment `index`, starting from `theta`.
pub fn build(ctx: &Context<'_>, index: usize, theta: &Tensor) -> Result<Box<dyn Optimizer>> {
    let cfg = ctx.cfg;
    let seg = &cfg.schedule[index];
    let dim = ctx.layout.total;
    let comps = || -> Result<_> {
        let c: Compartments = cfg.compartments.parse()?;
        Ok(c.build(dim, &ctx.layout.layer_ranges(), cfg.dim, cfg.split_dim)?)
    };
    Ok(match seg.optimizer.as_str() {
        "sgd" => Box::new(Sgd { lr: seg.lr }),
        "rbd" => Box::new(RandomBases::new(
            seg.lr,
            stream(cfg)?,
            comps()?,
            dim,
            cfg.correlation,
        )),
        "fpd" => Box::new(FixedProjection::new(seg.lr, stream(cfg)?, comps()?, theta)?),
        "nes" => {
            // NES perturbations are N(0, I), whatever --distribution says.
            let mut s = stream(cfg)?;
            s.distribution = Distribution::Gaussian;
            Box::new(Nes {
                lr: seg.lr,
                sigma: cfg.nes_sigma,
                population: cfg.dim,
                stream: s,
            })
        }
        "rbd-materialized" => {
            if cfg.compartments != "1" {
                bail!("rbd-materialized supports one compartment only (--compartments 1)");
            }
            rbd_optim::materialized::check_fits(ctx.device, cfg.dim, dim)?;
            Box::new(MaterializedRbd {
                lr: seg.lr,
                stream: stream(cfg)?,
                dims: cfg.dim,
            })
        }
        other => bail!("unknown optimizer {other}"),
    })
}
