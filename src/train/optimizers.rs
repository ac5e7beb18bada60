//! Builds the optimiser of a schedule segment from the run configuration.

use super::config::RunConfig;
use super::kinds::{
    BasesKind, CompartmentKind, DistributionKind, FpdVariant, GeneratorKind, OptimizerKind,
};
use anyhow::Result;
use rbd_engine::fastfood::Fastfood;
use rbd_engine::random_bases::BasisFamily;
use rbd_engine::random_bases::Compartment;
use rbd_engine::{Device, Tensor};
use rbd_kernels::random_bases::{Distribution, Generator, Stream};
use rbd_models::ParamLayout;
use rbd_optim::{
    Compartments, DataParallelSgd, DistributedFpd, DistributedRbd, FixedProjection, FpdGradientAt,
    MaterializedRbd, Nes, Optimizer, RandomBases, Sgd,
};

/// The direction distribution of a configuration.
pub fn distribution(kind: DistributionKind, p: f64) -> Distribution {
    match kind {
        DistributionKind::Gaussian => Distribution::Gaussian,
        DistributionKind::Uniform => Distribution::Uniform,
        DistributionKind::Bernoulli => Distribution::Bernoulli { p: p as f32 },
        DistributionKind::BernoulliReleased => Distribution::BernoulliReleased { p: p as f32 },
        DistributionKind::Rademacher => Distribution::Rademacher,
    }
}

/// The direction stream of a run.
pub fn stream(cfg: &RunConfig) -> Stream {
    Stream {
        generator: match cfg.generator {
            GeneratorKind::Philox => Generator::Philox,
            GeneratorKind::Threefry => Generator::Threefry,
        },
        distribution: distribution(cfg.distribution, cfg.bernoulli_p),
        seed: cfg.seed,
    }
}

fn compartments(kind: CompartmentKind) -> Compartments {
    match kind {
        CompartmentKind::Even(k) => Compartments::Even(k),
        CompartmentKind::PerLayer => Compartments::PerLayer,
        CompartmentKind::Capped(cap) => Compartments::Capped(cap),
    }
}

/// The ranges compartments are built from: tensors for capped compartments, else layers.
fn ranges(kind: CompartmentKind, layout: &ParamLayout) -> Vec<(usize, usize)> {
    match kind {
        CompartmentKind::Capped(_) => layout
            .tensor_ranges()
            .into_iter()
            .map(|(_, offset, len)| (offset, len))
            .collect(),
        _ => layout.layer_ranges(),
    }
}

/// The basis family of a run for these compartments: Fastfood's block fits the largest
/// number of directions a compartment draws (one rank's, in a distributed run).
pub fn family(cfg: &RunConfig, comps: &[Compartment]) -> BasisFamily {
    match cfg.bases {
        BasesKind::Iid => BasisFamily::Iid,
        BasesKind::Fastfood => BasisFamily::Fastfood(Fastfood::for_compartments(comps)),
    }
}

/// The optimiser of segment `index`, starting from `theta`.
pub fn build(
    cfg: &RunConfig,
    device: &Device,
    layout: &ParamLayout,
    index: usize,
    theta: &Tensor,
) -> Result<Box<dyn Optimizer>> {
    let seg = &cfg.schedule[index];
    let num_params = layout.total;
    let comps = || {
        compartments(cfg.compartments).build(
            num_params,
            &ranges(cfg.compartments, layout),
            cfg.dim,
            cfg.split_dim,
        )
    };
    Ok(match seg.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd { lr: seg.lr }),
        OptimizerKind::Rbd => {
            let comps = comps()?;
            let family = family(cfg, &comps);
            Box::new(
                RandomBases::new(seg.lr, stream(cfg), comps, num_params, cfg.correlation)
                    .with_family(family),
            )
        }
        OptimizerKind::Fpd => {
            let comps = comps()?;
            let family = family(cfg, &comps);
            Box::new(
                FixedProjection::with_variant(
                    seg.lr,
                    stream(cfg),
                    comps,
                    theta,
                    match cfg.fpd_variant {
                        FpdVariant::Paper => FpdGradientAt::Current,
                        FpdVariant::Released => FpdGradientAt::Previous,
                    },
                )?
                .with_family(family),
            )
        }
        OptimizerKind::Nes => {
            // NES perturbations are N(0, I) (what the paper runs), or packed signs
            // (E[εεᵀ] = I as well) when asked for; the other distributions leave them
            // Gaussian, as before.
            let mut s = stream(cfg);
            if s.distribution != Distribution::Rademacher {
                s.distribution = Distribution::Gaussian;
            }
            Box::new(Nes {
                lr: seg.lr,
                sigma: cfg.nes_sigma,
                population: cfg.dim,
                stream: s,
                family: family(cfg, &Compartment::whole(num_params, cfg.dim)),
            })
        }
        OptimizerKind::RbdMaterialized => {
            rbd_optim::materialized::check_fits(device, cfg.dim, num_params)?;
            Box::new(MaterializedRbd {
                lr: seg.lr,
                stream: stream(cfg),
                dims: cfg.dim,
                family: family(cfg, &Compartment::whole(num_params, cfg.dim)),
            })
        }
    })
}

/// The optimiser of segment `index` for this process of `team`: [`build`] for a
/// single-process run, the distributed variant (`rbd_optim::distributed`) otherwise.
pub fn build_for(
    cfg: &RunConfig,
    device: &Device,
    layout: &ParamLayout,
    index: usize,
    theta: &Tensor,
    team: &super::Team,
) -> Result<Box<dyn Optimizer>> {
    let Some(dist) = &cfg.distributed else {
        return build(cfg, device, layout, index, theta);
    };
    let seg = &cfg.schedule[index];
    let comps = compartments(cfg.compartments).build(
        layout.total,
        &ranges(cfg.compartments, layout),
        cfg.dim,
        cfg.split_dim,
    );
    let ex = team.optimizer_exchange();
    let sharing = dist.rbd_base.into();
    Ok(match seg.optimizer {
        OptimizerKind::Sgd => Box::new(DataParallelSgd {
            lr: seg.lr,
            exchange: ex,
        }),
        OptimizerKind::Rbd => {
            let comps = comps?;
            let family = family(cfg, &comps);
            Box::new(
                DistributedRbd::new(seg.lr, stream(cfg), comps, layout.total, sharing, ex)
                    .with_family(family),
            )
        }
        OptimizerKind::Fpd => {
            let comps = comps?;
            let family = family(cfg, &comps);
            Box::new(
                DistributedFpd::new(seg.lr, stream(cfg), comps, theta, sharing, ex)?
                    .with_family(family),
            )
        }
        other => {
            anyhow::bail!("distributed: {other} cannot train distributed (sgd, rbd and fpd can)")
        }
    })
}
