//! How the cpu path runs an RBD step on this machine: the instruction set, whether
//! each direction entry is generated once (a block of directions kept between the
//! project and expand passes) or once per pass, and the block size. A plan changes
//! the speed, never a bit of a result: every plan sums the same terms in the order
//! `docs/random-directions.md` states (tests run one step under several plans and
//! compare bits).
//!
//! The plan in force ([`CpuPlan::current`]) is, in order of precedence:
//! 1. `RBD_CPU_PLAN` (`step=once|two-pass,block=<bytes, k/m suffix>,simd=<level>`, any
//!    subset; `heuristic` or `calibrate` to skip or redo the cached calibration);
//! 2. a calibration cached per CPU model in the user cache directory
//!    (`~/.cache/rbd/cpu-plan/<model>.txt`), made by a short measurement the first time a
//!    process needs a plan on that model (about a second);
//! 3. when the cache directory is unusable, the cache sizes read from sysfs.

use super::simd::Simd;
use crate::rng::Distribution;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

/// Environment variable forcing (part of) the plan.
pub const PLAN_ENV: &str = "RBD_CPU_PLAN";

/// How an RBD step (project, then expand with the coordinates) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepStrategy {
    /// Each entry generated once: blocks of directions kept in memory between the
    /// passes.
    GenerateOnce,
    /// Project, then expand: each entry generated twice, nothing kept.
    TwoPasses,
}

impl StepStrategy {
    /// `once` or `two-pass`.
    pub fn name(self) -> &'static str {
        match self {
            StepStrategy::GenerateOnce => "once",
            StepStrategy::TwoPasses => "two-pass",
        }
    }
    fn parse(s: &str) -> Option<StepStrategy> {
        match s {
            "once" | "generate-once" => Some(StepStrategy::GenerateOnce),
            "two-pass" | "two-passes" | "twopass" => Some(StepStrategy::TwoPasses),
            _ => None,
        }
    }
}

/// The cpu path's choices. Every plan gives bitwise the same results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuPlan {
    /// Instruction-set level.
    pub simd: Simd,
    /// The RBD step for the word-per-entry families (Gaussian, uniform, Bernoulli).
    pub step: StepStrategy,
    /// Bytes of directions a block keeps in [`StepStrategy::GenerateOnce`]: blocks of
    /// `k = block_bytes / (4·len)` directions, 1 ≤ k ≤ [`MAX_BLOCK_DIRS`].
    pub block_bytes: usize,
}

/// Most directions per block (bounds the accumulators of one project task).
pub const MAX_BLOCK_DIRS: usize = 16;

impl CpuPlan {
    /// The one plan every machine ran before plans were chosen per machine (tuned on an
    /// AVX-512 EPYC with 2 MiB of L2 per core): generate once in blocks of 4 MiB, at
    /// instruction-set level `simd`. Benchmarks measure the chosen plan against it.
    pub fn fixed_before_tuning(simd: Simd) -> CpuPlan {
        CpuPlan {
            simd,
            step: StepStrategy::GenerateOnce,
            block_bytes: 4 << 20,
        }
    }

    /// The strategy for a stream of `distribution`: packed signs always run two
    /// passes (regenerating a word costs about what reading a kept block back does).
    pub fn strategy(&self, distribution: Distribution) -> StepStrategy {
        match distribution {
            Distribution::Rademacher => StepStrategy::TwoPasses,
            _ => self.step,
        }
    }

    /// Directions per block for a compartment of `len` entries (`padded` to whole
    /// chunks of `chunk` entries).
    pub fn block_dirs(&self, len: usize, chunk: usize) -> usize {
        let padded = len.div_ceil(chunk).max(1) * chunk;
        (self.block_bytes / (4 * padded)).clamp(1, MAX_BLOCK_DIRS)
    }

    /// The plan in words: `avx2, step once (blocks of 1 MiB)`.
    pub fn describe(&self) -> String {
        let step = match self.step {
            StepStrategy::GenerateOnce => format!("once (blocks of {})", bytes(self.block_bytes)),
            StepStrategy::TwoPasses => "two-pass".into(),
        };
        format!("{}, step {step} (packed signs: two-pass)", self.simd.name())
    }

    /// The plan in the cache file's (and `RBD_CPU_PLAN`'s) form.
    pub fn to_spec(&self) -> String {
        format!(
            "simd={},step={},block={}",
            self.simd.name(),
            self.step.name(),
            self.block_bytes
        )
    }

