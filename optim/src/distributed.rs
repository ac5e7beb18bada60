//! The optimisers of a distributed run: each of K ranks computes its gradient on its
//! own minibatch, the ranks exchange as little as the method allows, and every rank
//! applies the same update in the same order, so θ stays bitwise identical everywhere.
//!
//! * [`DataParallelSgd`]: θ ← θ − lr·Σ_w g_w (the fixed-order sum of the K gradients,
//!   D floats exchanged). This is the original's convention, the mean gradient with the
//!   base rate scaled by K: (K·lr)·(Σ_w g_w / K).
//! * [`DistributedRbd`] with [`BaseSharing::PerWorker`] (the original's default): rank
//!   w projects its gradient on its own d directions per compartment, **directions
//!   w·d … w·d + d − 1 of the compartment's stream at this step**; the K·d coordinates
//!   are gathered and every rank applies θ ← θ − lr·Σ_w Φ_w c_w as one expand over
//!   directions 0 … K·d − 1 (summed in direction order, so in rank order). Only K·d
//!   floats are exchanged; with K = 1 this is plain RBD, bit for bit.
//! * [`DistributedRbd`] with [`BaseSharing::Shared`]: all ranks use directions
//!   0 … d − 1; the d coordinates are summed in rank order and divided by K (the mean
//!   gradient's coordinates, so K ranks × batch B behave like one process with batch
//!   K·B at the same rate).
//! * [`DistributedFpd`]: fixed projection descent likewise (per worker: each rank owns
//!   a fixed block of d directions and every rank keeps all K·d coordinates; shared:
//!   one base, mean coordinates).

use crate::exchange::{allgather_f32, allreduce_sum_f32, Exchange};
use crate::{Optimizer, Oracle, StateTensor, StepInfo};
use rbd_engine::random_bases::{
    expand, project, rbd_scale, total_dims, Bases, BasisFamily, Compartment, Stream,
};
use rbd_engine::{EngineError, Result, Tensor};
use std::sync::Arc;

rbd_engine::named_enum!(
    /// How the K ranks of a distributed random-bases run share directions.
    pub BaseSharing, "RBD base sharing" {
        /// Rank w draws directions w·d … w·d + d − 1; K·d coordinates are gathered
        /// (the original's default).
        PerWorker = "per-worker",
        /// Every rank draws directions 0 … d − 1; the d coordinates are averaged.
        Shared = "shared",
    }
);

/// Rank `rank`'s directions of every compartment: the block `rank·dims … + dims`.
pub fn rank_compartments(comps: &[Compartment], rank: usize) -> Vec<Compartment> {
    comps
        .iter()
        .map(|c| c.window(c.first + rank * c.dims, c.dims))
        .collect()
}

/// The directions of all `k` ranks of every compartment, in rank order.
pub fn all_rank_compartments(comps: &[Compartment], k: usize) -> Vec<Compartment> {
    comps
        .iter()
        .map(|c| c.window(c.first, k * c.dims))
        .collect()
}

/// Gathered coordinates, rank-major (rank w's compartment-major block), reordered to
/// the compartment-major order of [`all_rank_compartments`].
pub fn rank_major_to_compartment_major(
    gathered: &[f32],
    comps: &[Compartment],
    k: usize,
) -> Vec<f32> {
    let per_rank = total_dims(comps);
    let mut out = Vec::with_capacity(gathered.len());
    let mut offset = 0;
    for c in comps {
        for w in 0..k {
            let from = w * per_rank + offset;
            out.extend_from_slice(&gathered[from..from + c.dims]);
        }
        offset += c.dims;
    }
    out
}

/// Sums a host vector over the ranks in rank order (a no-op for one rank).
fn sum_over_ranks(ex: &dyn Exchange, t: &Tensor) -> Result<Tensor> {
    if ex.size() == 1 {
        return Ok(t.clone());
    }
    let mut v = t.to_vec_f32()?;
    allreduce_sum_f32(ex, &mut v)?;
    Tensor::from_f32(&t.device(), &v, t.shape())
}

