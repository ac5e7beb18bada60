//! The profiler's side of [`rbd_optim::Oracle`]: what the trainer does for one
//! gradient, each part inside a named profiler scope.

use rbd_datasets::Batch;
use rbd_engine::profile::{layer, scope};
use rbd_engine::{no_grad, Device, EngineError, Labels, MetricSums, Result, Tensor};
use rbd_models::{Mode, Model};
use rbd_optim::Oracle;

/// Phase scope names, in step order (the report lists them in this order).
pub const DATA: &str = "data";
/// θ cut into per-tensor views (copies on wgpu).
pub const VIEWS: &str = "views";
/// The model's forward pass and the loss.
pub const FORWARD: &str = "forward";
/// `loss.backward()`.
pub const BACKWARD: &str = "backward";
/// Loss and accuracy read back, as the trainer does every step.
pub const METRICS: &str = "metrics";
/// The per-tensor gradients concatenated into g.
pub const GRADIENT: &str = "gradient concat";
/// The layer scope of the loss.
pub const LOSS: &str = "loss";

/// Feeds training batches to a model, timing each phase.
pub struct ProfileOracle<'a> {
    pub model: &'a dyn Model,
    pub device: Device,
    pub batches: &'a mut dyn Iterator<Item = Batch>,
    pub classes: usize,
    /// Loss and accuracy sums as the trainer keeps them (on the device on wgpu).
    pub sums: &'a mut MetricSums,
}

impl ProfileOracle<'_> {
    fn next_batch(&mut self) -> Result<(Tensor, Labels)> {
        let _s = scope(DATA);
        let batch = self
            .batches
            .next()
            .ok_or_else(|| EngineError::Invalid("the profile ran out of batches".into()))?;
        let x = Tensor::from_f32(&self.device, &batch.images, &batch.shape)?;
        let labels = Labels::new(&self.device, batch.labels, self.classes)?;
        Ok((x, labels))
    }

    fn views(&self, theta: &Tensor) -> Result<Vec<Tensor>> {
        let _s = scope(VIEWS);
        self.model.layout().views(theta)
    }

    fn forward(&self, views: &[Tensor], x: &Tensor, labels: &Labels) -> Result<(Tensor, Tensor)> {
        let _s = scope(FORWARD);
        let logits = self.model.forward(views, x, Mode::Train)?;
        let _l = layer(LOSS);
        let loss = logits.softmax_cross_entropy(labels)?;
        Ok((logits, loss))
    }

    /// As the trainer: recorded on the device on wgpu (read once per log window), read
    /// at once on the cpu.
    fn metrics(&mut self, loss: &Tensor, logits: &Tensor, labels: &Labels) -> Result<()> {
        let _s = scope(METRICS);
        self.sums.add(loss, logits, labels)?;
        if self.device.gpu().is_none() {
            for (l, _, _) in self.sums.take_records()? {
                if !l.is_finite() {
                    return Err(EngineError::Invalid(format!("training loss became {l}")));
                }
            }
        }
        Ok(())
    }
}

impl Oracle for ProfileOracle<'_> {
    fn gradient(&mut self, theta: &Tensor) -> Result<Tensor> {
        let (x, labels) = self.next_batch()?;
        let views = self.views(theta)?;
        let (logits, loss) = self.forward(&views, &x, &labels)?;
        let grads = {
            let _s = scope(BACKWARD);
            loss.backward()?
        };
        self.metrics(&loss, &logits.detach(), &labels)?;
        let _s = scope(GRADIENT);
        self.model.layout().flat_grad(&grads, &views, &self.device)
    }

    fn loss(&mut self, theta: &Tensor) -> Result<f64> {
        let (x, labels) = self.next_batch()?;
        no_grad(|| {
            let views = self.views(theta)?;
            let (logits, loss) = self.forward(&views, &x, &labels)?;
            self.metrics(&loss, &logits, &labels)?;
            loss.item()
        })
    }

    fn tensors(&self) -> Vec<(String, usize, usize)> {
        self.model.layout().tensor_ranges()
    }
}
