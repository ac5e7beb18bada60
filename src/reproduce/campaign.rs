//! The campaign: the paper's remaining runs as one ordered plan (`reproduce/campaign.toml`,
//! data), worked down one run at a time at low priority, resumably on any machine.
//!
//! Nothing about progress is stored beside the plan: what is done, running or left is
//! read from the run directories under `results/` (and `results/tune/` for rates), so a
//! campaign stopped anywhere (a kill, a `--hours` budget, another machine) continues where
//! the disk says it stands. Each item names a manifest's runs and the budget they get here
//! (epochs, seeds), which every output states beside the paper's.

use super::estimate::{human, Estimator};
use super::manifest::{tune_file, Manifest, PlanOptions, PlannedRun, MAX_SEEDS};
use super::runner::{run_one, state, RunEnd, RunState};
use super::tune::{self, TuneRequest};
use crate::signals::StopFlag;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The campaign built into the binary.
pub const BUILT_IN: &str = include_str!("../../reproduce/campaign.toml");

/// Trials a search runs, for estimates: the coarse walk from the published rate
/// (typically 3–4 rates) and the two odd neighbours of the best.
const TRIALS_ESTIMATE: f64 = 6.0;

/// A campaign plan.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// What the campaign is for.
    pub title: String,
    /// Why the order and budgets are what they are.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The work, most important first.
    #[serde(rename = "item")]
    pub items: Vec<Item>,
}

/// One step of the plan: some runs of a manifest at a stated budget, or the rate search
/// (`rbd tune`) those runs wait for.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The manifest (`fig1`, `table1`, ...).
    pub artefact: String,
    /// Its runs (as `rbd reproduce --only`: an exact id, else a part of ids); all if empty.
    #[serde(default)]
    pub only: Vec<String>,
    /// Seeds 0 .. seeds (default: the manifest's, which is the paper's).
    #[serde(default)]
    pub seeds: Option<u64>,
    /// Epochs of each run (default: the manifest's, which is the paper's).
    #[serde(default)]
    pub epochs: Option<u64>,
    /// Instead of training the runs, tune the rate of those that wait for one
    /// (`lr = "tune"`), with this many epochs per trial.
    #[serde(default)]
    pub tune_epochs: Option<u64>,
    /// Why it is here, at this budget.
    pub why: String,
}

impl Plan {
    /// Parses a plan; `origin` names it in errors. Every item's manifest must exist and
    /// select at least one run.
    pub fn parse(text: &str, origin: &str) -> Result<Plan> {
        let plan: Plan =
            toml::from_str(text).with_context(|| format!("{origin}: not a campaign plan"))?;
        if plan.items.is_empty() {
            bail!("{origin}: no [[item]]");
        }
        for (i, item) in plan.items.iter().enumerate() {
            let at = || format!("{origin}: item {} ({})", i + 1, item.artefact);
            let m = Manifest::load(&item.artefact).with_context(at)?;
            for (field, v) in [
                ("seeds", item.seeds),
                ("epochs", item.epochs),
                ("tune_epochs", item.tune_epochs),
            ] {
                if v == Some(0) {
                    bail!("{}: {field} must be at least 1", at());
                }
            }
            if let Some(s) = item.seeds.filter(|s| *s > MAX_SEEDS) {
                bail!("{}: seeds = {s}: must be 1 to {MAX_SEEDS}", at());
            }
            let entries = m.entries().with_context(at)?;
            let selected = entries
                .iter()
                .filter(|e| {
                    item.only.is_empty() || item.only.iter().any(|o| selects(&entries, o, &e.id))
                })
                .collect::<Vec<_>>();
            if selected.is_empty() {
                bail!("{}: `only` = {:?} selects no run", at(), item.only);
            }
            if item.tune_epochs.is_some()
                && !selected.iter().any(|e| e.lr.as_deref() == Some("tune"))
            {
                bail!(
                    "{}: tune_epochs is set but no selected run has lr = \"tune\"",
                    at()
                );
            }
        }
        Ok(plan)
    }

    /// The built-in plan, or a plan file.
    pub fn load(file: Option<&Path>) -> Result<Plan> {
        match file {
            None => Plan::parse(BUILT_IN, "built-in campaign (reproduce/campaign.toml)"),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                Plan::parse(&text, &p.display().to_string())
            }
        }
    }
}

/// `--only`'s rule: an exact id selects that run alone, else a part of ids.
fn selects(entries: &[super::manifest::RunEntry], only: &str, id: &str) -> bool {
    id == only || (!entries.iter().any(|e| e.id == only) && id.contains(only))
}

