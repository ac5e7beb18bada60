//! `rbd train`: turns the flags into a [`RunConfig`] (or the changes of a resumed run),
//! drives the [`Trainer`] with a progress bar, and maps outcomes to exit codes.

use crate::cli::TrainArgs;
use anyhow::{anyhow, bail, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use indicatif::{ProgressBar, ProgressStyle};
use rbd::distributed::Session;
use rbd::signals::{signal_name, StopFlag};
use rbd::train::config::resolve_schedule;
use rbd::train::metrics::{EpochMetrics, EpochTiming};
use rbd::train::oracle::EpochSums;
use rbd::train::{
    Claim, ConfigError, Observer, Outcome, ResumeChanges, RunConfig, ScheduleSpec, Trainer,
};
use std::path::{Path, PathBuf};

/// The flag of a configuration field: the `rbd train` flag whose id it is (its long
/// name may differ: `augment` is `--no-augment`), else the field in flag form.
pub fn flag(field: &str) -> String {
    let cli = <crate::cli::Cli as clap::CommandFactory>::command();
    let long = cli
        .find_subcommand("train")
        .and_then(|train| train.get_arguments().find(|a| a.get_id() == field))
        .and_then(|a| a.get_long().map(str::to_string));
    format!("--{}", long.unwrap_or_else(|| field.replace('_', "-")))
}

/// A configuration error as the user typed it: with the flag, not the field.
pub fn flag_error(e: ConfigError) -> anyhow::Error {
    anyhow!("{}: {}", flag(e.field), e.message)
}

/// Flags that may accompany --resume.
const RESUME_FLAGS: [&str; 8] = [
    "resume",
    "epochs",
    "device",
    "data_dir",
    "checkpoint_every",
    "quiet",
    "distributed",
    "collective_timeout",
];

/// The configuration the flags describe; nothing is loaded or written.
fn config(args: &TrainArgs, ranks: usize) -> Result<RunConfig> {
    let spec = args
        .schedule
        .clone()
        .unwrap_or_else(|| ScheduleSpec::single(args.optimizer));
    let schedule = resolve_schedule(
        &spec,
        args.lr,
        args.model,
        &args.dataset,
        args.settings.directions.distribution,
        args.lr_preset,
    )
    .map_err(flag_error)?;
    let mut cfg = RunConfig::build(
        args.model,
        args.dataset.clone(),
        schedule,
        args.data.clone(),
        args.settings.clone(),
    );
    cfg.epochs = args.epochs;
    cfg.seed = args.seed;
    cfg.device = args.device;
    cfg.data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => rbd_datasets::default_data_dir().map_err(|e| anyhow!("{e}"))?,
    };
    cfg.options = args.options.clone();
    if args.distributed {
        cfg.distributed = Some(rbd::train::team::DistributedSpec {
            ranks,
            rbd_base: args.rbd_base,
        });
    }
    cfg.validate().map_err(flag_error)?;
    Ok(cfg)
}

/// The default run directory: runs/MODEL-DATASET-SCHEDULE-seedN, with -2, -3, ...
/// appended while that is taken.
fn default_out(args: &TrainArgs, cfg: &RunConfig) -> PathBuf {
    let schedule: Vec<String> = cfg
        .schedule
        .iter()
        .map(|s| match s.until_epoch {
            Some(u) => format!("{}{u}", s.optimizer),
            None => s.optimizer.to_string(),
        })
        .collect();
    let base = format!(
        "{}-{}-{}-seed{}",
        args.model,
        cfg.dataset.short_name(),
        schedule.join("-"),
        cfg.seed
    );
    let runs = Path::new("runs");
    let taken =
        |p: &Path| p.exists() && std::fs::read_dir(p).map_or(true, |mut d| d.next().is_some());
    let mut out = runs.join(&base);
    let mut n = 2;
    while taken(&out) {
        out = runs.join(format!("{base}-{n}"));
        n += 1;
    }
    out
}

/// Progress bar and epoch lines.
struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl Observer for Progress {
    fn message(&mut self, text: &str) {
        println!("{text}");
    }

    fn epoch_started(&mut self, epoch: u64, epochs: u64, batches: usize, at_batch: usize) {
        if self.quiet {
            return;
        }
        let b = ProgressBar::new(batches as u64);
        b.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_prefix(format!("{}/{epochs}", epoch + 1));
        b.set_position(at_batch as u64);
        self.bar = Some(b);
    }

    fn step(&mut self, batch: usize, s: &EpochSums, seconds: f64) {
        if let Some(b) = &self.bar {
            b.set_position(batch as u64);
            b.set_message(format!(
                "loss {:.4} acc {:.2}% {:.0} img/s",
                s.mean_loss(),
                100.0 * s.accuracy(),
                s.seen as f64 / seconds.max(1e-9)
            ));
        }
    }

    fn epoch_finished(&mut self, row: &EpochMetrics, timing: &EpochTiming, epochs: u64) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        println!("{}", row.line(Some(timing), epochs));
    }
}

