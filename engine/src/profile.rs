//! Op-level profiler, off by default.
//!
//! When [`start`]ed on a thread, every engine op run on that thread is timed under
//! its name: from the moment it resolves its operands (`operands()` in `tensor.rs`,
//! which every op's forward and backward kernel calls) until its first output tensor
//! exists (`Tensor::from_storage`), or the next op or scope boundary for ops that
//! return no tensor. Ops that do not resolve operands (the random-bases family) call
//! [`op_begin`] themselves. Callers push named scopes ([`scope`] for phases such as
//! `forward`, [`layer`] for model layers); autodiff runs each backward rule inside
//! the layer scope that was open when the op was recorded, plus a scope
//! `NAME.backward`, so a layer's backward time is attributed to the layer.
//!
//! Off, every hook costs one relaxed atomic load. On a wgpu device started with
//! [`start`]`(Some(device))` each boundary synchronises the device first, so an op's
//! time is the wall-clock of its dispatches (kernel and submission), not just of
//! recording them; this serialises the device and makes the step slower than an
//! unprofiled one.

use crate::device::Device;
use rbd_kernels::GpuContext;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Threads currently recording; hooks return at once when zero.
static RECORDING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Whether an entry is a scope (inclusive time of everything inside it) or an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A scope pushed by [`scope`], [`layer`] or autodiff (`NAME.backward`).
    Scope,
    /// An engine op (its kernel), named as it names itself in error messages.
    Op,
}

/// Accumulated time of one scope or op at one place in the scope tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The enclosing scopes, outermost first.
    pub scopes: Vec<String>,
    /// Scope or op name.
    pub name: String,
    /// Scope or op.
    pub kind: Kind,
    /// How many times it ran.
    pub calls: u64,
    /// Total wall-clock in seconds.
    pub seconds: f64,
}

impl Entry {
    /// `scope/scope/name`.
    pub fn path(&self) -> String {
        let mut p = self.scopes.join("/");
        if !p.is_empty() {
            p.push('/');
        }
        p.push_str(&self.name);
        p
    }
}

struct Frame {
    name: Arc<str>,
    layer: bool,
    start: Instant,
}

struct Recorder {
    sync: Option<Arc<GpuContext>>,
    stack: Vec<Frame>,
    open_op: Option<(&'static str, Instant)>,
    entries: Vec<Entry>,
    index: HashMap<(String, Kind), usize>,
}

impl Recorder {
    fn now(&self) -> Instant {
        if let Some(ctx) = &self.sync {
            // A failed wait shows up again at the caller's next device call.
            let _ = ctx.synchronize();
        }
        Instant::now()
    }

    fn add(&mut self, name: &str, kind: Kind, seconds: f64) {
        let scopes: Vec<String> = self.stack.iter().map(|f| f.name.to_string()).collect();
        let key = (format!("{}/{name}", scopes.join("/")), kind);
        let i = *self.index.entry(key).or_insert_with(|| {
            self.entries.push(Entry {
                scopes,
                name: name.to_string(),
                kind,
                calls: 0,
                seconds: 0.0,
            });
            self.entries.len() - 1
        });
        self.entries[i].calls += 1;
        self.entries[i].seconds += seconds;
    }

    fn close_op(&mut self, end: Instant) {
        if let Some((name, start)) = self.open_op.take() {
            self.add(name, Kind::Op, (end - start).as_secs_f64());
        }
    }
}

fn with<R>(f: impl FnOnce(&mut Recorder) -> R) -> Option<R> {
    if RECORDING.load(Ordering::Relaxed) == 0 {
        return None;
    }
    RECORDER.with(|r| r.borrow_mut().as_mut().map(f))
}

/// Starts recording on this thread (discarding anything recorded before). With a
/// wgpu `sync` device, every op and scope boundary waits for the device first.
pub fn start(sync: Option<&Device>) {
    let sync = sync.and_then(|d| d.gpu().cloned());
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        if r.is_none() {
            RECORDING.fetch_add(1, Ordering::Relaxed);
        }
        *r = Some(Recorder {
            sync,
            stack: Vec::new(),
            open_op: None,
            entries: Vec::new(),
            index: HashMap::new(),
        });
    });
}

/// Whether this thread is recording.
pub fn is_recording() -> bool {
    with(|_| ()).is_some()
}

/// Everything recorded since [`start`] or the last `take`, in first-seen order; the
/// recorder keeps running (scopes still open are reported when they close).
pub fn take() -> Vec<Entry> {
    with(|r| {
        let now = r.now();
        r.close_op(now);
        r.index.clear();
        std::mem::take(&mut r.entries)
    })
    .unwrap_or_default()
}

