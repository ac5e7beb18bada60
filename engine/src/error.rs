//! Errors of the tensor engine.

use rbd_kernels::GpuError;

/// Shape mismatches, device trouble and bad arguments, each with a message that names
/// the op and the shapes involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Operands whose shapes do not fit the op.
    #[error("{op}: {msg}")]
    Shape {
        /// The op.
        op: &'static str,
        /// What is wrong, with the shapes.
        msg: String,
    },
    /// Operands on different devices or of different dtypes.
    #[error("{op}: operands are on different devices or dtypes ({a} vs {b})")]
    Mismatch {
        /// The op.
        op: &'static str,
        /// First operand's placement.
        a: String,
        /// Second operand's placement.
        b: String,
    },
    /// An op or dtype a backend does not have.
    #[error("{0}")]
    Unsupported(String),
    /// An error from the device or a kernel launcher.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// Anything else (bad arguments, gradient check failures).
    #[error("{0}")]
    Invalid(String),
}

/// Result type of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
