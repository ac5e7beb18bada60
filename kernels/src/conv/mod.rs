//! 2-D convolution (NCHW, weights `[o, c, kh, kw]`, no bias): forward, backward-data
//! and backward-weight. WGSL: `wgsl/conv.wgsl`.
//!
//! The cpu versions lower to GEMM (`T::gemm`, matrixmultiply) over im2col matrices
//! (K = c·kh·kw rows, one column per output position): per image for feature maps of
//! at least `PER_IMAGE_MIN_P` (64) outputs (the matrix stays in cache and the GEMM writes
//! NCHW directly), else one batched matrix `[K, N·P]` (bigger GEMMs for small maps).
//! Backward-data is `Wᵀ·dY` followed by col2im, gathered per input plane. The per-image
//! forward and weight gradient of f32 layers run without im2col or packing where the processor has
//! AVX2 with FMA (`direct.rs`: register tiles read from a zero-padded image, in
//! matrixmultiply's summation order, so bitwise the GEMM's result; `RBD_CONV=gemm`
//! forces the GEMM for comparison).
//!
//! Determinism: every output's summation order is fixed by the shape alone. The GEMM
//! splits work over output blocks only (never over the reduction), the rayon loops
//! only write disjoint outputs, and the batch sum of the weight gradient runs in
//! image order (or inside one GEMM). Results are bitwise independent of the thread
//! count; across CPUs they match as long as matrixmultiply picks kernels with the same
//! arithmetic (its FMA kernels; x86 CPUs without FMA round differently).
//!
//! The WGSL kernels are implicit GEMMs over the same matrices, gathered on the fly
//! from NCHW tensors into (16·RM)×64×16 workgroup tiles, RM ∈ {1, 2, 4} by the GEMM's
//! row count (see the shader's header). A GEMM with too few output tiles to fill a big
//! GPU splits its reduction (`launch::reduction_splits`, by shape alone), so the three
//! passes of the CNN at batch 32 each offer an H100 about two workgroups per
//! multiprocessor.

mod cpu;
mod direct;
mod gpu;
mod im2col;
mod shape;

pub use cpu::{
    conv2d_backward_data_cpu, conv2d_backward_weight_cpu, conv2d_backward_weight_cpu_with,
    conv2d_cpu, conv2d_cpu_with,
};
pub use direct::{ConvPath, CONV_ENV};
pub use gpu::{
    conv2d_backward_data_gpu, conv2d_backward_data_gpu_split, conv2d_backward_weight_gpu,
    conv2d_gpu, conv2d_gpu_split, forward_splits,
};
pub use shape::{Conv2dShape, Padding};
