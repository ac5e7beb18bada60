//! ResNet v1 for CIFAR-10 in the Keras layout: a 3×3 stem conv with batch norm, 3
//! stages of `n` basic blocks (16/32/64 filters, stride 2 entering stages 2 and 3),
//! 3×3 convs without bias each followed by batch norm, a 1×1 stride-2 projection
//! shortcut without batch norm where the shape changes, global average pooling and
//! Dense 10. n = 1 is ResNet-8, n = 5 ResNet-32 (depth 6n + 2).

use crate::model::{layer, Mode, Model, RunningStats};
use crate::params::{Init, ParamLayout};
use rbd_engine::{DType, Device, EngineError, Padding, Result, Tensor};
use std::sync::Mutex;

struct ConvBn {
    conv: usize,
    bn: usize,
    stats: usize,
    stride: usize,
}

struct Block {
    a: ConvBn,
    b: ConvBn,
    projection: Option<usize>,
}

/// A CIFAR ResNet v1.
pub struct ResNet {
    name: String,
    layout: ParamLayout,
    stem: ConvBn,
    blocks: Vec<Block>,
    dense: usize,
    stats: Vec<RunningStats>,
}

fn conv(layout: &mut ParamLayout, name: &str, c: usize, o: usize, k: usize) -> usize {
    layout.begin_layer();
    layout.add(
        format!("{name}.kernel"),
        &[o, c, k, k],
        Init::HeNormal { fan_in: c * k * k },
    )
}

impl ResNet {
    /// ResNet-(6n+2) on `device` (the running statistics live there).
    pub fn new(n: usize, device: &Device) -> Result<ResNet> {
        if n == 0 {
            return Err(EngineError::Invalid("resnet: n must be at least 1".into()));
        }
        let mut layout = ParamLayout::default();
        let mut stats = Vec::new();
        let conv_id = std::cell::Cell::new(0);
        let mut bn_id = 0;
        let mut conv_bn = |layout: &mut ParamLayout,
                           stats: &mut Vec<RunningStats>,
                           c: usize,
                           o: usize,
                           stride: usize|
         -> Result<ConvBn> {
            conv_id.set(conv_id.get() + 1);
            bn_id += 1;
            let conv = conv(layout, &format!("conv2d_{}", conv_id.get()), c, o, 3);
            layout.begin_layer();
            let name = format!("batch_normalization_{bn_id}");
            let bn = layout.add(format!("{name}.gamma"), &[o], Init::Ones);
            layout.add(format!("{name}.beta"), &[o], Init::Zeros);
            stats.push(RunningStats {
                name,
                mean: Mutex::new(Tensor::zeros(device, &[o], DType::F32)?),
                var: Mutex::new(Tensor::zeros(device, &[o], DType::F32)?.full_like(&[o], 1.0)?),
            });
            Ok(ConvBn {
                conv,
                bn,
                stats: stats.len() - 1,
                stride,
            })
        };
        let stem = conv_bn(&mut layout, &mut stats, 3, 16, 1)?;
        let mut blocks = Vec::new();
        let mut c = 16;
        for stage in 0..3 {
            let f = 16 << stage;
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let a = conv_bn(&mut layout, &mut stats, c, f, stride)?;
                let bb = conv_bn(&mut layout, &mut stats, f, f, 1)?;
                let projection = if stage > 0 && b == 0 {
                    conv_id.set(conv_id.get() + 1);
                    Some(conv(
                        &mut layout,
                        &format!("conv2d_{}", conv_id.get()),
                        c,
                        f,
                        1,
                    ))
                } else {
                    None
                };
                blocks.push(Block {
                    a,
                    b: bb,
                    projection,
                });
                c = f;
            }
        }
        layout.begin_layer();
        let dense = layout.add("dense_1.kernel", &[64, 10], Init::HeNormal { fan_in: 64 });
        layout.add("dense_1.bias", &[10], Init::Zeros);
        Ok(ResNet {
            name: format!("resnet{}", 6 * n + 2),
            layout,
            stem,
            blocks,
            dense,
            stats,
        })
    }

    fn conv_bn(&self, p: &[Tensor], l: &ConvBn, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = layer(self.layer_name(l.conv), || {
            x.conv2d(&p[l.conv], l.stride, Padding::Same)
        })?;
        let stats = &self.stats[l.stats];
        layer(&stats.name, || {
            stats.apply(&y, &p[l.bn], &p[l.bn + 1], mode)
        })
    }

    /// `conv2d_3` for the tensor `conv2d_3.kernel` at index `i` of the layout.
    fn layer_name(&self, i: usize) -> &str {
        let name = &self.layout.specs[i].name;
        name.strip_suffix(".kernel").unwrap_or(name)
    }
}

impl Model for ResNet {
    fn name(&self) -> &str {
        &self.name
    }
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    fn forward(&self, p: &[Tensor], x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut h = self.conv_bn(p, &self.stem, x, mode)?.relu()?;
        for b in &self.blocks {
            let y = self.conv_bn(p, &b.a, &h, mode)?.relu()?;
            let y = self.conv_bn(p, &b.b, &y, mode)?;
            let shortcut = match b.projection {
                Some(i) => layer(self.layer_name(i), || h.conv2d(&p[i], 2, Padding::Same))?,
                None => h,
            };
            h = shortcut.add(&y)?.relu()?;
        }
        let h = h.global_avg_pool()?;
        layer("dense_1", || {
            h.matmul(&p[self.dense])?.bias_add(&p[self.dense + 1])
        })
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for s in &self.stats {
            out.push((
                format!("{}.moving_mean", s.name),
                s.mean.lock().unwrap().clone(),
            ));
            out.push((
                format!("{}.moving_variance", s.name),
                s.var.lock().unwrap().clone(),
            ));
        }
        out
    }
    fn set_state(&self, state: &[(String, Tensor)]) -> Result<()> {
        for s in &self.stats {
            for (suffix, slot) in [("moving_mean", &s.mean), ("moving_variance", &s.var)] {
                let key = format!("{}.{suffix}", s.name);
                let Some((_, t)) = state.iter().find(|(k, _)| *k == key) else {
                    return Err(EngineError::Invalid(format!("state {key} missing")));
                };
                let mut slot = slot.lock().unwrap();
                if t.shape() != slot.shape() {
                    return Err(EngineError::Shape {
                        op: "set_state",
                        msg: format!("{key}: {:?} for {:?}", t.shape(), slot.shape()),
                    });
                }
                *slot = t.to_device(&slot.device())?;
            }
        }
        Ok(())
    }
}
