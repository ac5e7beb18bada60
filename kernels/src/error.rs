//! Errors of the kernel layer.

/// Everything that can go wrong talking to a device or launching a kernel.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter of the requested kind; the message says how to get one.
    #[error("{0}")]
    NoAdapter(String),
    /// `request_device` failed.
    #[error("could not open the device {0}")]
    Device(String),
    /// A request past a device limit.
    #[error("{what} needs {bytes}, over the device limit of {limit}")]
    TooLarge {
        /// What was asked for.
        what: String,
        /// How much (bytes, or a count where the message says so).
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Allocation failed on the device.
    #[error("device out of memory: {0}")]
    OutOfMemory(String),
    /// A shader failed to compile or a pipeline to build.
    #[error("shader error in {0}")]
    Shader(String),
    /// A validation error reported by wgpu.
    #[error("wgpu validation error: {0}")]
    Validation(String),
    /// Mapping a buffer for readback failed.
    #[error("readback failed: {0}")]
    Readback(String),
    /// A bounded wait ran out.
    #[error("timed out {0}")]
    Timeout(String),
    /// Bad arguments to a launcher (shapes, ranges).
    #[error("{0}")]
    Invalid(String),
}
