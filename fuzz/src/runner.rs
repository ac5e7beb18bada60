//! Runs the cases of one parser and holds each to the four properties: no panic, no
//! allocation past a bound proportional to the input, no case slower than a bound (a
//! watchdog aborts a hang, naming the case), and a refusal that names the file; plus
//! the target's own oracle (a valid file is accepted, an accepted file is read right).

use crate::alloc;
use crate::rng::Rng;
use crate::targets::{Case, Target, Verdict};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// Time bounds of one case.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A case using more CPU time than this is a finding.
    pub slow: Duration,
    /// A case slower than this is a hang: the process is aborted, naming the case.
    pub hang: Duration,
    /// Live bytes of the whole process past which a case is aborted the same way (an
    /// unbounded allocation must not take the machine before its case ends).
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            slow: Duration::from_secs(2),
            hang: Duration::from_secs(60),
            memory: 4 << 30,
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Run seed: with the parser's name and the case index it fixes each input.
    pub seed: u64,
    /// Index of the first case.
    pub first: u64,
    /// Number of cases.
    pub cases: u64,
    /// Time bounds.
    pub limits: Limits,
    /// A scratch directory (best on tmpfs) for the cases' files.
    pub scratch: PathBuf,
    /// Where each finding's input files are saved, if anywhere.
    pub save: Option<PathBuf>,
    /// Print a progress line to stderr this often, if at all.
    pub progress: Option<Duration>,
}

/// The property a case broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// The parser panicked.
    Panic,
    /// It allocated more than its bound.
    Memory,
    /// It ran longer than the slow bound.
    Slow,
    /// Its error does not name the file, or is a debug dump.
    Unclear,
    /// The target's oracle failed (a valid file refused, a corrupt one read wrong,
    /// a file written outside its directory).
    Wrong,
}

/// One broken property.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The case index (replay with `--case`).
    pub case: u64,
    /// Which property.
    pub problem: Problem,
    /// What happened.
    pub detail: String,
    /// The mutation that made the input.
    pub what: String,
    /// The input files.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Findings kept per problem (the rest are counted).
const KEPT: usize = 20;

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The parser.
    pub parser: String,
    /// Cases run.
    pub cases: u64,
    /// Of which unmutated valid files.
    pub valid: u64,
    /// Cases accepted.
    pub accepted: u64,
    /// Cases refused with an error.
    pub refused: u64,
    /// The first findings of each problem.
    pub findings: Vec<Finding>,
    /// Findings per problem, all of them.
    pub counts: BTreeMap<String, u64>,
    /// Distinct refusals (file path and digits normalised) and how often each came.
    pub errors: BTreeMap<String, u64>,
    /// The largest single allocation of any case, its input size and case.
    pub largest_alloc: (usize, usize, u64),
    /// The slowest case (CPU time) and its index.
    pub slowest: (Duration, u64),
    /// Wall time of the run.
    pub wall: Duration,
}

impl Report {
    /// Number of findings of every kind.
    pub fn finding_count(&self) -> u64 {
        self.counts.values().sum()
    }

    /// A multi-line account of the findings, for a failing test or the command line.
    pub fn describe_findings(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            s += &format!(
                "  {} case {} [{:?}]: {}\n    input: {}\n",
                self.parser,
                f.case,
                f.problem,
                f.detail,
                f.what.chars().take(300).collect::<String>()
            );
        }
        s
    }

    fn add(&mut self, f: Finding) {
        let n = self.counts.entry(format!("{:?}", f.problem)).or_default();
        *n += 1;
        if *n as usize <= KEPT {
            self.findings.push(f);
        }
    }
}

thread_local! {
    static IN_CASE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Routes panics inside a case to the runner (silently), others to the default hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(|c| c.get()) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Aborts the process when a case runs past the hang bound.
struct Watchdog {
    started_ns: Arc<AtomicU64>,
    case: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(parser: &str, seed: u64, limits: Limits, dir: PathBuf) -> Watchdog {
        let origin = Instant::now();
        let started_ns = Arc::new(AtomicU64::new(0));
        let case = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (s, c, d, parser) = (
            started_ns.clone(),
            case.clone(),
            done.clone(),
            parser.to_string(),
        );
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let start = s.load(Ordering::Relaxed);
                let now = origin.elapsed().as_nanos() as u64;
                let live = alloc::total_live();
                let why = if start != 0 && now.saturating_sub(start) > limits.hang.as_nanos() as u64
                {
                    format!("ran past {:?}: a hang", limits.hang)
                } else if start != 0 && live > limits.memory {
                    format!("holds {live} bytes, past the cap of {}", limits.memory)
                } else {
                    continue;
                };
                let case = c.load(Ordering::Relaxed);
                eprintln!(
                    "rbd-fuzz: {parser} case {case} {why}. Its files are in {}; \
                     replay with `rbd-fuzz --parser {parser} --seed {seed} --case {case}`",
                    dir.display(),
                );
                std::process::abort();
            }
        });
        Watchdog {
            started_ns,
            case,
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU time this thread has used: a case's cost on a shared machine, where wall time
/// also counts the time other processes held the cores (the watchdog's hang bound is
/// wall time).
fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the struct it is given.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
        }
    }
    // Elsewhere: wall time since the first call.
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// The case directory path with digits collapsed, for grouping refusals.
fn normalise(msg: &str, dir: &Path) -> String {
    let text = msg.replace(&dir.display().to_string(), "<dir>");
    let mut out = String::new();
    let mut in_digits = false;
    for ch in text.chars().take(400) {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(ch);
        }
    }
    out.chars().take(200).collect()
}