/// Where and how the campaign runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// `results/`.
    pub results: PathBuf,
    /// Data sets.
    pub data_dir: PathBuf,
    /// The device of every run.
    pub device: rbd_engine::DeviceChoice,
    /// Start only what its estimate here says ends before this moment (`--fit`): a
    /// checkpoint does not outlive its machine, so a session on a lent machine starts
    /// only what it can finish and leaves the rest for a longer one.
    pub fit_until: Option<Instant>,
}

impl Item {
    /// The item's runs as `rbd reproduce` plans them.
    fn plan(&self, opts: &Options) -> Result<(Manifest, PlanOptions, Vec<PlannedRun>)> {
        let m = Manifest::load(&self.artefact)?;
        let po = PlanOptions {
            epochs: self.epochs,
            seeds: self.seeds,
            only: self.only.clone(),
            device: Some(opts.device),
            data_dir: opts.data_dir.clone(),
        };
        let runs = m.plan(&opts.results, &po)?;
        Ok((m, po, runs))
    }

    /// The item's budget beside the paper's: `100 epochs × 1 seed (paper: 100 × 3)`.
    pub fn budget(&self, m: &Manifest) -> String {
        let paper_e = m.paper_epochs();
        let paper_s = m.paper_seeds();
        if let Some(t) = self.tune_epochs {
            return format!("rate search, {t} epochs a trial (Table 4: the whole {paper_e})");
        }
        let e = self.epochs.unwrap_or(m.epochs);
        let s = self.seeds.unwrap_or(m.seeds);
        format!(
            "{e} epochs × {s} seed{} (paper: {paper_e} × {paper_s})",
            if s == 1 { "" } else { "s" }
        )
    }

    /// A short label: `fig1 resnet8-sgd, resnet8-rbd`.
    pub fn label(&self) -> String {
        let what = if self.only.is_empty() {
            "all runs".to_string()
        } else {
            self.only.join(", ")
        };
        if self.tune_epochs.is_some() {
            format!("tune {} {what}", self.artefact)
        } else {
            format!("{} {what}", self.artefact)
        }
    }
}

/// The rate searches a tune item runs: one per distinct search among its runs that wait
/// for a rate (every seed of a row reads seed 0's search).
fn tune_requests(item: &Item, runs: &[PlannedRun], opts: &Options) -> Vec<TuneRequest> {
    let mut out: Vec<TuneRequest> = Vec::new();
    for r in runs
        .iter()
        .filter(|r| r.entry.lr.as_deref() == Some("tune"))
    {
        let mut base = r.cfg.clone();
        base.seed = 0;
        base.epochs = item.tune_epochs.unwrap_or(base.epochs);
        base.options.tuning_split = true;
        let file = tune_file(&opts.results, &base);
        if !out.iter().any(|q| tune_file(&q.results, &q.base) == file) {
            out.push(TuneRequest {
                base,
                results: opts.results.clone(),
            });
        }
    }
    out
}

/// Where one planned run stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Finished (or diverged, which is final too).
    Done,
    /// Another process is training it now.
    Running { epochs_done: u64 },
    /// Waits for a rate search.
    Blocked,
    /// Not finished.
    Left { epochs_done: u64 },
}

fn progress(run: &PlannedRun) -> Result<Progress> {
    let st = state(run)?;
    Ok(match st {
        RunState::Done | RunState::Diverged(_) => Progress::Done,
        _ if run.blocked.is_some() => Progress::Blocked,
        RunState::New | RunState::Partial { .. } => {
            let epochs_done = match st {
                RunState::Partial { epochs_done } => epochs_done,
                _ => 0,
            };
            if crate::train::run_dir::in_use(&run.dir) {
                Progress::Running { epochs_done }
            } else {
                Progress::Left { epochs_done }
            }
        }
    })
}

/// Seconds left of a started or new run: its own measured epochs (the last five) where it
/// has some, else the estimate; evaluation from the estimate.
fn seconds_left(est: &mut Estimator, run: &PlannedRun, epochs_done: u64) -> Result<f64> {
    let p = est.parts(&run.cfg, epochs_done)?;
    let rows = crate::train::metrics::read_epochs_timed(&run.dir).unwrap_or_default();
    let recent: Vec<f64> = rows
        .iter()
        .rev()
        .take(5)
        .filter_map(|r| r.seconds)
        .collect();
    if recent.is_empty() || run.cfg.schedule.len() > 1 {
        return Ok(p.train + p.eval);
    }
    Ok(median(recent) * run.cfg.epochs.saturating_sub(epochs_done) as f64 + p.eval)
}