/// Mean over the ranks (sum in rank order, then ÷ K; a no-op for one rank).
fn mean_over_ranks(ex: &dyn Exchange, t: &Tensor) -> Result<Tensor> {
    let k = ex.size();
    if k == 1 {
        return Ok(t.clone());
    }
    let mut v = t.to_vec_f32()?;
    allreduce_sum_f32(ex, &mut v)?;
    for x in &mut v {
        *x /= k as f32;
    }
    Tensor::from_f32(&t.device(), &v, t.shape())
}

/// Every rank's coordinates, gathered and put in the order of
/// [`all_rank_compartments`] (unchanged for one rank).
fn gather_coordinates(ex: &dyn Exchange, c: &Tensor, comps: &[Compartment]) -> Result<Tensor> {
    let k = ex.size();
    if k == 1 {
        return Ok(c.clone());
    }
    let gathered = allgather_f32(ex, &c.to_vec_f32()?)?;
    let ordered = rank_major_to_compartment_major(&gathered, comps, k);
    Tensor::from_f32(&c.device(), &ordered, &[ordered.len()])
}

/// Data-parallel SGD: θ ← θ − lr·Σ_w g_w.
pub struct DataParallelSgd {
    /// Base learning rate (per rank; the update sums K gradients).
    pub lr: f64,
    /// The other ranks.
    pub exchange: Arc<dyn Exchange>,
}

impl Optimizer for DataParallelSgd {
    fn step(&mut self, _step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let g = oracle.gradient(theta)?;
        let sum = sum_over_ranks(self.exchange.as_ref(), &g)?;
        Ok(StepInfo {
            theta: sum.axpy(-self.lr, theta)?,
            correlation: None,
        })
    }
}

/// Distributed random bases descent.
pub struct DistributedRbd {
    /// Learning rate.
    pub lr: f64,
    /// Direction stream (the same seed on every rank).
    pub stream: Stream,
    /// Compartments with d directions each (one rank's share).
    pub comps: Vec<Compartment>,
    /// 1/√D.
    pub scale: f32,
    /// Per-worker or shared directions.
    pub sharing: BaseSharing,
    /// The other ranks.
    pub exchange: Arc<dyn Exchange>,
    /// Which random bases (i.i.d. unless set).
    pub family: BasisFamily,
}

impl DistributedRbd {
    fn bases<'a>(&self, step: u64, comps: &'a [Compartment]) -> Bases<'a> {
        Bases::new(self.stream, step, comps, self.scale).with_family(self.family)
    }

    /// Distributed RBD with scale 1/√D for θ of length `dim`.
    pub fn new(
        lr: f64,
        stream: Stream,
        comps: Vec<Compartment>,
        dim: usize,
        sharing: BaseSharing,
        exchange: Arc<dyn Exchange>,
    ) -> Self {
        DistributedRbd {
            lr,
            stream,
            comps,
            scale: rbd_scale(dim),
            sharing,
            exchange,
            family: BasisFamily::Iid,
        }
    }

    /// The same optimiser drawing its directions from `family` (its block length fits
    /// one rank's d, so per-worker bases are consecutive columns of the same groups).
    pub fn with_family(self, family: BasisFamily) -> Self {
        DistributedRbd { family, ..self }
    }
}

impl Optimizer for DistributedRbd {
    fn step(&mut self, step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let g = oracle.gradient(theta)?;
        let ex = self.exchange.as_ref();
        let (comps, coords) = match self.sharing {
            BaseSharing::Shared => {
                let c = project(&self.bases(step, &self.comps), &g)?;
                (self.comps.clone(), mean_over_ranks(ex, &c)?)
            }
            BaseSharing::PerWorker => {
                let mine = rank_compartments(&self.comps, ex.rank());
                let c = project(&self.bases(step, &mine), &g)?;
                (
                    all_rank_compartments(&self.comps, ex.size()),
                    gather_coordinates(ex, &c, &self.comps)?,
                )
            }
        };
        let next = expand(&self.bases(step, &comps), &coords, -self.lr as f32, theta)?;
        Ok(StepInfo {
            theta: next,
            correlation: None,
        })
    }
}

/// The step index FPD's fixed base is drawn at (as [`crate::FixedProjection`]).
const FIXED_STEP: u64 = 0;

