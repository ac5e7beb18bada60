//! 2-D convolution (NCHW, weights [O, C, KH, KW], no bias) and its two backward passes.

use super::per_backend;
use super::run;
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
pub use rbd_kernels::conv::Padding;
use rbd_kernels::conv::{self as k, Conv2dShape};

fn conv_shape(x: &Tensor, w: &Tensor, stride: usize, padding: Padding) -> Result<Conv2dShape> {
    let (sx, sw) = (x.shape(), w.shape());
    if sx.len() != 4 || sw.len() != 4 || sx[1] != sw[1] {
        return Err(EngineError::Shape {
            op: "conv2d",
            msg: format!("input {sx:?} (NCHW) and weights {sw:?} (OCKhKw) do not fit"),
        });
    }
    Ok(Conv2dShape::new(
        sx[0], sx[1], sx[2], sx[3], sw[0], sw[2], sw[3], stride, padding,
    )?)
}

fn forward(s: &Conv2dShape, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let shape = [s.n, s.o, s.oh, s.ow];
    Ok(per_backend!(
        operands("conv2d", &[x, w])?,
        |v| cpu_tensor(run(s.y_len(), |y| k::conv2d_cpu(s, v[0], v[1], y)), &shape),
        |ctx, v| gpu_tensor(&ctx, k::conv2d_gpu(&ctx, s, &v[0], &v[1])?, &shape),
    ))
}

fn backward_data(s: &Conv2dShape, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let shape = [s.n, s.c, s.h, s.w];
    Ok(per_backend!(
        operands("conv2d_backward_data", &[dy, w])?,
        |v| cpu_tensor(
            run(s.x_len(), |dx| {
                k::conv2d_backward_data_cpu(s, v[0], v[1], dx)
            }),
            &shape,
        ),
        |ctx, v| gpu_tensor(
            &ctx,
            k::conv2d_backward_data_gpu(&ctx, s, &v[0], &v[1])?,
            &shape,
        ),
    ))
}

fn backward_weight(s: &Conv2dShape, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let shape = [s.o, s.c, s.kh, s.kw];
    Ok(per_backend!(
        operands("conv2d_backward_weight", &[x, dy])?,
        |v| cpu_tensor(
            run(s.w_len(), |dw| {
                k::conv2d_backward_weight_cpu(s, v[0], v[1], dw)
            }),
            &shape,
        ),
        |ctx, v| gpu_tensor(
            &ctx,
            k::conv2d_backward_weight_gpu(&ctx, s, &v[0], &v[1])?,
            &shape,
        ),
    ))
}

impl Tensor {
    /// Convolution of an NCHW input with `[O, C, KH, KW]` weights (Keras/TF padding
    /// semantics: `Same` puts the odd padding row at the bottom/right).
    pub fn conv2d(&self, w: &Tensor, stride: usize, padding: Padding) -> Result<Tensor> {
        let s = conv_shape(self, w, stride, padding)?;
        let (x, wd) = (self.detach(), w.detach());
        // The input batch of a first layer needs no gradient: skip that pass.
        let (need_dx, need_dw) = (self.tracks_grad(), w.tracks_grad());
        let out = forward(&s, self, w)?;
        Ok(out.record("conv2d", &[self, w], move |g| {
            Ok(vec![
                need_dx.then(|| backward_data(&s, g, &wd)).transpose()?,
                need_dw.then(|| backward_weight(&s, &x, g)).transpose()?,
            ])
        }))
    }
}
