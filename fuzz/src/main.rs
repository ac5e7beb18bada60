//! `rbd-fuzz`: runs many cases of one parser or all (see docs/fuzzing.md).

use clap::Parser;
use rbd_fuzz::runner::{self, default_scratch, Limits, Options};
use rbd_fuzz::targets::{self, Target, Verdict};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static ALLOC: rbd_fuzz::alloc::Counting = rbd_fuzz::alloc::Counting;

/// Structure-aware fuzzing of every parser of user files.
///
/// Each case is a valid file of the parser's format (IDX, CIFAR-10 batches and
/// archive, checkpoints, manifests, config.json, metrics, provenance, diverged and tune
/// records, sealed runs and their packs)
/// with structure-aware mutations: bit flips, cuts, length and header fields, huge
/// declared sizes, duplicated and missing keys, wrong types, non-finite numbers. A
/// case fails on a panic, an allocation past a bound proportional to its input, CPU
/// time past --slow-ms (a watchdog aborts past --hang-s of wall time or
/// --memory-cap-mib of live memory), an error that does not
/// name the file, or the parser's oracle (a valid file refused, a corrupt one read
/// wrong, a file written outside its place). Case i of a parser under a seed is the
/// same input on every machine: replay it with --case i.
///
/// The long run, 10^6 cases per parser:
///   nice -n 19 cargo run --release -p rbd-fuzz -- --cases 1000000
#[derive(Parser, Debug)]
#[command(name = "rbd-fuzz", version, verbatim_doc_comment)]
struct Args {
    /// Parser to fuzz (repeatable), or `all`; --list shows them.
    #[arg(long, default_value = "all")]
    parser: Vec<String>,
    /// Cases per parser.
    #[arg(long, default_value_t = 100_000)]
    cases: u64,
    /// Run seed (the CI test uses 0).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Index of the first case (to split a run over processes).
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Replay this one case: write its files under --save and print its verdict.
    #[arg(long)]
    case: Option<u64>,
    /// Where findings' input files are saved.
    #[arg(long, default_value = "fuzz-findings")]
    save: PathBuf,
    /// A case using more CPU time than this is a finding (milliseconds).
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
    /// A case slower than this aborts the run, naming it (seconds).
    #[arg(long, default_value_t = 60)]
    hang_s: u64,
    /// Live memory past which a case aborts the run, naming it (MiB).
    #[arg(long, default_value_t = 4096)]
    memory_cap_mib: usize,
    /// Address-space limit of the process (MiB; 0 for none): a backstop for memory
    /// the counting allocator does not see.
    #[arg(long, default_value_t = 16384)]
    memory_limit_mib: u64,
    /// Print a progress line to stderr every this many seconds (0: never).
    #[arg(long, default_value_t = 300)]
    progress_s: u64,
    /// Print this many of each parser's most frequent distinct errors.
    #[arg(long, default_value_t = 0)]
    errors: usize,
    /// List the parsers and exit.
    #[arg(long)]
    list: bool,
}

fn limit_memory(mib: u64) {
    #[cfg(unix)]
    if mib > 0 {
        let bytes = (mib << 20) as libc::rlim_t;
        let lim = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        // SAFETY: setrlimit with a valid pointer to an initialised struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) } != 0 {
            eprintln!("rbd-fuzz: could not limit the address space to {mib} MiB");
        }
    }
}

fn replay(target: &dyn Target, seed: u64, index: u64, save: &std::path::Path) -> ExitCode {
    let case = runner::generate(target, seed, index);
    let dir = save.join(format!("{}-case{index}", target.name()));
    if let Err(e) = runner::write_case(&case, &dir) {
        eprintln!("rbd-fuzz: cannot write {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    println!(
        "{} case {index} (seed {seed}): {}",
        target.name(),
        case.what
    );
    println!("files in {}", dir.display());
    match target.run(&case, &dir) {
        Verdict::Accepted => println!("accepted"),
        Verdict::Refused(e) => println!("refused: {e}"),
        Verdict::Wrong(w) => println!("WRONG: {w}"),
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for t in targets::all() {
            println!("{:<12} {}", t.name(), t.about());
        }
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&'static dyn Target> = if args.parser.iter().any(|p| p == "all") {
        targets::all()
    } else {
        let mut v = Vec::new();
        for p in &args.parser {
            match targets::by_name(p) {
                Some(t) => v.push(t),
                None => {
                    let names: Vec<&str> = targets::all().iter().map(|t| t.name()).collect();
                    eprintln!(
                        "rbd-fuzz: unknown parser '{p}' (expected all or one of {})",
                        names.join(", ")
                    );
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    limit_memory(args.memory_limit_mib);
    if let Some(index) = args.case {
        for t in chosen {
            replay(t, args.seed, index, &args.save);
        }
        return ExitCode::SUCCESS;
    }
    let mut failed = false;
    for t in chosen {
        let opts = Options {
            seed: args.seed,
            first: args.first,
            cases: args.cases,
            limits: Limits {
                slow: Duration::from_millis(args.slow_ms),
                hang: Duration::from_secs(args.hang_s),
                memory: args.memory_cap_mib << 20,
            },
            scratch: default_scratch(),
            save: Some(args.save.clone()),
            progress: Some(Duration::from_secs(args.progress_s)).filter(|d| !d.is_zero()),
        };
        let r = runner::run(t, &opts);
        println!(
            "{:<12} {} cases (seed {}, from {}): {} valid, {} accepted, {} refused ({} distinct errors); \
             findings {}; largest allocation {} B (input {} B, case {}); slowest {:.1} ms CPU (case {}); wall {:.1} s",
            r.parser,
            r.cases,
            args.seed,
            args.first,
            r.valid,
            r.accepted,
            r.refused,
            r.errors.len(),
            if r.counts.is_empty() {
                "none".to_string()
            } else {
                format!("{:?}", r.counts)
            },
            r.largest_alloc.0,
            r.largest_alloc.1,
            r.largest_alloc.2,
            r.slowest.0.as_secs_f64() * 1e3,
            r.slowest.1,
            r.wall.as_secs_f64()
        );
        if args.errors > 0 {
            let mut errs: Vec<(&String, &u64)> = r.errors.iter().collect();
            errs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (e, n) in errs.into_iter().take(args.errors) {
                println!("  {n:>8} × {e}");
            }
        }
        if r.finding_count() > 0 {
            failed = true;
            print!("{}", r.describe_findings());
            println!("  inputs saved under {}", args.save.display());
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