/// Distributed fixed projection descent: θ = θ₀ + P·c, applied as θ ← θ − lr·P·c'.
pub struct DistributedFpd {
    /// Learning rate.
    pub lr: f64,
    stream: Stream,
    /// One rank's compartments (d directions each).
    comps: Vec<Compartment>,
    /// The compartments the coordinates refer to (all ranks' for per-worker bases).
    applied: Vec<Compartment>,
    scale: f32,
    sharing: BaseSharing,
    exchange: Arc<dyn Exchange>,
    base: Tensor,
    coords: Tensor,
    family: BasisFamily,
}

impl DistributedFpd {
    /// The fixed base over `comps`.
    fn bases<'a>(&self, comps: &'a [Compartment]) -> Bases<'a> {
        Bases::new(self.stream, FIXED_STEP, comps, self.scale).with_family(self.family)
    }

    /// Distributed FPD around `theta0` (c = 0).
    pub fn new(
        lr: f64,
        stream: Stream,
        comps: Vec<Compartment>,
        theta0: &Tensor,
        sharing: BaseSharing,
        exchange: Arc<dyn Exchange>,
    ) -> Result<Self> {
        let applied = match sharing {
            BaseSharing::Shared => comps.clone(),
            BaseSharing::PerWorker => all_rank_compartments(&comps, exchange.size()),
        };
        Ok(DistributedFpd {
            lr,
            stream,
            scale: rbd_scale(theta0.numel()),
            coords: Tensor::zeros(&theta0.device(), &[total_dims(&applied)], theta0.dtype())?,
            comps,
            applied,
            sharing,
            exchange,
            base: theta0.detach(),
            family: BasisFamily::Iid,
        })
    }

    /// The same optimiser with its fixed base drawn from `family`.
    pub fn with_family(self, family: BasisFamily) -> Self {
        DistributedFpd { family, ..self }
    }
}