/// Stops recording on this thread and returns what was not yet taken.
pub fn stop() -> Vec<Entry> {
    let out = take();
    RECORDER.with(|r| {
        if r.borrow_mut().take().is_some() {
            RECORDING.fetch_sub(1, Ordering::Relaxed);
        }
    });
    out
}

/// An open scope; closes when dropped.
#[must_use = "the scope closes when this guard is dropped"]
pub struct Scope {
    open: bool,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        with(|r| {
            let now = r.now();
            r.close_op(now);
            if let Some(f) = r.stack.pop() {
                let seconds = (now - f.start).as_secs_f64();
                r.add(&f.name, Kind::Scope, seconds);
            }
        });
    }
}

fn push(name: &str, layer: bool) -> Scope {
    let open = with(|r| {
        let now = r.now();
        r.close_op(now);
        r.stack.push(Frame {
            name: name.into(),
            layer,
            start: now,
        });
    })
    .is_some();
    Scope { open }
}

/// Opens a scope named `name` (a phase: `data`, `forward`, `backward`, ...).
pub fn scope(name: &str) -> Scope {
    push(name, false)
}

/// Opens a layer scope: ops recorded inside it run their backward rules inside a
/// scope of the same name.
pub fn layer(name: &str) -> Scope {
    push(name, true)
}

/// The innermost open layer scope, kept with a recorded op for its backward.
pub(crate) fn current_layer() -> Option<Arc<str>> {
    with(|r| {
        r.stack
            .iter()
            .rev()
            .find(|f| f.layer)
            .map(|f| f.name.clone())
    })
    .flatten()
}

/// Hook: op `name` starts (called where an op resolves its operands).
pub(crate) fn op_begin(name: &'static str) {
    with(|r| {
        let now = r.now();
        r.close_op(now);
        r.open_op = Some((name, now));
    });
}

/// Hook: an output tensor was made; the open op, if any, is done.
pub(crate) fn op_end() {
    with(|r| {
        if r.open_op.is_some() {
            let now = r.now();
            r.close_op(now);
        }
    });
}

/// Runs a backward rule inside its layer's scope and a `NAME.backward` scope.
pub(crate) fn backward_scopes(layer: Option<&Arc<str>>, name: &str) -> (Option<Scope>, Scope) {
    if RECORDING.load(Ordering::Relaxed) == 0 {
        return (None, Scope { open: false });
    }
    let layer = layer.map(|l| push(l, true));
    (layer, push(&format!("{name}.backward"), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    fn find<'a>(entries: &'a [Entry], path: &str, kind: Kind) -> Option<&'a Entry> {
        entries.iter().find(|e| e.path() == path && e.kind == kind)
    }

    fn dense_step() -> crate::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::from_f32(&dev, &[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
        let w = Tensor::from_f32(&dev, &[0.5, -1.0, 0.25, 2.0], &[2, 2])?.requires_grad();
        let loss = {
            let _f = scope("forward");
            let y = {
                let _l = layer("dense");
                x.matmul(&w)?.relu()?
            };
            y.sum()?
        };
        let _b = scope("backward");
        loss.backward()?;
        Ok(())
    }

    #[test]
    fn off_records_nothing() {
        stop();
        dense_step().unwrap();
        assert!(!is_recording());
        assert!(take().is_empty());
    }

    #[test]
    fn ops_land_in_their_scopes_and_backward_in_the_forward_layer() {
        start(None);
        dense_step().unwrap();
        let e = stop();
        let fwd = find(&e, "forward/dense/matmul", Kind::Op).expect("forward matmul");
        assert_eq!(fwd.calls, 1);
        assert!(
            find(&e, "forward/dense/unary", Kind::Op).is_some(),
            "{e:#?}"
        );
        // Only w tracks a gradient: its backward runs one matmul, in the layer scope.
        let bwd = find(&e, "backward/dense/matmul.backward/matmul", Kind::Op).expect("bwd");
        assert_eq!(bwd.calls, 1);
        let layer = find(&e, "forward/dense", Kind::Scope).unwrap();
        let forward = find(&e, "forward", Kind::Scope).unwrap();
        // Inclusive times nest.
        assert!(fwd.seconds <= layer.seconds && layer.seconds <= forward.seconds);
        let children: f64 = e
            .iter()
            .filter(|c| c.scopes == ["forward", "dense"])
            .map(|c| c.seconds)
            .sum();
        assert!(children <= layer.seconds);
    }

    #[test]
    fn take_empties_and_stop_ends_recording() {
        start(None);
        dense_step().unwrap();
        assert!(!take().is_empty());
        assert!(take().is_empty());
        dense_step().unwrap();
        assert!(!stop().is_empty());
        assert!(!is_recording());
        dense_step().unwrap();
        assert!(take().is_empty());
    }
}
