//! The trainer's side of [`rbd_optim::Oracle`]: forward and backward passes of the
//! model on the successive training batches of one epoch, with running loss and
//! accuracy. One oracle serves a whole epoch.
//!
//! Each phase of a step runs inside a named scope of the engine's profiler
//! ([`phase`]): the timing hook of `rbd profile`, which runs this oracle; off (in
//! training) a scope costs one relaxed atomic load and changes no value.

use rbd_datasets::Batch;
use rbd_engine::profile::{layer, scope};
use rbd_engine::{no_grad, Device, EngineError, Labels, MetricSums, Result, Tensor};
use rbd_models::{Mode, Model};
use rbd_optim::Oracle;

/// The phases of one gradient or loss, in step order: the profiler's scope names
/// (`rbd profile` lists them in this order).
pub mod phase {
    /// The next batch uploaded, with its labels.
    pub const DATA: &str = "data";
    /// θ cut into per-tensor views (copies on wgpu).
    pub const VIEWS: &str = "views";
    /// The model's forward pass and the loss.
    pub const FORWARD: &str = "forward";
    /// `loss.backward()`.
    pub const BACKWARD: &str = "backward";
    /// Loss and accuracy accounted (read back at once on the cpu, recorded on the
    /// device on wgpu).
    pub const METRICS: &str = "metrics";
    /// The per-tensor gradients concatenated into g.
    pub const GRADIENT: &str = "gradient concat";
    /// The layer scope of the loss (inside [`FORWARD`]).
    pub const LOSS: &str = "loss";
}

/// Running sums over the batches an epoch has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochSums {
    /// Σ batch mean loss × batch size.
    #[serde(with = "crate::nonfinite::float")]
    pub loss_sum: f64,
    /// Correct predictions.
    pub correct: u64,
    /// Images seen.
    pub seen: u64,
}

impl EpochSums {
    /// Mean loss per image (0 before any image).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.seen.max(1) as f64
    }

    /// Fraction of images classified correctly.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.seen.max(1) as f64
    }

    fn add(&mut self, loss: f64, correct: u64, n: u64) {
        self.loss_sum += loss * n as f64;
        self.correct += correct;
        self.seen += n;
    }
}

/// Feeds one epoch's training batches to a model.
pub struct TrainOracle<'a> {
    model: &'a dyn Model,
    device: Device,
    batches: Box<dyn Iterator<Item = Batch> + 'a>,
    classes: usize,
    /// Sums of the epoch so far.
    pub sums: EpochSums,
    /// Sums since the last logged step row.
    pub window: EpochSums,
    /// Batches consumed since the oracle was made.
    pub batches_used: usize,
    /// The first non-finite loss seen, if any.
    pub diverged: Option<f64>,
    /// Per-batch loss and correct counts, accumulated on the device on wgpu and read
    /// back only when [`TrainOracle::settle`] is called (no readback per step).
    metrics: MetricSums,
    /// Settle after every batch (the cpu backend, where reading costs nothing).
    settle_each_batch: bool,
}

impl<'a> TrainOracle<'a> {
    /// An oracle over `batches`, continuing the epoch's running sums.
    pub fn new(
        model: &'a dyn Model,
        device: Device,
        batches: Box<dyn Iterator<Item = Batch> + 'a>,
        classes: usize,
        sums: EpochSums,
        window: EpochSums,
    ) -> Result<Self> {
        Ok(TrainOracle {
            metrics: MetricSums::new(&device)?,
            settle_each_batch: device.gpu().is_none(),
            model,
            device,
            batches,
            classes,
            sums,
            window,
            batches_used: 0,
            diverged: None,
        })
    }

    /// Moves the batches recorded since the last call into the running sums, in batch
    /// order (the same f64 arithmetic as reading each batch at once); an error if a
    /// loss was not finite.
    pub fn settle(&mut self) -> Result<()> {
        for (l, correct, n) in self.metrics.take_records()? {
            if !l.is_finite() {
                self.diverged.get_or_insert(l);
            }
            if self.diverged.is_none() {
                self.sums.add(l, correct, n);
                self.window.add(l, correct, n);
            }
        }
        match self.diverged {
            Some(l) => Err(EngineError::Invalid(format!("training loss became {l}"))),
            None => Ok(()),
        }
    }