/// The median (the upper one of an even count). Recent epochs' wall times, not their
/// mean: an epoch that spanned a pause (`SIGSTOP` while benchmarking) or a restart took
/// minutes where its neighbours took seconds, and one such epoch in five made a 20-minute
/// remainder look like 1 h 44 min, so `--fit` left it for a longer session.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One line of the status view.
#[derive(Clone, Debug)]
pub struct ItemStatus {
    /// Position in the plan, from 1.
    pub index: usize,
    /// The item.
    pub item: Item,
    /// Its budget beside the paper's.
    pub budget: String,
    /// Runs (or searches) done, and in all.
    pub done: usize,
    /// In all.
    pub total: usize,
    /// `done`, `running`, `left`, `blocked`.
    pub state: &'static str,
    /// Seconds left, estimated here (blocked runs at their published or placeholder
    /// rate: the cost does not depend on the rate).
    pub seconds_left: f64,
}

/// A finished run's estimate here against what it measured.
#[derive(Clone, Debug)]
pub struct Check {
    /// `artefact/run-seedN`.
    pub run: String,
    /// Estimated training seconds here (evaluation excluded, as in the metrics).
    pub estimated: f64,
    /// Training seconds its metrics record.
    pub measured: f64,
    /// Its quickest epoch's seconds times its epochs: its time on a quiet machine as
    /// near as its own epochs tell (estimates are for a quiet machine; a run trained
    /// beside other work has slow stretches, and every epoch does the same work).
    pub quickest: f64,
    /// The machines that trained it.
    pub machines: Vec<String>,
    /// The commits of the binaries that trained it.
    pub commits: Vec<String>,
}

impl Check {
    /// Whether its time says anything about an estimate made on `here`: `None` if it
    /// was trained here, else why not.
    pub fn not_comparable(&self, here: &str) -> Option<&'static str> {
        if self.machines.iter().any(|m| m == NOT_RECORDED) {
            Some("machine not recorded")
        } else if self
            .machines
            .iter()
            .any(|m| m != here && !crate::machine::is_without_width_of(m, here))
        {
            Some("another machine: not comparable")
        } else if self.machines.iter().any(|m| m != here) {
            Some("this model, vector width not recorded: maybe another kind")
        } else {
            None
        }
    }
}

/// What a stretch of a run names for its machine where provenance has none.
const NOT_RECORDED: &str = "not recorded";

/// The status of every item, and the estimate checks of finished runs.
pub fn status(
    plan: &Plan,
    opts: &Options,
    est: &mut Estimator,
) -> Result<(Vec<ItemStatus>, Vec<Check>)> {
    let mut lines = Vec::new();
    let mut checks = Vec::new();
    for (i, item) in plan.items.iter().enumerate() {
        let (m, _, runs) = item
            .plan(opts)
            .with_context(|| format!("item {} ({})", i + 1, item.label()))?;
        let budget = item.budget(&m);
        if item.tune_epochs.is_some() {
            let reqs = tune_requests(item, &runs, opts);
            let mut done = 0;
            let mut left = 0.0;
            for q in &reqs {
                if tune_file(&q.results, &q.base).exists() {
                    done += 1;
                } else {
                    left += TRIALS_ESTIMATE * est.seconds(&q.base, 0)?;
                }
            }
            lines.push(ItemStatus {
                index: i + 1,
                item: item.clone(),
                budget,
                done,
                total: reqs.len(),
                state: if done == reqs.len() { "done" } else { "left" },
                seconds_left: left,
            });
            continue;
        }
        let (mut done, mut running, mut blocked, mut left) = (0, 0, 0, 0.0);
        for r in &runs {
            match progress(r)? {
                Progress::Done => {
                    done += 1;
                    let rows = crate::train::metrics::read_epochs_timed(&r.dir)?;
                    let rows = &rows[..rows.len().min(r.cfg.epochs as usize)];
                    let (mut machines, mut commits): (Vec<String>, Vec<String>) = (vec![], vec![]);
                    for s in crate::train::trainer::stretches(&r.dir) {
                        let name = s.machine.unwrap_or_else(|| NOT_RECORDED.into());
                        if !machines.contains(&name) {
                            machines.push(name);
                        }
                        if !commits.contains(&s.commit) {
                            commits.push(s.commit);
                        }
                    }
                    let epochs: Option<Vec<f64>> = rows.iter().map(|row| row.seconds).collect();
                    if let (true, Some(epochs)) = (rows.len() as u64 == r.cfg.epochs, epochs) {
                        checks.push(Check {
                            run: format!(
                                "{}/{}",
                                m.name,
                                r.dir
                                    .file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default()
                            ),
                            estimated: est.parts(&r.cfg, 0)?.train,
                            measured: epochs.iter().sum(),
                            quickest: epochs.iter().copied().fold(f64::INFINITY, f64::min)
                                * epochs.len() as f64,
                            machines,
                            commits,
                        });
                    }
                }
                Progress::Running { epochs_done } => {
                    running += 1;
                    left += seconds_left(est, r, epochs_done)?;
                }
                Progress::Blocked => {
                    blocked += 1;
                    left += est.seconds(&r.cfg, 0)?;
                }
                Progress::Left { epochs_done } => left += seconds_left(est, r, epochs_done)?,
            }
        }
        let state = if done == runs.len() {
            "done"
        } else if running > 0 {
            "running"
        } else if blocked > 0 && done + blocked == runs.len() {
            "blocked"
        } else {
            "left"
        };
        lines.push(ItemStatus {
            index: i + 1,
            item: item.clone(),
            budget,
            done,
            total: runs.len(),
            state,
            seconds_left: left,
        });
    }
    Ok((lines, checks))
}

