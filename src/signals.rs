//! Stopping a run cleanly: SIGINT and SIGTERM set a flag that the trainer checks after
//! every step; it then writes a checkpoint and returns. The handler is installed with
//! `SA_RESETHAND`, so a second Ctrl-C ends the process at once.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// Asks a run to stop after its current step.
#[derive(Clone, Debug, Default)]
pub struct StopFlag {
    own: Arc<AtomicI32>,
    signals: bool,
}

impl StopFlag {
    /// A flag only [`StopFlag::request`] sets.
    pub fn new() -> Self {
        StopFlag::default()
    }

    /// A flag that SIGINT and SIGTERM set (handlers installed on the first call).
    pub fn on_signals() -> Self {
        install();
        StopFlag {
            own: Arc::default(),
            signals: true,
        }
    }

    /// Requests a stop, as if by signal `signal`.
    pub fn request(&self, signal: i32) {
        self.own.store(signal, Ordering::SeqCst);
    }

    /// The signal that asked to stop, if any.
    pub fn requested(&self) -> Option<i32> {
        let own = self.own.load(Ordering::SeqCst);
        let sig = if own == 0 && self.signals {
            SIGNALLED.load(Ordering::SeqCst)
        } else {
            own
        };
        (sig != 0).then_some(sig)
    }
}

/// The name of a stop signal.
pub fn signal_name(signal: i32) -> String {
    match signal {
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        s => format!("signal {s}"),
    }
}

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNALLED.store(signal, Ordering::SeqCst);
}

#[cfg(unix)]
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction with a handler that only stores an atomic.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESETHAND;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

#[cfg(not(unix))]
fn install() {}
