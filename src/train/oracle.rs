//! The trainer's side of [`rbd_optim::Oracle`]: forward and backward passes of the
//! model on successive training batches, with running loss and accuracy.

use rbd_datasets::Batch;
use rbd_engine::{no_grad, Device, EngineError, Labels, Result, Tensor};
use rbd_models::{Mode, Model};
use rbd_optim::Oracle;

/// Running sums over the batches an epoch has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochSums {
    /// Σ batch mean loss × batch size.
    pub loss_sum: f64,
    /// Correct predictions.
    pub correct: u64,
    /// Images seen.
    pub seen: u64,
}

/// Feeds training batches to a model.
pub struct TrainOracle<'a> {
    pub(crate) model: &'a dyn Model,
    pub(crate) device: Device,
    pub(crate) batches: &'a mut dyn Iterator<Item = Batch>,
    pub(crate) classes: usize,
    /// Sums of the current epoch.
    pub sums: EpochSums,
    /// Batches consumed in the current step.
    pub batches_used: usize,
    /// The first non-finite loss seen, if any.
    pub diverged: Option<f64>,
}

impl TrainOracle<'_> {
    fn next_batch(&mut self) -> Result<(Tensor, Labels, usize)> {
        let batch = self
            .batches
            .next()
            .ok_or_else(|| EngineError::Invalid("the epoch ran out of batches mid-step".into()))?;
        self.batches_used += 1;
        let n = batch.len();
        let x = Tensor::from_f32(&self.device, &batch.images, &batch.shape)?;
        let labels = Labels::new(&self.device, batch.labels, self.classes)?;
        Ok((x, labels, n))
    }

    fn account(
        &mut self,
        loss: &Tensor,
        logits: &Tensor,
        labels: &Labels,
        n: usize,
    ) -> Result<f64> {
        let l = loss.item()?;
        if !l.is_finite() {
            self.diverged = Some(l);
            return Err(EngineError::Invalid(format!("training loss became {l}")));
        }
        self.sums.loss_sum += l * n as f64;
        self.sums.correct += logits.correct_count(labels)? as u64;
        self.sums.seen += n as u64;
        Ok(l)
    }
}

impl Oracle for TrainOracle<'_> {
    fn gradient(&mut self, theta: &Tensor) -> Result<Tensor> {
        let (x, labels, n) = self.next_batch()?;
        let layout = self.model.layout();
        let views = layout.views(theta)?;
        let logits = self.model.forward(&views, &x, Mode::Train)?;
        let loss = logits.softmax_cross_entropy(&labels)?;
        let grads = loss.backward()?;
        self.account(&loss, &logits.detach(), &labels, n)?;
        layout.flat_grad(&grads, &views, &self.device)
    }

    fn loss(&mut self, theta: &Tensor) -> Result<f64> {
        let (x, labels, n) = self.next_batch()?;
        no_grad(|| {
            let views = self.model.layout().views(theta)?;
            let logits = self.model.forward(&views, &x, Mode::Train)?;
            let loss = logits.softmax_cross_entropy(&labels)?;
            self.account(&loss, &logits, &labels, n)
        })
    }

    fn tensors(&self) -> Vec<(String, usize, usize)> {
        self.model
            .layout()
            .specs
            .iter()
            .map(|s| (s.name.clone(), s.offset, s.len()))
            .collect()
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
