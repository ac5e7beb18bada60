//! `rbd reproduce` and `rbd tune`: flags into requests for the library.

use crate::cli::{ReproduceArgs, TuneArgs};
use crate::train_cmd::flag_error;
use anyhow::{anyhow, bail, Result};
use rbd::reproduce::campaign;
use rbd::reproduce::manifest::PlanOptions;
use rbd::reproduce::tune::{tune as run_tune, TuneRequest};
use rbd::reproduce::{reproduce as run_reproduce, Request};
use rbd::signals::StopFlag;
use rbd::train::config::resolve_schedule;
use rbd::train::kinds::PresetSource;
use rbd::train::{ConfigError, RunConfig, ScheduleSpec};

fn data_dir(given: &Option<std::path::PathBuf>) -> Result<std::path::PathBuf> {
    match given {
        Some(d) => Ok(d.clone()),
        None => rbd_datasets::default_data_dir().map_err(|e| anyhow!("{e}")),
    }
}

fn with_flags<T>(r: Result<T>) -> Result<T> {
    r.map_err(|e| match e.downcast::<ConfigError>() {
        Ok(c) => flag_error(c),
        Err(e) => e,
    })
}

/// Runs `rbd reproduce`; returns the exit code.
pub fn reproduce(args: &ReproduceArgs) -> Result<i32> {
    if args.artefact == "campaign" {
        return campaign(args);
    }
    for (given, flag) in [
        (args.status, "--status"),
        (args.hours.is_some(), "--hours"),
        (args.fit, "--fit"),
        (args.commit, "--commit"),
        (args.plan.is_some(), "--plan"),
    ] {
        if given {
            bail!("{flag} belongs to `rbd reproduce campaign`, not to one artefact");
        }
    }
    let req = Request {
        artefact: args.artefact.clone(),
        results: args.results.clone(),
        plan: PlanOptions {
            epochs: args.epochs,
            seeds: args.seeds,
            only: args.only.clone(),
            device: args.device,
            data_dir: data_dir(&args.data_dir)?,
        },
        dry_run: args.dry_run,
        summarize: args.summarize,
        check: args.check,
    };
    with_flags(run_reproduce(&req, &StopFlag::on_signals()))
}

/// Runs `rbd tune`; returns the exit code.
pub fn tune(args: &TuneArgs) -> Result<i32> {
    let schedule = resolve_schedule(
        &ScheduleSpec::single(args.optimizer),
        Some(1.0), // each trial sets its own rate
        args.model,
        &args.dataset,
        args.settings.directions.distribution,
        PresetSource::Paper,
    )
    .map_err(flag_error)?;
    let mut base = RunConfig::build(
        args.model,
        args.dataset.clone(),
        schedule,
        args.data.clone(),
        args.settings.clone(),
    );
    base.epochs = args.epochs;
    base.seed = args.seed;
    base.device = args.device;
    base.data_dir = data_dir(&args.data_dir)?;
    base.options.tuning_split = true;
    base.validate().map_err(flag_error)?;
    let req = TuneRequest {
        base,
        results: args.results.clone(),
    };
    match with_flags(run_tune(&req, &StopFlag::on_signals()))? {
        Some(r) => {
            let file = rbd::reproduce::manifest::tune_file(&req.results, &req.base);
            println!(
                "best rate: 2^{} (held-out loss {:.4}); written to {} and {}",
                r.best_exponent,
                r.trials
                    .iter()
                    .find(|t| t.exponent == r.best_exponent)
                    .map_or(f64::NAN, |t| t.held_out_loss),
                file.display(),
                req.results
                    .join("tune")
                    .join(rbd::reproduce::tune::README)
                    .display()
            );
            for (source, e) in &r.published {
                println!(
                    "published {source}: 2^{e} — {}",
                    if *e == r.best_exponent {
                        "confirmed"
                    } else {
                        "not confirmed"
                    }
                );
            }
            Ok(0)
        }
        None => {
            eprintln!(
                "stopped; the finished trials are kept: run the same command again to continue"
            );
            Ok(130)
        }
    }
}

/// Runs `rbd reproduce campaign`; returns the exit code.
fn campaign(args: &ReproduceArgs) -> Result<i32> {
    for (given, flag) in [
        (args.epochs.is_some(), "--epochs"),
        (args.seeds.is_some(), "--seeds"),
        (!args.only.is_empty(), "--only"),
        (args.summarize, "--summarize"),
        (args.check, "--check"),
    ] {
        if given {
            bail!("{flag}: a campaign's budgets are its plan's (edit reproduce/campaign.toml or give --plan FILE)");
        }
    }
    let plan = campaign::Plan::load(args.plan.as_deref())?;
    let opts = campaign::Options {
        results: args.results.clone(),
        data_dir: data_dir(&args.data_dir)?,
        device: args.device.unwrap_or(rbd_engine::DeviceChoice::Auto),
        fit_until: args
            .hours
            .filter(|_| args.fit)
            .map(|h| std::time::Instant::now() + std::time::Duration::from_secs_f64(h * 3600.0)),
    };
    if args.status || args.dry_run {
        let device = rbd_engine::Device::open(opts.device)?;
        let mut est = rbd::reproduce::estimate::Estimator::new(device.clone());
        let (lines, checks) = est.measured(|est| campaign::status(&plan, &opts, est))?;
        print!(
            "{}",
            campaign::status_text(
                &plan,
                &lines,
                &checks,
                &device.describe(),
                &est.describe_sources()
            )
        );
        return Ok(0);
    }
    if let Some(w) = campaign::lower_priority() {
        eprintln!("{w}");
    }
    let stop = StopFlag::on_signals();
    if let Some(h) = args.hours {
        campaign::arm_budget(&stop, h);
    }
    println!(
        "campaign — {} (nice 19{})",
        plan.title,
        args.hours
            .map(|h| format!(", for {h} h"))
            .unwrap_or_default()
    );
    let end = if args.commit {
        campaign::run(&plan, &opts, &stop, &mut campaign::GitCommit)?
    } else {
        campaign::run(&plan, &opts, &stop, &mut campaign::NoHook)?
    };
    match end {
        campaign::End::Complete => {
            println!("campaign: nothing runnable is left (see --status for blocked items)");
            Ok(0)
        }
        campaign::End::NothingFits(n) => {
            println!("campaign: {n} runs or searches left do not fit in the hours left (--fit); a longer session starts them");
            Ok(0)
        }
        campaign::End::BudgetSpent => {
            println!("campaign: the --hours budget is spent; a run in progress kept its checkpoint: run the same command again to continue");
            Ok(0)
        }
        campaign::End::Interrupted(sig) => {
            eprintln!(
                "campaign stopped by {}; the current run kept its checkpoint: run the same command again to continue",
                rbd::signals::signal_name(sig)
            );
            Ok(128 + sig)
        }
    }
}
