//! Whether other processes slowed a measurement: of the time this process's threads
//! were ready to run during a window, the share they spent waiting for a core (the
//! scheduler's run delay, `/proc/self/task/*/schedstat`).
//!
//! Why not the load average, or others' CPU time: the load average lags by a minute and
//! counts a campaign at nice 19 as load; others' CPU time counts the idle moments a
//! nice-19 campaign soaks up without delaying anyone. Run delay is what slows a
//! measurement: a compiler at the same priority makes this process's threads wait,
//! a nice-19 campaign barely does.

use std::collections::HashMap;

/// Nanoseconds on a core and waiting for one, per thread of this process.
fn threads() -> Option<HashMap<u64, (u64, u64)>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let entry = entry.ok()?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        // A thread may end between the listing and the read: skip it.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        let mut f = text.split_whitespace().map(|x| x.parse::<u64>());
        if let (Some(Ok(cpu)), Some(Ok(delay))) = (f.next(), f.next()) {
            out.insert(tid, (cpu, delay));
        }
    }
    Some(out)
}

/// A window of time over which this process's waiting for cores is measured.
pub struct Window {
    start: Option<HashMap<u64, (u64, u64)>>,
}

impl Window {
    /// Opens a window now.
    pub fn open() -> Self {
        Window { start: threads() }
    }

    /// The share (0 to 1) of its ready time this process's threads spent waiting for a
    /// core since [`Window::open`] (threads started since count whole); `None` where
    /// the system does not report it.
    pub fn waited_share(&self) -> Option<f64> {
        let start = self.start.as_ref()?;
        let (mut ran, mut waited) = (0u64, 0u64);
        for (tid, (cpu, delay)) in threads()? {
            let (cpu0, delay0) = start.get(&tid).copied().unwrap_or((0, 0));
            ran += cpu.saturating_sub(cpu0);
            waited += delay.saturating_sub(delay0);
        }
        Some(waited_share(ran, waited))
    }
}

/// The share of ready time spent waiting: `waited / (ran + waited)` (0 when neither).
pub fn waited_share(ran_ns: u64, waited_ns: u64) -> f64 {
    let ready = ran_ns + waited_ns;
    if ready == 0 {
        0.0
    } else {
        waited_ns as f64 / ready as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waiting is measured against the time the threads were ready to run.
    #[test]
    fn the_share_is_of_ready_time() {
        assert_eq!(waited_share(3_000, 1_000), 0.25);
        assert_eq!(waited_share(3_000, 0), 0.0);
        assert_eq!(waited_share(0, 0), 0.0);
        assert_eq!(waited_share(0, 5), 1.0);
    }

    /// The scheduler's counters are read and move with this thread's work: a busy
    /// loop in the window shows up as running time.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_window_reads_this_threads_counters() {
        let before = threads().expect("/proc/self/task on linux");
        let w = Window::open();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 50 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let share = w.waited_share().expect("counters");
        assert!((0.0..=1.0).contains(&share), "{share}");
        let after = threads().unwrap();
        let ran: u64 = after
            .iter()
            .map(|(t, (c, _))| c.saturating_sub(before.get(t).map_or(0, |b| b.0)))
            .sum();
        assert!(ran >= 10_000_000, "a 50 ms busy loop ran {ran} ns");
    }
}