    /// `self` with the fields a spec names replaced (`simd=`, `step=`, `block=`,
    /// comma-separated); an error names the field it cannot read.
    pub fn with_spec(mut self, spec: &str) -> Result<CpuPlan, String> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not key=value"))?;
            let value = value.trim();
            match key.trim() {
                "simd" => {
                    let s = Simd::parse(value)
                        .ok_or_else(|| format!("simd={value}: expected generic, avx2 or avx512"))?;
                    if !Simd::available().contains(&s) {
                        return Err(format!("simd={value}: this processor lacks it"));
                    }
                    self.simd = s;
                }
                "step" => {
                    self.step = StepStrategy::parse(value)
                        .ok_or_else(|| format!("step={value}: expected once or two-pass"))?
                }
                "block" => {
                    self.block_bytes = parse_bytes(value)
                        .filter(|&b| b >= 4)
                        .ok_or_else(|| format!("block={value}: expected bytes, e.g. 1m or 512k"))?
                }
                other => return Err(format!("unknown field '{other}' (simd, step, block)")),
            }
        }
        Ok(self)
    }

    /// The plan in force and why (resolved once per process; see the module docs).
    pub fn current() -> &'static ChosenPlan {
        static PLAN: OnceLock<ChosenPlan> = OnceLock::new();
        PLAN.get_or_init(choose)
    }
}

/// A plan and how it was chosen.
#[derive(Clone, Debug)]
pub struct ChosenPlan {
    /// The plan.
    pub plan: CpuPlan,
    /// Why: the source (forced, cached calibration, fresh calibration, cache sizes)
    /// with the figures behind it.
    pub why: String,
}

fn bytes(b: usize) -> String {
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.strip_suffix(['k', 'm']) {
        Some(n) if s.ends_with('k') => (n, 1 << 10),
        Some(n) => (n, 1 << 20),
        None => (s.as_str(), 1),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mult)
}

/// The processor as the cache key and logs name it, and its cache sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `/proc/cpuinfo`'s model name ("unknown" elsewhere).
    pub model: String,
    /// Per-core L2 bytes (sysfs), if known.
    pub l2: Option<usize>,
    /// L3 bytes (sysfs), if known.
    pub l3: Option<usize>,
    /// Logical processors.
    pub threads: usize,
}

impl Machine {
    /// This machine.
    pub fn detect() -> Machine {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            model,
            l2: cache_size(2),
            l3: cache_size(3),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The cache file's name: model, cache sizes, instruction set and threads, so a
    /// VM of another size or a processor of another kind calibrates afresh.
    pub fn key(&self, simd: Simd) -> String {
        let kib = |b: Option<usize>| b.map_or("na".to_string(), |b| format!("{}k", b >> 10));
        let model: String = self
            .model
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!(
            "{}-l2-{}-l3-{}-{}-{}t",
            model.trim_matches('-'),
            kib(self.l2),
            kib(self.l3),
            simd.name(),
            self.threads
        )
    }
}

/// Size of cpu0's unified or data cache of `level`, from sysfs.
fn cache_size(level: u32) -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    for e in dir.flatten() {
        let p = e.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).ok();
        if read("level").and_then(|l| l.trim().parse::<u32>().ok()) != Some(level) {
            continue;
        }
        if read("type").is_some_and(|t| t.trim() == "Instruction") {
            continue;
        }
        return read("size").and_then(|s| parse_bytes(s.trim()));
    }
    None
}

/// The plan from cache sizes alone: keep a block within half the L2 (the block is
/// written, then read back a pass later), and generate once only where a block of a
/// typical compartment (10^5 entries, 400 KB a direction) fits there.
pub fn heuristic(machine: &Machine, simd: Simd) -> CpuPlan {
    let l2 = machine.l2.unwrap_or(512 << 10);
    let block_bytes = (l2 / 2).max(256 << 10);
    CpuPlan {
        simd,
        step: if l2 >= 1 << 20 {
            StepStrategy::GenerateOnce
        } else {
            StepStrategy::TwoPasses
        },
        block_bytes,
    }
}

fn cache_file(machine: &Machine, simd: Simd) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(
        base.join("rbd")
            .join("cpu-plan")
            .join(format!("{}.txt", machine.key(simd))),
    )
}

/// The calibration of a cache file: (plan, the line of figures it was chosen from).
fn read_cached(path: &PathBuf, simd: Simd) -> Option<(CpuPlan, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let spec = lines.next()?;
    let base = CpuPlan {
        simd,
        step: StepStrategy::TwoPasses,
        block_bytes: 1 << 20,
    };
    let plan = base.with_spec(spec).ok()?;
    (plan.simd == simd).then(|| (plan, lines.next().unwrap_or("").to_string()))
}