impl Optimizer for DistributedFpd {
    fn step(&mut self, _step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let g = oracle.gradient(theta)?;
        let ex = self.exchange.as_ref();
        let pg = match self.sharing {
            BaseSharing::Shared => {
                let pg = project(&self.bases(&self.comps), &g)?;
                mean_over_ranks(ex, &pg)?
            }
            BaseSharing::PerWorker => {
                let mine = rank_compartments(&self.comps, ex.rank());
                let pg = project(&self.bases(&mine), &g)?;
                gather_coordinates(ex, &pg, &self.comps)?
            }
        };
        // As the single-process FPD: θ ← θ − lr·scale·P·c', c ← c − lr·c'.
        self.coords = pg.axpy(-self.lr, &self.coords)?;
        let next = expand(&self.bases(&self.applied), &pg, -self.lr as f32, theta)?;
        Ok(StepInfo {
            theta: next,
            correlation: None,
        })
    }
    fn state(&self) -> Vec<StateTensor> {
        vec![
            ("fpd.base".into(), self.base.clone()),
            ("fpd.coords".into(), self.coords.clone()),
        ]
    }
    fn load_state(&mut self, state: &[StateTensor]) -> Result<()> {
        for (name, slot) in [
            ("fpd.base", &mut self.base),
            ("fpd.coords", &mut self.coords),
        ] {
            let t = state
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| EngineError::Invalid(format!("checkpoint lacks {name}")))?;
            if t.1.shape() != slot.shape() {
                return Err(EngineError::Invalid(format!(
                    "checkpoint {name} has shape {:?}, expected {:?}",
                    t.1.shape(),
                    slot.shape()
                )));
            }
            *slot = t.1.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::threads::group;
    use crate::exchange::Single;
    use crate::{FixedProjection, RandomBases, Sgd};
    use rbd_engine::random_bases::{Distribution, Generator};

    const D: usize = 37;

    /// Gradient of ½‖θ − t_r‖² on "minibatch" r: θ − t_r, with t_r fixed per batch.
    struct Quadratic {
        batch: usize,
    }

    fn target(batch: usize, i: usize) -> f32 {
        ((batch * 31 + i * 7) % 13) as f32 * 0.25 - 1.5
    }

    impl Oracle for Quadratic {
        fn gradient(&mut self, theta: &Tensor) -> Result<Tensor> {
            let t = theta.to_vec_f32()?;
            let g: Vec<f32> = t
                .iter()
                .enumerate()
                .map(|(i, x)| x - target(self.batch, i))
                .collect();
            Tensor::from_cpu(g, &[D])
        }
        fn loss(&mut self, _theta: &Tensor) -> Result<f64> {
            unimplemented!("not used")
        }
        fn tensors(&self) -> Vec<(String, usize, usize)> {
            vec![("w".into(), 0, D)]
        }
    }

    fn stream() -> Stream {
        Stream {
            generator: Generator::Threefry,
            distribution: Distribution::Gaussian,
            seed: 5,
        }
    }

    fn comps(d: usize) -> Vec<Compartment> {
        Compartment::even(D, 2, d)
    }

    fn theta0() -> Tensor {
        Tensor::from_cpu((0..D).map(|i| (i as f32 * 0.37).sin()).collect(), &[D]).unwrap()
    }

    /// Runs `steps` steps of the optimiser `make` builds on each of `k` thread ranks
    /// (rank r reads batches r, r + k, …); returns every rank's final θ.
    fn run_ranks(
        k: usize,
        steps: u64,
        make: impl Fn(Arc<dyn Exchange>) -> Box<dyn Optimizer> + Send + Sync + 'static,
    ) -> Vec<Vec<f32>> {
        let make = Arc::new(make);
        let handles: Vec<_> = group(k)
            .into_iter()
            .map(|ex| {
                let make = make.clone();
                std::thread::spawn(move || {
                    let rank = ex.rank();
                    let mut opt = make(Arc::new(ex));
                    let mut theta = theta0();
                    for s in 0..steps {
                        let mut o = Quadratic {
                            batch: s as usize * k + rank,
                        };
                        theta = opt.step(s, &theta, &mut o).unwrap().theta;
                    }
                    theta.to_vec_f32().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    fn single(steps: u64, mut opt: Box<dyn Optimizer>) -> Vec<f32> {
        let mut theta = theta0();
        for s in 0..steps {
            let mut o = Quadratic { batch: s as usize };
            theta = opt.step(s, &theta, &mut o).unwrap().theta;
        }
        theta.to_vec_f32().unwrap()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn one_rank_is_the_single_process_optimiser_bit_for_bit() {
        let lr = 0.3;
        let one: Arc<dyn Exchange> = Arc::new(Single);
        for sharing in [BaseSharing::PerWorker, BaseSharing::Shared] {
            let a = single(
                4,
                Box::new(DistributedRbd::new(
                    lr,
                    stream(),
                    comps(3),
                    D,
                    sharing,
                    one.clone(),
                )),
            );
            let b = single(
                4,
                Box::new(RandomBases::new(lr, stream(), comps(3), D, false)),
            );
            assert_eq!(bits(&a), bits(&b), "rbd {sharing:?}");
            let a = single(
                4,
                Box::new(
                    DistributedFpd::new(lr, stream(), comps(3), &theta0(), sharing, one.clone())
                        .unwrap(),
                ),
            );
            let b = single(
                4,
                Box::new(FixedProjection::new(lr, stream(), comps(3), &theta0()).unwrap()),
            );
            assert_eq!(bits(&a), bits(&b), "fpd {sharing:?}");
        }
        let a = single(
            4,
            Box::new(DataParallelSgd {
                lr,
                exchange: one.clone(),
            }),
        );
        let b = single(4, Box::new(Sgd { lr }));
        assert_eq!(bits(&a), bits(&b), "sgd");
    }

    #[test]
    fn per_worker_bases_match_an_f64_formula_and_agree_bitwise() {
        let (k, d, lr) = (3, 4, 0.2);
        let out = run_ranks(k, 1, move |ex| {
            Box::new(DistributedRbd::new(
                lr,
                stream(),
                comps(d),
                D,
                BaseSharing::PerWorker,
                ex,
            ))
        });
        for r in 1..k {
            assert_eq!(bits(&out[0]), bits(&out[r]), "rank {r} differs from rank 0");
        }
        // θ₁ = θ₀ − lr Σ_w Σ_c Σ_j (φ·g_w) φ with φ direction w·d + j of compartment c.
        let t0: Vec<f64> = theta0()
            .to_vec_f32()
            .unwrap()
            .iter()
            .map(|&x| x as f64)
            .collect();
        let mut want = t0.clone();
        let scale = rbd_scale(D);
        for w in 0..k {
            let g: Vec<f64> = (0..D).map(|i| t0[i] - target(w, i) as f64).collect();
            for c in comps(d) {
                let mine = c.window(w * d, d);
                let phi = rbd_engine::random_bases::generate(
                    &rbd_engine::Device::Cpu,
                    &Bases::new(stream(), 0, &[mine], scale),
                )
                .unwrap()
                .to_vec_f32()
                .unwrap();
                for j in 0..d {
                    let row = &phi[j * c.len..(j + 1) * c.len];
                    let coord: f64 = row
                        .iter()
                        .enumerate()
                        .map(|(e, &p)| p as f64 * g[c.offset + e])
                        .sum();
                    for (e, &p) in row.iter().enumerate() {
                        want[c.offset + e] -= lr * coord * p as f64;
                    }
                }
            }
        }
        for i in 0..D {
            assert!(
                (out[0][i] as f64 - want[i]).abs() <= 1e-5 * (1.0 + want[i].abs()),
                "θ[{i}] = {} vs f64 {}",
                out[0][i],
                want[i]
            );
        }
        // A different rank's directions: the update is not K copies of one base.
        let same = run_ranks(1, 1, move |ex| {
            Box::new(DistributedRbd::new(
                lr,
                stream(),
                comps(d),
                D,
                BaseSharing::PerWorker,
                ex,
            ))
        });
        assert_ne!(bits(&out[0]), bits(&same[0]));
    }

    #[test]
    fn shared_base_and_sgd_follow_the_mean_gradient() {
        let (k, d, lr) = (2, 5, 0.1);
        for fpd in [false, true] {
            let out = run_ranks(k, 3, move |ex| -> Box<dyn Optimizer> {
                if fpd {
                    Box::new(
                        DistributedFpd::new(
                            lr,
                            stream(),
                            comps(d),
                            &theta0(),
                            BaseSharing::Shared,
                            ex,
                        )
                        .unwrap(),
                    )
                } else {
                    Box::new(DistributedRbd::new(
                        lr,
                        stream(),
                        comps(d),
                        D,
                        BaseSharing::Shared,
                        ex,
                    ))
                }
            });
            assert_eq!(bits(&out[0]), bits(&out[1]));
            // One process whose gradient is the mean of the two ranks' gradients.
            struct Mean(usize);
            impl Oracle for Mean {
                fn gradient(&mut self, theta: &Tensor) -> Result<Tensor> {
                    let t = theta.to_vec_f32()?;
                    let g = (0..D)
                        .map(|i| t[i] - 0.5 * (target(2 * self.0, i) + target(2 * self.0 + 1, i)))
                        .collect();
                    self.0 += 1;
                    Tensor::from_cpu(g, &[D])
                }
                fn loss(&mut self, _: &Tensor) -> Result<f64> {
                    unimplemented!()
                }
                fn tensors(&self) -> Vec<(String, usize, usize)> {
                    Vec::new()
                }
            }
            let mut opt: Box<dyn Optimizer> = if fpd {
                Box::new(FixedProjection::new(lr, stream(), comps(d), &theta0()).unwrap())
            } else {
                Box::new(RandomBases::new(lr, stream(), comps(d), D, false))
            };
            let mut theta = theta0();
            let mut o = Mean(0);
            for s in 0..3 {
                theta = opt.step(s, &theta, &mut o).unwrap().theta;
            }
            let want = theta.to_vec_f32().unwrap();
            for i in 0..D {
                assert!((out[0][i] - want[i]).abs() < 1e-5, "fpd {fpd} θ[{i}]");
            }
            assert_ne!(bits(&out[0]), bits(&theta0().to_vec_f32().unwrap()));
        }
        // SGD: θ − lr·(g₀ + g₁), i.e. the mean gradient at rate K·lr.
        let out = run_ranks(k, 1, move |ex| {
            Box::new(DataParallelSgd { lr, exchange: ex })
        });
        let t0 = theta0().to_vec_f32().unwrap();
        for i in 0..D {
            let g = (t0[i] - target(0, i)) + (t0[i] - target(1, i));
            assert_eq!(out[0][i].to_bits(), out[1][i].to_bits());
            assert!((out[0][i] - (t0[i] - lr as f32 * g)).abs() < 1e-6);
        }
    }
}