/// The status view as text; `costs` says where the step costs came from.
pub fn status_text(
    plan: &Plan,
    lines: &[ItemStatus],
    checks: &[Check],
    device: &str,
    costs: &str,
) -> String {
    use std::fmt::Write as _;
    let mut t = format!("campaign — {}\n", plan.title);
    let _ = writeln!(
        t,
        "machine: {}; device: {device}; hours left are estimated here for a quiet machine (steps, data loading and evaluation measured on this machine; a started run from its own last epochs)",
        crate::machine::describe()
    );
    let _ = writeln!(t, "{costs}");
    let w = lines
        .iter()
        .map(|l| l.item.label().len())
        .max()
        .unwrap_or(0)
        .max(24);
    let bw = lines
        .iter()
        .map(|l| l.budget.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let _ = writeln!(
        t,
        "{:>3}  {:<w$}  {:<bw$}  {:>7}  {:<8}  {:>12}",
        "#", "item", "budget", "runs", "state", "left here"
    );
    let mut total = 0.0;
    for l in lines {
        total += l.seconds_left;
        let _ = writeln!(
            t,
            "{:>3}  {:<w$}  {:<bw$}  {:>7}  {:<8}  {:>12}",
            l.index,
            l.item.label(),
            l.budget,
            format!("{}/{}", l.done, l.total),
            l.state,
            if l.seconds_left > 0.0 {
                human(l.seconds_left)
            } else {
                "–".into()
            }
        );
    }
    let (d, r, b, left) = lines.iter().fold((0, 0, 0, 0), |acc, l| match l.state {
        "done" => (acc.0 + 1, acc.1, acc.2, acc.3),
        "running" => (acc.0, acc.1 + 1, acc.2, acc.3),
        "blocked" => (acc.0, acc.1, acc.2 + 1, acc.3),
        _ => (acc.0, acc.1, acc.2, acc.3 + 1),
    });
    let _ = writeln!(
        t,
        "{d} items done, {r} running, {left} left, {b} blocked; {} left here",
        human(total)
    );
    if !checks.is_empty() {
        t += &checks_text(checks, &crate::machine::describe());
    }
    t
}

/// The finished runs' estimates against their measured training time: in all, and as
/// their quickest epoch times their epochs (which leaves out epochs slowed by other
/// work).
pub fn checks_text(checks: &[Check], here: &str) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(t, "\nfinished runs: training time estimated here (quiet machine) against what their metrics measured (evaluation excluded); \"quickest × n\" is the run's quickest epoch times its epochs");
    let rw = checks
        .iter()
        .map(|c| c.run.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let _ = writeln!(
        t,
        "{:<rw$}  {:>12}  {:>12}  {:>7}  {:>14}  {:>7}  trained on (commit)",
        "run", "estimated", "measured", "error", "quickest × n", "error"
    );
    let err = |e: f64, m: f64| format!("{:+.0}%", 100.0 * (e - m) / m.max(1e-9));
    for c in checks {
        let _ = writeln!(
            t,
            "{:<rw$}  {:>12}  {:>12}  {:>7}  {:>14}  {:>7}  {} ({}){}",
            c.run,
            human(c.estimated),
            human(c.measured),
            err(c.estimated, c.measured),
            human(c.quickest),
            err(c.estimated, c.quickest),
            c.machines.join("; "),
            c.commits.join(", "),
            c.not_comparable(here)
                .map(|w| format!(" [{w}]"))
                .unwrap_or_default()
        );
    }
    t
}

/// How a campaign session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Nothing runnable is left (blocked runs may remain).
    Complete,
    /// What is left (this many runs or searches) does not fit in the hours (`--fit`).
    NothingFits(usize),
    /// The `--hours` budget was spent; the current run kept its checkpoint.
    BudgetSpent,
    /// Stopped by this signal.
    Interrupted(i32),
}