fn choose() -> ChosenPlan {
    let machine = Machine::detect();
    let simd = Simd::detect();
    let forced = std::env::var(PLAN_ENV).unwrap_or_default();
    let forced = forced.trim();
    let path = cache_file(&machine, simd);
    let base = heuristic(&machine, simd);
    let mut plan_and_why = None;
    if forced != "heuristic" && forced != "calibrate" {
        if let Some((plan, figures)) = path.as_ref().and_then(|p| read_cached(p, simd)) {
            plan_and_why = Some((
                plan,
                format!(
                    "calibrated on this CPU model ({}), cached in {}: {figures}",
                    machine.model,
                    path.as_ref().expect("a path").display()
                ),
            ));
        }
    }
    if plan_and_why.is_none() && forced != "heuristic" {
        if let Some(p) = &path {
            let (plan, figures) = calibrate(base);
            let saved = save(p, &plan, &figures);
            plan_and_why = Some((
                plan,
                format!(
                    "calibrated now on {} ({figures}); {}",
                    machine.model,
                    match saved {
                        Ok(()) => format!("cached in {}", p.display()),
                        Err(e) => format!("not cached: {e}"),
                    }
                ),
            ));
        }
    }
    let (mut plan, mut why) = plan_and_why.unwrap_or_else(|| {
        (
            base,
            format!(
                "from the cache sizes (L2 {} per core, L3 {})",
                machine.l2.map_or("unknown".into(), bytes),
                machine.l3.map_or("unknown".into(), bytes)
            ),
        )
    });
    if !forced.is_empty() && forced != "heuristic" && forced != "calibrate" {
        match plan.with_spec(forced) {
            Ok(p) => {
                plan = p;
                why = format!("{PLAN_ENV}={forced} over: {why}");
            }
            Err(e) => eprintln!("note: {PLAN_ENV}={forced}: {e}; ignored"),
        }
    }
    ChosenPlan { plan, why }
}

fn save(path: &PathBuf, plan: &CpuPlan, figures: &str) -> Result<(), String> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Written aside and renamed: processes calibrating at once never see half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, format!("{}\n{figures}\n", plan.to_spec()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Measures the strategies and block sizes on a synthetic step (one compartment of
/// 2^17 entries, 32 directions, Threefry Gaussian), the best of three runs each, and
/// returns the fastest plan with its figures.
pub fn calibrate(base: CpuPlan) -> (CpuPlan, String) {
    use super::{project_expand_cpu_with, Bases, Compartment, Stream};
    let (n, dims) = (1usize << 17, 32);
    let comps = Compartment::whole(n, dims);
    let g: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 64.0).collect();
    let theta = vec![0.25f32; n];
    let mut out = vec![0f32; n];
    let time = |plan: CpuPlan, distribution: Distribution, out: &mut [f32]| {
        let stream = Stream {
            distribution,
            ..Stream::new(1)
        };
        let bases = Bases::new(stream, 0, &comps, 1e-3);
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            std::hint::black_box(project_expand_cpu_with(
                &plan, &bases, &g, -0.1, &theta, out, None,
            ));
            best = best.min(t.elapsed().as_secs_f64());
        }
        best
    };
    let mut figures = Vec::new();
    let two = CpuPlan {
        step: StepStrategy::TwoPasses,
        ..base
    };
    let mut best = (time(two, Distribution::Gaussian, &mut out), two);
    figures.push(format!("two-pass {:.1} ms", best.0 * 1e3));
    for block in [256usize << 10, 1 << 20, 4 << 20] {
        let p = CpuPlan {
            step: StepStrategy::GenerateOnce,
            block_bytes: block,
            ..base
        };
        let t = time(p, Distribution::Gaussian, &mut out);
        figures.push(format!("once/{} {:.1} ms", bytes(block), t * 1e3));
        if t < best.0 {
            best = (t, p);
        }
    }
    let plan = best.1;
    (
        plan,
        format!("Gaussian step, D = 2^17, d = 32: {}", figures.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> CpuPlan {
        CpuPlan {
            simd: Simd::Generic,
            step: StepStrategy::TwoPasses,
            block_bytes: 1 << 20,
        }
    }

    #[test]
    fn specs_round_trip_and_name_the_bad_field() {
        let p = plan().with_spec("step=once, block=512k").unwrap();
        assert_eq!(p.step, StepStrategy::GenerateOnce);
        assert_eq!(p.block_bytes, 512 << 10);
        assert_eq!(plan().with_spec(&p.to_spec()).unwrap(), p);
        assert!(plan().with_spec("block=2m").unwrap().block_bytes == 2 << 20);
        let e = plan().with_spec("step=fast").unwrap_err();
        assert!(e.contains("step=fast"), "{e}");
        let e = plan().with_spec("blocks=1m").unwrap_err();
        assert!(e.contains("blocks"), "{e}");
        let e = plan().with_spec("block=").unwrap_err();
        assert!(e.contains("block="), "{e}");
    }

    #[test]
    fn blocks_hold_whole_directions_within_the_bytes() {
        let p = CpuPlan {
            block_bytes: 1 << 20,
            ..plan()
        };
        // 122,570 entries pad to 30 chunks of 4096: 491,520 bytes a direction.
        assert_eq!(p.block_dirs(122_570, 4096), 2);
        assert_eq!(p.block_dirs(10_000_000, 4096), 1);
        assert_eq!(p.block_dirs(10, 4096), MAX_BLOCK_DIRS);
    }

    #[test]
    fn the_key_names_model_caches_and_instruction_set() {
        let m = Machine {
            model: "AMD EPYC 7B13 64-Core Processor".into(),
            l2: Some(512 << 10),
            l3: Some(32 << 20),
            threads: 2,
        };
        assert_eq!(
            m.key(Simd::Avx2),
            "AMD-EPYC-7B13-64-Core-Processor-l2-512k-l3-32768k-avx2-2t"
        );
    }
}