/// Flags of `rbd train` given on the command line (not defaults).
fn given(matches: &ArgMatches) -> Vec<String> {
    let cli = <crate::cli::Cli as clap::CommandFactory>::command();
    let train = cli
        .find_subcommand("train")
        .expect("the CLI has a train subcommand");
    train
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(str::to_string)
        .collect()
}

fn resume_changes(args: &TrainArgs, matches: &ArgMatches) -> Result<ResumeChanges> {
    let given = given(matches);
    let refused: Vec<String> = given
        .iter()
        .filter(|id| !RESUME_FLAGS.contains(&id.as_str()))
        .map(|id| flag(id))
        .collect();
    if !refused.is_empty() {
        bail!(
            "--resume continues a run as it was configured; {} cannot change it (with --resume only --epochs to extend the run, --device, --data-dir, --checkpoint-every and --quiet are accepted)",
            refused.join(", ")
        );
    }
    let has = |id: &str| given.iter().any(|g| g == id);
    Ok(ResumeChanges {
        epochs: has("epochs").then_some(args.epochs),
        device: has("device").then_some(args.device),
        data_dir: args.data_dir.clone(),
        checkpoint_every: has("checkpoint_every").then_some(args.options.checkpoint_every),
    })
}

/// Runs `rbd train`; returns the process exit code. Configuration errors from the
/// library name a field; they are reported with the flag.
pub fn run(args: &TrainArgs, matches: &ArgMatches) -> Result<i32> {
    let session = if args.distributed {
        Session::join_mpi(std::time::Duration::from_secs(args.collective_timeout))?
    } else {
        Session::single()
    };
    let result = train(args, matches, &session).map_err(|e| match e.downcast::<ConfigError>() {
        Ok(c) => flag_error(c),
        Err(e) => e,
    });
    if let Err(e) = &result {
        // A rank that fails alone must not leave the others waiting.
        session.abort_all(e);
    }
    result
}

fn train(args: &TrainArgs, matches: &ArgMatches, session: &Session) -> Result<i32> {
    let team = session.team();
    let observer: Box<dyn Observer> = if team.writes() {
        Box::new(Progress {
            quiet: args.quiet,
            bar: None,
        })
    } else {
        Box::new(rbd::train::Silent)
    };
    let stop = StopFlag::on_signals();
    let trainer = match &args.resume {
        Some(dir) => Trainer::resume_in(
            dir,
            &resume_changes(args, matches)?,
            observer,
            stop,
            team.clone(),
        )?,
        None => {
            let cfg = config(args, team.size())?;
            let (out, claim) = match &args.out {
                Some(out) if args.overwrite => (out.clone(), Claim::Overwrite),
                Some(out) => (out.clone(), Claim::New),
                None => (default_out(args, &cfg), Claim::New),
            };
            // Every rank trains into the directory rank 0 chose.
            let out = PathBuf::from(
                String::from_utf8_lossy(&team.from_rank0(out.to_string_lossy().as_bytes())?)
                    .into_owned(),
            );
            Trainer::start_in(cfg, &out, claim, observer, stop, team.clone()).map_err(|e| {
                match e.downcast_ref::<rbd::train::run_dir::Occupied>() {
                    Some(o) => anyhow!(
                        "{o}; continue it with --resume {}, replace it with --overwrite, or choose another directory",
                        o.path.display()
                    ),
                    None => e,
                }
            })?
        }
    };
    let dir = trainer.dir().to_path_buf();
    let distributed = trainer.config().distributed.is_some();
    let outcome = trainer.run()?;
    if distributed && matches!(outcome, Outcome::Finished) {
        // Every rank held this θ after the last epoch (compared through MPI).
        println!(
            "rank {} of {}: θ hash {:016x}",
            team.rank(),
            team.size(),
            team.last_theta_hash()
        );
    }
    match outcome {
        Outcome::Finished => {
            if team.writes() {
                println!("run directory: {}", dir.display());
            }
            Ok(0)
        }
        Outcome::Interrupted { signal, position } => {
            let resume = if distributed {
                format!("mpirun -n {} rbd train --distributed --resume", team.size())
            } else {
                "rbd train --resume".into()
            };
            if team.writes() {
                eprintln!(
                    "stopped by {} at epoch {} batch {} (step {}); checkpoint written to {}\ncontinue with: {resume} {}",
                    signal_name(signal),
                    position.epoch + 1,
                    position.batch,
                    position.step,
                    dir.join(rbd::train::trainer::CHECKPOINT).display(),
                    dir.display()
                );
            }
            Ok(128 + signal)
        }
    }
}