/// The pseudo-signal a spent `--hours` budget raises on the stop flag.
pub const BUDGET_SIGNAL: i32 = 14;

/// Sets `stop` once `hours` have passed (a run then stops after its step with a
/// checkpoint, as on Ctrl-C).
pub fn arm_budget(stop: &StopFlag, hours: f64) {
    let stop = stop.clone();
    let deadline = Instant::now() + Duration::from_secs_f64(hours * 3600.0);
    std::thread::spawn(move || {
        while Instant::now() < deadline {
            std::thread::sleep(
                Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
        stop.request(BUDGET_SIGNAL);
    });
}

/// Lowers this process's priority (nice 19), so the campaign yields the machine to
/// anything else; threads started later inherit it. Returns a warning where nice alone
/// does not yield to other sessions.
///
/// Why the autogroup: with Linux's `sched_autogroup_enabled`, each session is one
/// scheduling group and groups share the cores equally; a thread's nice counts only
/// inside its group. A campaign started with `setsid` at nice 19 still took half of
/// this 2-core machine from the builds of another session (its probes waited up to 60%
/// of the time). So a campaign that leads its own session also lowers its group's nice
/// (`/proc/self/autogroup`, which any process may lower); one inside a terminal's
/// session leaves the terminal's group alone and says how to start it instead.
pub fn lower_priority() -> Option<String> {
    #[cfg(unix)]
    // SAFETY: setpriority on this process only changes its scheduling priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
    #[cfg(target_os = "linux")]
    {
        let enabled = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled")
            .is_ok_and(|t| t.trim() == "1");
        if !enabled {
            return None;
        }
        // SAFETY: getsid(0) and getpid() only read this process's ids.
        let leads_session = unsafe { libc::getsid(0) == libc::getpid() };
        if leads_session {
            if std::fs::write("/proc/self/autogroup", "19").is_err() {
                return Some("warning: could not lower this session's scheduling group (/proc/self/autogroup): the campaign competes with other sessions as an equal".into());
            }
        } else {
            return Some("note: this kernel schedules each session as one group, so nice 19 yields only to this terminal's own processes; to yield to everything, start the campaign in its own session: setsid rbd reproduce campaign …".into());
        }
    }
    None
}

/// Called after each finished run or search with the results folder it changed.
pub trait Finished {
    /// `what` finished; `folder` (under `results/`) holds its files.
    fn finished(&mut self, what: &str, folder: &Path);
}

/// Works down the plan: each item's runs in order, skipping what is done or running
/// elsewhere, starting or resuming the rest; after each finished run, its artefact's
/// summary is rewritten and `hook` is told. Returns how it ended.
pub fn run(plan: &Plan, opts: &Options, stop: &StopFlag, hook: &mut dyn Finished) -> Result<End> {
    let device = rbd_engine::Device::open(opts.device)?;
    let mut fit = opts
        .fit_until
        .map(|until| (until, Estimator::new(device.clone())));
    let mut unfitted = 0;
    let mut pace = Pace::default();
    let stopped = StoppedClock::start();
    let ended = |sig: i32| {
        if sig == BUDGET_SIGNAL {
            End::BudgetSpent
        } else {
            End::Interrupted(sig)
        }
    };
    for (i, item) in plan.items.iter().enumerate() {
        if let Some(sig) = stop.requested() {
            return Ok(ended(sig));
        }
        // Planned when reached: an earlier rate search may have unblocked these runs.
        let (m, _, runs) = item
            .plan(opts)
            .with_context(|| format!("item {} ({})", i + 1, item.label()))?;
        let tag = format!("[campaign {}/{}]", i + 1, plan.items.len());
        if item.tune_epochs.is_some() {
            for q in tune_requests(item, &runs, opts) {
                let file = tune_file(&q.results, &q.base);
                if file.exists() {
                    continue;
                }
                let mut estimate = None;
                if let Some((until, est)) = fit.as_mut() {
                    let need = TRIALS_ESTIMATE * est.seconds(&q.base, 0)?;
                    if let Some(why) = does_not_fit(need, &pace, *until) {
                        println!("{tag} {}: rate search {why}", item.label());
                        unfitted += 1;
                        continue;
                    }
                    estimate = Some(need);
                }
                let started = (Instant::now(), stopped.total());
                println!(
                    "{tag} {} — {} — {}",
                    item.label(),
                    item.budget(&m),
                    item.why
                );
                match tune::tune(&q, stop)? {
                    Some(r) => {
                        if let Some(e) = estimate {
                            pace.add(e, stopped.running_since(started).as_secs_f64());
                        }
                        println!("{tag} tuned: 2^{} ({})", r.best_exponent, file.display());
                        hook.finished(
                            &format!("rbd tune for {} ({})", item.label(), file.display()),
                            &opts.results.join("tune"),
                        );
                    }
                    None => return Ok(ended(stop.requested().unwrap_or(BUDGET_SIGNAL))),
                }
            }
            continue;
        }
        let mut announced = false;
        for r in &runs {
            let mut estimate = None;
            match progress(r)? {
                Progress::Done | Progress::Running { .. } => continue,
                Progress::Blocked => {
                    println!(
                        "{tag} {} seed {}: blocked: {}",
                        r.entry.id,
                        r.seed,
                        r.blocked.as_deref().unwrap_or("")
                    );
                    continue;
                }
                Progress::Left { epochs_done } => {
                    if let Some((until, est)) = fit.as_mut() {
                        let need = seconds_left(est, r, epochs_done)?;
                        if let Some(why) = does_not_fit(need, &pace, *until) {
                            println!("{tag} {} seed {}: {why}", r.entry.id, r.seed);
                            unfitted += 1;
                            continue;
                        }
                        estimate = Some(need);
                    }
                }
            }
            if !announced {
                println!(
                    "{tag} {} — {} — {}",
                    item.label(),
                    item.budget(&m),
                    item.why
                );
                announced = true;
            }
            let prefix = format!("{tag} [{} seed {}]", r.entry.id, r.seed);
            let started = (Instant::now(), stopped.total());
            let end = run_one(&r.cfg, &r.dir, &prefix, stop)?;
            if let RunEnd::Interrupted(sig) = end {
                return Ok(ended(sig));
            }
            if let Some(e) = estimate {
                let took = stopped.running_since(started).as_secs_f64();
                let paused = (stopped.total() - started.1).as_secs_f64();
                pace.add(e, took);
                println!(
                    "{prefix} took {}{} against {} estimated for a quiet machine; --fit now scales estimates by {:.2}",
                    human(took),
                    if paused > 0.0 {
                        format!(" (not counting {} stopped)", human(paused))
                    } else {
                        String::new()
                    },
                    human(e),
                    pace.factor()
                );
            }
            super::summarize(&m, &opts.results, &device)?;
            hook.finished(
                &format!(
                    "{} {} seed {} ({})",
                    m.name,
                    r.entry.id,
                    r.seed,
                    item.budget(&m)
                ),
                &opts.results.join(&m.name),
            );
        }
    }
    Ok(if unfitted > 0 {
        End::NothingFits(unfitted)
    } else {
        End::Complete
    })
}

/// How fast this campaign's own runs and searches went against their estimates (which
/// are for a quiet machine): `--fit` scales the next estimates by it, so that a machine
/// shared with other work, or with other guests (steal time), starts only what still
/// ends in time. Never below 1: a run that beat its estimate says little about the next.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pace {
    estimated: f64,
    took: f64,
}

impl Pace {
    /// Adds one finished run or search: its estimate when it started, and its wall time.
    pub fn add(&mut self, estimated: f64, took: f64) {
        if estimated.is_finite() && took.is_finite() && estimated > 0.0 && took >= 0.0 {
            self.estimated += estimated;
            self.took += took;
        }
    }

    /// What estimates are scaled by: their wall time over their estimates, summed over
    /// what finished (so long runs weigh most), at least 1; 1 before anything finished.
    pub fn factor(&self) -> f64 {
        if self.estimated > 0.0 {
            (self.took / self.estimated).max(1.0)
        } else {
            1.0
        }
    }
}

/// Time this process spent stopped (`SIGSTOP`, as `pause` does while someone benchmarks):
/// a thread wakes every [`TICK`]; a wake-up later than [`STOP_GAP`] means the whole
/// process stood still for the excess. `--fit`'s pace counts a run's wall time less this,
/// so a pause to measure something does not make the machine look slow.
pub struct StoppedClock {
    nanos: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// How often the stopped clock's thread wakes.
const TICK: Duration = Duration::from_millis(200);
/// A wake-up this late counts as a stop (a nice-19 thread on a busy machine is woken
/// within tens of milliseconds).
const STOP_GAP: Duration = Duration::from_secs(2);

impl StoppedClock {
    /// Starts the ticking thread (it lives as long as the process).
    pub fn start() -> StoppedClock {
        let nanos = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let n = nanos.clone();
        std::thread::spawn(move || loop {
            let t = Instant::now();
            std::thread::sleep(TICK);
            let stood = stopped_for(t.elapsed());
            n.fetch_add(
                stood.as_nanos() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        });
        StoppedClock { nanos }
    }

    /// Stopped time since [`StoppedClock::start`].
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Wall time since `since` (an instant and [`StoppedClock::total`] then), less the
    /// time stopped in between.
    pub fn running_since(&self, since: (Instant, Duration)) -> Duration {
        since
            .0
            .elapsed()
            .saturating_sub(self.total().saturating_sub(since.1))
    }
}

/// The stop inside one tick that took `gap` of wall time: the excess over the tick,
/// counted only beyond [`STOP_GAP`].
fn stopped_for(gap: Duration) -> Duration {
    if gap > STOP_GAP {
        gap - TICK
    } else {
        Duration::ZERO
    }
}

/// Why a run whose estimate here is `estimate` seconds is not started before `until`
/// at `pace`, or `None` if it fits.
fn does_not_fit(estimate: f64, pace: &Pace, until: Instant) -> Option<String> {
    let have = until
        .saturating_duration_since(Instant::now())
        .as_secs_f64();
    let need = estimate * pace.factor();
    (need > have).then(|| {
        let scaled = if pace.factor() > 1.0 {
            format!(
                " ({} on a quiet machine × {:.2}, the pace of this campaign's finished runs)",
                human(estimate),
                pace.factor()
            )
        } else {
            String::new()
        };
        format!(
            "not started: needs about {}{scaled} here, {} of --hours left (--fit: a checkpoint does not outlive its machine; left for a longer session)",
            human(need),
            human(have)
        )
    })
}

/// Commits a finished run's results folder with git (never checkpoints: `.gitignore`
/// keeps `*.safetensors` out), so a hard stop loses no finished result.
pub struct GitCommit;

impl Finished for GitCommit {
    fn finished(&mut self, what: &str, folder: &Path) {
        let ok = std::process::Command::new("git")
            .arg("add")
            .arg("--")
            .arg(folder)
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new("git")
                .args(["commit", "-q", "-m"])
                .arg(format!("results: {what}, by `rbd reproduce campaign`"))
                .arg("--")
                .arg(folder)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "warning: could not commit {} with git; commit it by hand",
                folder.display()
            );
        }
    }
}

/// Does nothing after a finished run.
pub struct NoHook;

impl Finished for NoHook {
    fn finished(&mut self, _: &str, _: &Path) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed plan parses, and every item names a manifest and runs that exist.
    #[test]
    fn the_built_in_plan_is_valid() {
        let plan = Plan::load(None).unwrap();
        assert!(plan.items.len() > 5);
        // Every rate search comes before the training items of its runs.
        for (i, item) in plan.items.iter().enumerate() {
            if item.tune_epochs.is_some() {
                let later_train = plan.items[i + 1..]
                    .iter()
                    .any(|t| t.artefact == item.artefact && t.tune_epochs.is_none());
                assert!(
                    later_train,
                    "item {}: a search with nothing after it",
                    i + 1
                );
            }
        }
    }

    #[test]
    fn an_item_with_more_seeds_than_a_plan_takes_is_refused_at_once() {
        // Found by rbd-fuzz (campaign): seeds = 2^40 was accepted, and the campaign
        // stopped only on reaching the item, after the items before it had run.
        let text =
            "title = \"t\"\n[[item]]\nartefact = \"fig1\"\nseeds = 1099511627776\nwhy = \"w\"\n";
        let e = format!("{:#}", Plan::parse(text, "c.toml").unwrap_err());
        assert_eq!(
            e,
            "c.toml: item 1 (fig1): seeds = 1099511627776: must be 1 to 1000"
        );
        let ok = text.replace("1099511627776", "1000");
        assert_eq!(
            Plan::parse(&ok, "c.toml").unwrap().items[0].seeds,
            Some(1000)
        );
    }

    /// `--fit`'s pace: wall time over estimates summed (a long slow run outweighs a short
    /// quick one), never below 1, 1 before anything finished; nonsense is ignored.
    /// Caught: a pace that averaged ratios, let a quick run shrink the estimates, or
    /// turned NaN on a zero estimate.
    #[test]
    fn the_pace_sums_times_and_never_shrinks_an_estimate() {
        let mut p = Pace::default();
        assert_eq!(p.factor(), 1.0);
        p.add(100.0, 50.0);
        assert_eq!(p.factor(), 1.0);
        p.add(1000.0, 1900.0);
        // (50 + 1900) / (100 + 1000), not the mean of 0.5 and 1.9.
        assert!((p.factor() - 1950.0 / 1100.0).abs() < 1e-12, "{p:?}");
        let before = p;
        p.add(0.0, 10.0);
        p.add(f64::NAN, 10.0);
        p.add(10.0, f64::INFINITY);
        assert_eq!(p, before);
    }

    /// A stop shows as one late wake-up of the clock's thread: counted beyond the tick,
    /// and only past the threshold (scheduling delays are not stops). Caught: counting
    /// every tick's jitter, or the whole gap including the tick itself.
    #[test]
    fn a_late_tick_counts_as_stopped_time() {
        assert_eq!(stopped_for(TICK), Duration::ZERO);
        assert_eq!(
            stopped_for(TICK + Duration::from_millis(900)),
            Duration::ZERO
        );
        assert_eq!(
            stopped_for(Duration::from_secs(60) + TICK),
            Duration::from_secs(60)
        );
    }

    /// The remaining time of a started run comes from its recent epochs' median: one
    /// epoch that spanned a pause does not inflate it. Caught: the mean (the campaign
    /// skipped a 20-minute remainder as 1 h 44 min after a benchmark pause).
    #[test]
    fn a_paused_epoch_does_not_inflate_the_remaining_time() {
        assert_eq!(median(vec![14.0, 96.0, 13.0, 77.0, 14.0]), 14.0);
        assert_eq!(median(vec![3.0]), 3.0);
        assert_eq!(median(vec![2.0, 1.0]), 2.0);
    }

    /// Runs recorded before machine names carried the vector width are this model "maybe
    /// another kind", not another machine, and never this machine outright. Caught: an
    /// AVX2 run taken for this AVX-512 machine's (one model name covers both).
    #[test]
    fn a_run_recorded_without_a_vector_width_is_marked_as_such() {
        let here = crate::machine::describe();
        let check = |machines: Vec<String>| Check {
            run: "a/b-seed0".into(),
            estimated: 1.0,
            measured: 1.0,
            quickest: 1.0,
            machines,
            commits: vec![],
        };
        let other = "Other CPU, 2 cores, avx2".to_string();
        assert_eq!(check(vec![here.clone()]).not_comparable(&here), None);
        assert_eq!(
            check(vec![other.clone()]).not_comparable(&here),
            Some("another machine: not comparable")
        );
        assert_eq!(
            check(vec![NOT_RECORDED.into()]).not_comparable(&here),
            Some("machine not recorded")
        );
        #[cfg(target_arch = "x86_64")]
        {
            let old = here.rsplit_once(", ").unwrap().0.to_string();
            assert!(old.ends_with(" cores"), "{old}");
            assert_eq!(
                check(vec![old.clone(), here.clone()]).not_comparable(&here),
                Some("this model, vector width not recorded: maybe another kind")
            );
            assert_eq!(
                check(vec![old, other]).not_comparable(&here),
                Some("another machine: not comparable")
            );
        }
    }

    /// A run that fits at a quiet machine's estimate no longer fits at a slower pace,
    /// and the reason names both figures.
    #[test]
    fn a_slow_pace_keeps_a_run_that_would_no_longer_end_in_time() {
        let until = Instant::now() + Duration::from_secs(1000);
        let quiet = Pace::default();
        assert_eq!(does_not_fit(800.0, &quiet, until), None);
        let mut slow = Pace::default();
        slow.add(600.0, 900.0);
        let why = does_not_fit(800.0, &slow, until).expect("1200 s > 1000 s");
        assert!(why.contains("20 min 0 s"), "{why}");
        assert!(
            why.contains("13 min 20 s on a quiet machine × 1.50"),
            "{why}"
        );
    }
}