/// Debug dumps that are no message for a user.
const DEBUG_MARKERS: [&str; 3] = ["Custom {", "kind: ", "Os {"];

/// Generates case `index` of `target` under `seed`.
pub fn generate(target: &dyn Target, seed: u64, index: u64) -> Case {
    target.generate(&mut Rng::for_case(seed, target.name(), index))
}

/// Writes a case's files into `dir` (created empty).
pub fn write_case(case: &Case, dir: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in &case.files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// Runs cases `first .. first + cases` of `target`.
pub fn run(target: &dyn Target, opts: &Options) -> Report {
    assert!(
        alloc::installed(),
        "rbd-fuzz needs rbd_fuzz::alloc::Counting as the global allocator"
    );
    install_panic_hook();
    let name = target.name();
    let dir = opts
        .scratch
        .join(format!("{name}-{}-{}", opts.seed, opts.first));
    let watchdog = Watchdog::start(name, opts.seed, opts.limits, dir.clone());
    let mut report = Report {
        parser: name.to_string(),
        ..Report::default()
    };
    let wall = Instant::now();
    let origin = Instant::now();
    let mut last_progress = Instant::now();
    for index in opts.first..opts.first + opts.cases {
        if opts
            .progress
            .is_some_and(|every| last_progress.elapsed() >= every)
        {
            last_progress = Instant::now();
            eprintln!(
                "{name}: {} of {} cases in {:.0} s, {} findings",
                report.cases,
                opts.cases,
                wall.elapsed().as_secs_f64(),
                report.finding_count()
            );
        }
        let case = generate(target, opts.seed, index);
        if let Err(e) = write_case(&case, &dir) {
            panic!("cannot write the case files into {}: {e}", dir.display());
        }
        let input: usize = case.files.iter().map(|(_, b)| b.len()).sum();
        watchdog.case.store(index, Ordering::Relaxed);
        watchdog
            .started_ns
            .store(origin.elapsed().as_nanos().max(1) as u64, Ordering::Relaxed);
        let t = thread_cpu_time();
        IN_CASE.with(|c| c.set(true));
        alloc::reset();
        let verdict =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(&case, &dir)));
        let usage = alloc::usage();
        IN_CASE.with(|c| c.set(false));
        let took = thread_cpu_time().saturating_sub(t);
        watchdog.started_ns.store(0, Ordering::Relaxed);

        report.cases += 1;
        report.valid += case.valid as u64;
        let finding = |problem, detail: String| Finding {
            case: index,
            problem,
            detail,
            what: case.what.clone(),
            files: case.files.clone(),
        };
        let mut found = Vec::new();
        match verdict {
            Err(_) => {
                let msg = LAST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .unwrap_or_default();
                found.push(finding(Problem::Panic, format!("panicked: {msg}")));
            }
            Ok(Verdict::Accepted) => report.accepted += 1,
            Ok(Verdict::Wrong(why)) => found.push(finding(Problem::Wrong, why)),
            Ok(Verdict::Refused(msg)) => {
                report.refused += 1;
                *report.errors.entry(normalise(&msg, &dir)).or_default() += 1;
                let named = dir.join(&case.named).display().to_string();
                if case.valid {
                    found.push(finding(
                        Problem::Wrong,
                        format!("a valid file was refused: {msg}"),
                    ));
                } else if !target.names_input(&msg, &named) {
                    found.push(finding(
                        Problem::Unclear,
                        format!("the error does not name {}: {msg}", case.named),
                    ));
                } else if DEBUG_MARKERS.iter().any(|m| msg.contains(m)) {
                    found.push(finding(
                        Problem::Unclear,
                        format!("the error is a debug dump: {msg}"),
                    ));
                }
            }
        }
        let bound = target.alloc_bound(input);
        if usage.largest > bound || usage.peak > 4 * bound {
            found.push(finding(
                Problem::Memory,
                format!(
                    "largest allocation {} bytes, peak {} bytes, for {input} input bytes (bound {bound} per allocation, {} at peak)",
                    usage.largest,
                    usage.peak,
                    4 * bound
                ),
            ));
        }
        if usage.largest > report.largest_alloc.0 {
            report.largest_alloc = (usage.largest, input, index);
        }
        if took > report.slowest.0 {
            report.slowest = (took, index);
        }
        if took > opts.limits.slow {
            found.push(finding(Problem::Slow, format!("took {took:?}")));
        }
        for f in found {
            if let Some(save) = &opts.save {
                save_finding(save, name, &f);
            }
            report.add(f);
        }
    }
    report.wall = wall.elapsed();
    drop(watchdog);
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// Writes a finding's files and description under `save/PARSER-caseN/`.
fn save_finding(save: &Path, parser: &str, f: &Finding) {
    let dir = save.join(format!("{parser}-case{}", f.case));
    let _ = std::fs::create_dir_all(&dir);
    for (name, bytes) in &f.files {
        let path = dir.join(name);
        if let Some(p) = path.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        let _ = std::fs::write(path, bytes);
    }
    let _ = std::fs::write(
        dir.join("FINDING.txt"),
        format!("{:?}: {}\ninput: {}\n", f.problem, f.detail, f.what),
    );
}

/// A scratch directory on tmpfs where there is one (`/dev/shm`), else the temp dir.
pub fn default_scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("rbd-fuzz-{}", std::process::id()))
}