    fn next_batch(&mut self) -> Result<(Tensor, Labels)> {
        let _s = scope(phase::DATA);
        let batch = self
            .batches
            .next()
            .ok_or_else(|| EngineError::Invalid("the epoch ran out of batches mid-step".into()))?;
        self.batches_used += 1;
        let x = Tensor::from_f32(&self.device, &batch.images, &batch.shape)?;
        let labels = Labels::new(&self.device, batch.labels, self.classes)?;
        Ok((x, labels))
    }

    fn views(&self, theta: &Tensor) -> Result<Vec<Tensor>> {
        let _s = scope(phase::VIEWS);
        self.model.layout().views(theta)
    }

    /// The logits and the loss.
    fn forward(&self, views: &[Tensor], x: &Tensor, labels: &Labels) -> Result<(Tensor, Tensor)> {
        let _s = scope(phase::FORWARD);
        let logits = self.model.forward(views, x, Mode::Train)?;
        let _l = layer(phase::LOSS);
        let loss = logits.softmax_cross_entropy(labels)?;
        Ok((logits, loss))
    }

    fn account(&mut self, loss: &Tensor, logits: &Tensor, labels: &Labels) -> Result<()> {
        self.metrics.add(loss, logits, labels)?;
        if self.settle_each_batch {
            self.settle()?;
        }
        Ok(())
    }
}

impl Oracle for TrainOracle<'_> {
    fn gradient(&mut self, theta: &Tensor) -> Result<Tensor> {
        let (x, labels) = self.next_batch()?;
        let views = self.views(theta)?;
        let (logits, loss) = self.forward(&views, &x, &labels)?;
        let grads = {
            let _s = scope(phase::BACKWARD);
            loss.backward()?
        };
        {
            let _s = scope(phase::METRICS);
            self.account(&loss, &logits.detach(), &labels)?;
        }
        let _s = scope(phase::GRADIENT);
        self.model.layout().flat_grad(&grads, &views, &self.device)
    }

    fn loss(&mut self, theta: &Tensor) -> Result<f64> {
        let (x, labels) = self.next_batch()?;
        no_grad(|| {
            let views = self.views(theta)?;
            let (logits, loss) = self.forward(&views, &x, &labels)?;
            let _s = scope(phase::METRICS);
            // The optimiser needs the value now (NES ranks the offspring's losses).
            let l = loss.item()?;
            self.account(&loss, &logits, &labels)?;
            if !l.is_finite() {
                self.diverged.get_or_insert(l);
                return Err(EngineError::Invalid(format!("training loss became {l}")));
            }
            Ok(l)
        })
    }

    fn tensors(&self) -> Vec<(String, usize, usize)> {
        self.model.layout().tensor_ranges()
    }
}

/// Mean loss and accuracy of `model` at θ over evaluation batches.
pub fn evaluate(
    model: &dyn Model,
    device: &Device,
    theta: &Tensor,
    batches: impl Iterator<Item = Batch>,
    classes: usize,
) -> Result<(f64, f64)> {
    no_grad(|| {
        let views = model.layout().views(theta)?;
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        for batch in batches {
            let n = batch.len();
            let x = Tensor::from_f32(device, &batch.images, &batch.shape)?;
            let labels = Labels::new(device, batch.labels, classes)?;
            let logits = model.forward(&views, &x, Mode::Eval)?;
            loss_sum += logits.softmax_cross_entropy(&labels)?.item()? * n as f64;
            correct += logits.correct_count(&labels)?;
            seen += n;
        }
        if seen == 0 {
            return Err(EngineError::Invalid("evaluation set is empty".into()));
        }
        Ok((loss_sum / seen as f64, correct as f64 / seen as f64))
    })
}
