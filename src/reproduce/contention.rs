//! Whether other processes compete for this machine's cores while a cost is measured:
//! probes of one busy thread per core, run before and after the measured steps, and the share
//! of their ready time they spent waiting for a core (the scheduler's run delay,
//! `/proc/thread-self/schedstat`).
//!
//! Why probes and not the measured threads' own run delay: a step runs on the calling
//! thread and rayon's workers, one thread more than a 2-core machine has cores, and
//! idle workers spin (yielding) before they sleep, so the process keeps its own threads
//! waiting. On this 2-core EPYC, shared, at a priority that left the others little (a
//! new autogroup at nice -20), the steps' own share was 0.29–0.33 for FC-MNIST FPD and
//! 0.27–0.33 for SGD with 2 workers, 0.04 and 0.00 with 1, runs taken in turn: the
//! process's own doing, read as "other processes" and never kept. A probe's threads
//! are the only runnable ones of the process (the workers sleep, the caller waits on
//! the join), one per core, so any waiting they see is another process's.
//!
//! Why run delay and not the load average or others' CPU time: the load average lags by
//! a minute; others' CPU time counts the idle moments a low-priority process soaks up
//! without delaying anyone.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// How long each probe keeps every core busy: long enough for the scheduler to share
/// a core a few times (its slices are a few ms), short beside the steps it brackets.
pub const PROBE: Duration = Duration::from_millis(30);

/// Nanoseconds this thread has run and waited for a core.
fn this_thread() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = text.split_whitespace().map(|x| x.parse::<u64>());
    match (f.next(), f.next()) {
        (Some(Ok(ran)), Some(Ok(waited))) => Some((ran, waited)),
        _ => None,
    }
}

/// How long a probe first sleeps: rayon's idle workers spin, yielding, for a while
/// before they sleep, and a probe started right after a step competed with them (a
/// probe after 200 small parallel loops, at the priority above: waited 0.19 and 0.38
/// of its time; after a 5 ms pause, 0.12 and 0.05; alone, 0.16 and 0.11).
const SETTLE: Duration = Duration::from_millis(5);

/// One busy thread per core for `length`: what each ran and waited meanwhile (`None`
/// where the system does not say).
fn probe(length: Duration) -> Vec<Option<(u64, u64)>> {
    std::thread::sleep(SETTLE);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The counters start once every probe thread runs, so none counts the others'
    // start-up as waiting.
    let start = Arc::new(Barrier::new(cores));
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let before = this_thread()?;
                let t = Instant::now();
                let mut x = 0u64;
                while t.elapsed() < length {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                let after = this_thread()?;
                Some((after.0 - before.0, after.1 - before.1))
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().ok().flatten())
        .collect()
}

/// The probes of one measurement, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Probes {
    ran: u64,
    waited: u64,
    /// A probe thread whose counters could not be read.
    unknown: bool,
}

impl Probes {
    /// No probe yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one probe now (every core busy for [`PROBE`]) and adds it.
    pub fn sample(&mut self) {
        for t in probe(PROBE) {
            self.add(t);
        }
    }

    /// Adds one probe thread's running and waiting nanoseconds.
    fn add(&mut self, thread: Option<(u64, u64)>) {
        match thread {
            Some((ran, waited)) => {
                self.ran += ran;
                self.waited += waited;
            }
            None => self.unknown = true,
        }
    }

    /// The share (0 to 1) of their ready time the probes waited for a core, over all
    /// of them; `None` where the system did not say, or before any probe.
    pub fn waited_share(&self) -> Option<f64> {
        (!self.unknown && self.ran + self.waited > 0).then(|| waited_share(self.ran, self.waited))
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

    /// Probes add up as time, not as shares: a long quiet probe and a short busy one
    /// weigh by their lengths; one unreadable thread makes the whole unknown, and no
    /// probe says nothing (never "quiet").
    #[test]
    fn probes_sum_their_times_and_an_unknown_one_spoils_the_whole() {
        let mut p = Probes::new();
        assert_eq!(p.waited_share(), None);
        p.add(Some((90, 10)));
        p.add(Some((10, 90)));
        assert_eq!(p.waited_share(), Some(0.5));
        p.add(Some((800, 0)));
        assert_eq!(p.waited_share(), Some(0.1));
        p.add(None);
        assert_eq!(p.waited_share(), None);
    }

    /// One busy process per core beside the probe makes it wait (they share the cores
    /// about evenly, so about half of its ready time; more if the machine is busier
    /// still), while the process's own threads outside the probe (here: none busy)
    /// are not its business. Caught: a probe that counted nothing but running time, or
    /// read the whole process instead of its own threads.
    #[cfg(target_os = "linux")]
    #[test]
    fn other_processes_busy_on_every_core_are_seen() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut hogs: Vec<_> = (0..cores)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("sh")
            })
            .collect();
        // Let them start running.
        std::thread::sleep(Duration::from_millis(50));
        let mut p = Probes::new();
        for _ in 0..5 {
            p.sample();
        }
        for h in &mut hogs {
            let _ = h.kill();
            let _ = h.wait();
        }
        let share = p.waited_share().expect("schedstat on linux");
        assert!(share > 0.2, "{cores} busy processes, probes waited {share}");
        assert!(p.ran > 0, "{p:?}");
    }
}
