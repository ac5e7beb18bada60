//! The wgpu runtime, in rooms (after candle's `candle-metal-kernels/src/metal/`):
//!
//! - `adapter`: which adapters exist and the one rule for "a GPU";
//! - `context`: bring-up of a device on an adapter, its limits, features and errors;
//! - `pipelines`: kernels (with their trusted flag), shader modules, explicit layouts
//!   (from `reflect`), the pipeline and bind-group caches;
//! - `buffers` (over `buffer_pool`): allocation, uploads, copies, readback;
//! - `queue`: recording dispatches into one compute pass, submission, bounded waits;
//! - `profiler`: timestamp queries per kernel, the dispatch log (workgroups and work
//!   per dispatch), and the timing hook of the benchmarks;
//! - `counters`: always-on counters of the host-side work.
//!
//! Host cost per dispatch is kept to lookups: `Info` goes to the host copy of the
//! uniform ring (written with one `queue.write_buffer` per submit), bind groups are
//! cached by the pool identity of their buffers, pipelines by entry point and override
//! values without allocating, and dispatches share one compute pass until a copy,
//! clear or timestamp query ends it. Uploads go through an upload ring and a recorded
//! copy, so they do not force a submit. `counters` counts all of it.

mod adapter;
mod buffer_pool;
mod buffers;
mod context;
mod counters;
mod pipelines;
mod profiler;
mod queue;
mod reflect;

pub use adapter::{list_adapters, AdapterReport, DeviceKind};
pub use buffer_pool::{size_class, BufferPool, GpuBuffer, PoolStats};
pub use context::GpuContext;
pub use counters::{counters, reset_counters, Counters};
pub use pipelines::Kernel;
pub use profiler::{DispatchRecord, KernelTiming, RegionTime, Work};
pub use wgpu::Features;
