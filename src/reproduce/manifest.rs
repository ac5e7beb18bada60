//! Manifests: one TOML data file per artefact of the paper (`reproduce/*.toml`), listing
//! its runs, the paper's values beside them and the plots to draw. Nothing here branches
//! per artefact: a manifest is data.

use crate::train::config::{resolve_schedule, RunConfig, ScheduleSpec};
use crate::train::data::DataConfig;
use crate::train::kinds::{CheckpointEvery, DatasetSpec, PresetSource};
use anyhow::{anyhow, bail, Context, Result};
use rbd_models::ModelKind;
use rbd_optim::config::fields;
use rbd_optim::{OptimizerKind, Settings};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The manifests built into the binary, by name.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("quick", include_str!("../../reproduce/quick.toml")),
    ("table1", include_str!("../../reproduce/table1.toml")),
    (
        "table1-tuned",
        include_str!("../../reproduce/table1-tuned.toml"),
    ),
    (
        "table1-plain",
        include_str!("../../reproduce/table1-plain.toml"),
    ),
    (
        "table1-table4",
        include_str!("../../reproduce/table1-table4.toml"),
    ),
    (
        "table1-nes-update",
        include_str!("../../reproduce/table1-nes-update.toml"),
    ),
    (
        "table1-cifar10",
        include_str!("../../reproduce/table1-cifar10.toml"),
    ),
    ("fig1", include_str!("../../reproduce/fig1.toml")),
    ("b6", include_str!("../../reproduce/b6.toml")),
    ("b7", include_str!("../../reproduce/b7.toml")),
    (
        "b7-fastfood",
        include_str!("../../reproduce/b7-fastfood.toml"),
    ),
    ("fastfood", include_str!("../../reproduce/fastfood.toml")),
    (
        "b7-fc-mnist",
        include_str!("../../reproduce/b7-fc-mnist.toml"),
    ),
    ("b8", include_str!("../../reproduce/b8.toml")),
    ("b9", include_str!("../../reproduce/b9.toml")),
    ("b10", include_str!("../../reproduce/b10.toml")),
    ("b11", include_str!("../../reproduce/b11.toml")),
    ("b12", include_str!("../../reproduce/b12.toml")),
    ("b13", include_str!("../../reproduce/b13.toml")),
    ("b14", include_str!("../../reproduce/b14.toml")),
    ("b15", include_str!("../../reproduce/b15.toml")),
    (
        "rademacher",
        include_str!("../../reproduce/rademacher.toml"),
    ),
];

/// What an artefact computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtefactKind {
    /// Training runs.
    #[default]
    Training,
    /// Figure B.8's cosine similarities (no training).
    Orthogonality,
}

/// A plot of an artefact.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlotSpec {
    /// `curves`: validation accuracy against epoch, one file per table row, a band over
    /// seeds per column. `versus`: a final metric against each run's `x`, one line per
    /// `series`.
    pub kind: PlotKind,
    /// File name (for `curves`, a prefix; the row is appended).
    pub file: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// For `versus`: the metric on the y axis.
    #[serde(default)]
    pub y: Option<Metric>,
    /// For `versus`: the x axis label.
    #[serde(default)]
    pub x_label: Option<String>,
    /// Logarithmic x axis.
    #[serde(default)]
    pub log_x: bool,
    /// For `curves`: every row as a panel of one file (`FILE.svg`), as the paper draws
    /// Figure B.6, instead of a file per row.
    #[serde(default)]
    pub grid: bool,
    /// Cells of other artefacts drawn as dashed reference lines at their final mean
    /// (`table1/cnn-cifar10-sgd`), with the label after a `=`: `"table1/cnn-cifar10-sgd=SGD"`.
    #[serde(default)]
    pub references: Vec<String>,
}

/// Plot kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlotKind {
    /// Accuracy against epoch.
    Curves,
    /// A final metric against `x`.
    Versus,
    /// Final validation accuracy per cell, a panel per table row, each seed and the
    /// paper's mean ± std beside it (the table drawn).
    Cells,
}

/// A difference between two runs that the paper reports (Figure 1: RBD − FPD).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DifferenceSpec {
    /// How the paper names it (`RBD − FPD`).
    pub label: String,
    /// The run whose accuracy is taken.
    pub of: String,
    /// The run whose accuracy is subtracted.
    pub minus: String,
    /// The paper's value (points).
    pub paper: f64,
    /// Its standard deviation, where printed.
    #[serde(default)]
    pub paper_std: Option<f64>,
    /// Where the paper prints it.
    pub paper_source: String,
}

/// A claim of the paper about an artefact, and ours beside it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaimSpec {
    /// The paper's claim, in its words, with where it is made.
    pub paper: String,
    /// What our runs show: text with placeholders (`templates`), filled when summarised.
    pub ours: String,
}

/// A metric of a finished run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Final validation accuracy (%).
    ValAccuracy,
    /// Mean gradient correlation over the last epoch (whole vector).
    Correlation,
    /// The released code's: per-tensor cosines pooled over tensors and the last epoch.
    CorrelationPooled,
    /// Training seconds of the whole run.
    Seconds,
}

/// An artefact's manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Its name (`table1`, `b7`, ...).
    pub name: String,
    /// What it reproduces, in the paper's words.
    pub title: String,
    /// Computation.
    #[serde(default)]
    pub kind: ArtefactKind,
    /// Epochs of the paper's runs.
    #[serde(default = "one")]
    pub epochs: u64,
    /// Seeds of the paper's runs.
    #[serde(default = "three")]
    pub seeds: u64,
    /// The paper's epochs where this artefact runs fewer by design (`quick`).
    #[serde(default)]
    pub paper_epochs: Option<u64>,
    /// The paper's seeds (default 3: every figure and table that states them averages
    /// 3 runs); see [`Manifest::paper_seeds`].
    #[serde(default)]
    pub paper_seeds: Option<u64>,
    /// Known differences and sources, printed with the results.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Fields every run takes unless it sets its own.
    #[serde(default)]
    pub defaults: toml::Table,
    /// The runs.
    #[serde(default, rename = "run")]
    pub runs: Vec<toml::Table>,
    /// The plots.
    #[serde(default, rename = "plot")]
    pub plots: Vec<PlotSpec>,
    /// Orthogonality settings.
    #[serde(default)]
    pub orthogonality: Option<OrthogonalitySpec>,
    /// Another artefact whose runs this one shares (B.6 plots Table 1's runs).
    #[serde(default)]
    pub runs_of: Option<String>,
    /// The paper's budget in words where epochs and seeds cannot say it (an artefact
    /// that is not the paper's, a figure that does not state its seeds).
    #[serde(default)]
    pub paper_budget: Option<String>,
    /// Differences between runs that the paper reports.
    #[serde(default, rename = "difference")]
    pub differences: Vec<DifferenceSpec>,
    /// The paper's claims about this artefact, each beside ours.
    #[serde(default, rename = "claim")]
    pub claims: Vec<ClaimSpec>,
    /// Another artefact whose committed runs this one repeats on a shorter budget, with
    /// the same configurations and ids (`quick` repeats `table1`'s FC-MNIST row): its rows
    /// are compared bit for bit and its full-budget cells shown as context.
    #[serde(default)]
    pub reference: Option<String>,
    /// The paper's ordering of this artefact's columns at equal budget, best first
    /// (`["SGD", "RBD", "FPD", "NES"]`), checked in every summary.
    #[serde(default)]
    pub claim_order: Vec<String>,
}

fn one() -> u64 {
    1
}
fn three() -> u64 {
    3
}

/// Figure B.8's settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrthogonalitySpec {
    /// Vectors (the released code: 100, compared as 99 consecutive pairs).
    pub vectors: usize,
    /// Largest dimension as a power of ten.
    pub max_exponent: u32,
}

/// One run of a manifest after the defaults are applied. Its table also holds the
/// run's data and optimiser settings, under the keys of `config.json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RunEntry {
    /// Unique within the manifest; the run directory's name (with the seed).
    pub id: String,
    /// Table row (e.g. `FC-MNIST`).
    #[serde(default)]
    pub row: Option<String>,
    /// Table column (e.g. `RBD`).
    #[serde(default)]
    pub column: Option<String>,
    /// Line of a `versus` plot.
    #[serde(default)]
    pub series: Option<String>,
    /// Position on a `versus` plot's x axis.
    #[serde(default)]
    pub x: Option<f64>,
    /// The paper's value (validation accuracy %, or the metric of the artefact).
    #[serde(default)]
    pub paper: Option<f64>,
    /// The paper's standard deviation.
    #[serde(default)]
    pub paper_std: Option<f64>,
    /// Where the paper's value is printed.
    #[serde(default)]
    pub paper_source: Option<String>,
    /// The network.
    pub model: ModelKind,
    /// The data.
    pub dataset: DatasetSpec,
    /// The optimiser (or `schedule`).
    #[serde(default)]
    pub optimizer: Option<OptimizerKind>,
    /// A hybrid schedule (`rbd:10,sgd`).
    #[serde(default)]
    pub schedule: Option<String>,
    /// The rate (`2^-3`), or `tune`; default: the preset of `lr_preset`.
    #[serde(default)]
    pub lr: Option<String>,
    /// Which published rates fill in a missing `lr`.
    #[serde(default)]
    pub lr_preset: Option<PresetSource>,
    /// Epochs (default: the manifest's).
    #[serde(default)]
    pub epochs: Option<u64>,
    /// Batch size, split and augmentation (the same table's keys).
    #[serde(skip)]
    pub data: DataConfig,
    /// The optimisers' settings (the same table's keys).
    #[serde(skip)]
    pub settings: Settings,
}

impl RunEntry {
    /// Reads a run's table (defaults merged in); a key no part reads is an error.
    fn read(table: toml::Table) -> Result<RunEntry> {
        let accepted: Vec<String> = struct_fields::<RunEntry>()
            .iter()
            .map(|f| f.to_string())
            .chain(fields::<DataConfig>())
            .chain(fields::<Settings>())
            .collect();
        if let Some(key) = table.keys().find(|k| !accepted.contains(k)) {
            let mut names = accepted;
            names.sort();
            bail!("unknown key `{key}` (expected one of {})", names.join(", "));
        }
        let table = toml::Value::Table(table);
        let mut entry: RunEntry = table.clone().try_into()?;
        entry.data = table.clone().try_into()?;
        entry.settings = table.try_into()?;
        Ok(entry)
    }
}

/// The fields a struct without flattened parts reads, as serde names them to a
/// deserializer (the keys it accepts).
fn struct_fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Fields(&'static [&'static str]);
    impl<'de> de::Deserializer<'de> for &mut Fields {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only structs name their fields"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut f = Fields(&[]);
    let _ = T::deserialize(&mut f);
    f.0
}

/// The most seeds per run a reproduction plans (the paper's artefacts use 3): more is a
/// typo, and would plan runs without end.
pub const MAX_SEEDS: u64 = 1000;

impl Manifest {
    /// Parses a manifest; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let m: Manifest =
            toml::from_str(text).with_context(|| format!("{origin}: not a valid manifest"))?;
        m.check().map_err(|e| anyhow!("{origin}: {e}"))?;
        let entries = m.entries().with_context(|| format!("{origin}: bad run"))?;
        let mut ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            bail!("{origin}: run id '{}' appears twice", w[0]);
        }
        if m.kind == ArtefactKind::Orthogonality && m.orthogonality.is_none() {
            bail!("{origin}: an orthogonality artefact needs an [orthogonality] table");
        }
        if let Some(o) = &m.orthogonality {
            super::orthogonality::check(o.vectors, o.max_exponent)
                .with_context(|| format!("{origin}: [orthogonality]"))?;
        }
        if m.kind == ArtefactKind::Training && m.runs.is_empty() {
            bail!("{origin}: no [[run]]: a training artefact lists its runs");
        }
        Ok(m)
    }

    /// Checks what the manifest's own fields may hold: the names that become paths
    /// stay inside the results directory, the budget is at least one.
    fn check(&self) -> Result<(), String> {
        plain_name("name", &self.name)?;
        if let Some(r) = &self.runs_of {
            plain_name("runs_of", r)?;
        }
        for (i, p) in self.plots.iter().enumerate() {
            plain_name(&format!("plot {}: file", i + 1), &p.file)?;
        }
        if self.epochs == 0 {
            return Err("epochs = 0: a run needs at least 1 epoch".into());
        }
        if !(1..=MAX_SEEDS).contains(&self.seeds) {
            return Err(format!("seeds = {}: must be 1 to {MAX_SEEDS}", self.seeds));
        }
        Ok(())
    }

    /// A built-in manifest by name, or a manifest file by path.
    pub fn load(name_or_path: &str) -> Result<Manifest> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Manifest::parse(text, &format!("built-in manifest '{name_or_path}'"));
        }
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            return Manifest::parse(&text, &path.display().to_string());
        }
        let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        bail!(
            "unknown artefact '{name_or_path}' (expected one of {}, or a manifest file NAME.toml)",
            names.join(", ")
        )
    }

    /// The paper's seeds.
    pub fn paper_seeds(&self) -> u64 {
        self.paper_seeds.unwrap_or(3)
    }

    /// The paper's epochs.
    pub fn paper_epochs(&self) -> u64 {
        self.paper_epochs.unwrap_or(self.epochs)
    }

    /// The runs with the defaults applied.
    pub fn entries(&self) -> Result<Vec<RunEntry>> {
        self.runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let mut merged = self.defaults.clone();
                for (k, v) in run {
                    merged.insert(k.clone(), v.clone());
                }
                let entry = RunEntry::read(merged).map_err(|e| {
                    anyhow!(
                        "run {} ({}): {e}",
                        i + 1,
                        run.get("id").map_or("?".to_string(), |v| v.to_string())
                    )
                })?;
                if entry.optimizer.is_some() == entry.schedule.is_some() {
                    bail!(
                        "run '{}': give exactly one of optimizer and schedule",
                        entry.id
                    );
                }
                entry
                    .check()
                    .map_err(|e| anyhow!("run {} ({:?}): {e}", i + 1, entry.id))?;
                Ok(entry)
            })
            .collect()
    }
}

/// One planned run: an entry at a seed, with its configuration and directory.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// The manifest entry.
    pub entry: RunEntry,
    /// The seed.
    pub seed: u64,
    /// The configuration.
    pub cfg: RunConfig,
    /// The run directory.
    pub dir: PathBuf,
    /// Why the run cannot start yet (a rate to tune first).
    pub blocked: Option<String>,
}

/// The settings of `cfg` that are off their defaults and make it another run, each as
/// (its part of the file key, its `rbd tune` flag), sorted by setting: every flag of
/// the run's data and optimiser settings (d is in the key already) and the seed. They
/// mirror `RunConfig::run_id`: what it ignores (`RunConfig::inert_settings`) is left
/// out, so a search's trial directories never hold another configuration, and every
/// part has its flag, so the command a blocked run prints trains exactly the
/// configuration whose rate it reads. A part is `-FLAG` for a switch, `-FLAGVALUE` for a
/// number (`-seed1`) and `-FLAG-VALUE` for a word (`-nes-epochs-update`).
fn tune_variants(cfg: &RunConfig) -> Vec<(String, String)> {
    let base = RunConfig::new(cfg.model, cfg.dataset.clone(), cfg.schedule.clone());
    let now = serde_json::to_value(cfg).expect("a RunConfig serialises");
    let default = serde_json::to_value(&base).expect("a RunConfig serialises");
    let inert = cfg.inert_settings();
    use clap::Args as _;
    let seed = clap::Arg::new("seed").long("seed");
    let command = Settings::augment_args(DataConfig::augment_args(clap::Command::new("tune")));
    let mut flags: Vec<&clap::Arg> = command.get_arguments().chain([&seed]).collect();
    flags.sort_by_key(|a| a.get_id().as_str());
    let mut v = Vec::new();
    for arg in flags {
        let field = arg.get_id().as_str();
        if field == "dim" || inert.contains(&field) || now.get(field) == default.get(field) {
            continue;
        }
        let long = arg.get_long().expect("every setting has a flag");
        if !arg.get_action().takes_values() {
            v.push((format!("-{long}"), format!("--{long}")));
            continue;
        }
        let text = match now.get(field) {
            Some(serde_json::Value::String(t)) => t.clone(),
            Some(serde_json::Value::Null) | None => continue,
            Some(value) => value.to_string(),
        };
        let glue = if text.starts_with(|c: char| c.is_ascii_digit()) {
            ""
        } else {
            "-"
        };
        // `cap:N` holds a colon, which is no file name on some systems.
        v.push((
            format!("-{long}{glue}{}", text.replace(':', "")),
            format!("--{long} {}", shell_word(&text)),
        ));
    }
    v
}

/// Where `rbd tune` writes its search for `cfg`:
/// results/tune/MODEL-DATASET-OPTIMIZER-dD[-VARIANTS].json, where VARIANTS are the
/// settings off their defaults (`tune_variants`), so two searches never share a file or
/// a trial directory; at the defaults nothing is added (older names stay valid).
pub fn tune_file(results: &Path, cfg: &RunConfig) -> PathBuf {
    let variant: String = tune_variants(cfg).into_iter().map(|(k, _)| k).collect();
    results.join("tune").join(format!(
        "{}-{}-{}-d{}{variant}.json",
        cfg.model,
        cfg.dataset.short_name(),
        cfg.schedule[0].optimizer,
        cfg.settings.directions.dim
    ))
}

/// The search a reproduction's `lr = "tune"` reads: `rbd tune`'s at the tuning seed 0,
/// whatever the run's own seed (every seed of a row trains at one rate).
pub fn tuned_rate_file(results: &Path, cfg: &RunConfig) -> PathBuf {
    let mut tuning = cfg.clone();
    tuning.seed = 0;
    tune_file(results, &tuning)
}

/// The `lr_source` of a run whose rate comes from [`tuned_rate_file`]: the search named
/// relative to the results directory, always spelled `results/tune/KEY.json`, because the
/// source is part of the configuration a run id hashes: the same run must keep its id
/// under any `--results` (ids committed with the default root were hashed with this text).
pub fn tuned_source(cfg: &RunConfig) -> String {
    let file = tuned_rate_file(Path::new(""), cfg);
    let name = file.file_name().expect("a search file has a name");
    format!("tuned here (results/tune/{})", name.to_string_lossy())
}

/// The `rbd tune` command that writes `tune_file(results, cfg)`: a flag for every setting
/// the file's key names, `--results` and `--data-dir` where they are not the defaults, and
/// the run's whole budget (Table 4 tuned over it).
pub fn tune_command(cfg: &RunConfig, results: &Path, data_dir: &Path) -> String {
    let mut c = format!(
        "rbd tune --model {} --dataset {} --optimizer {} --dim {}",
        cfg.model,
        shell_word(&cfg.dataset.to_string()),
        cfg.schedule[0].optimizer,
        cfg.settings.directions.dim
    );
    for (_, flag) in tune_variants(cfg) {
        c += " ";
        c += &flag;
    }
    c += &format!(" --epochs {}", cfg.epochs);
    if results != Path::new("results") {
        c += &format!(" --results {}", shell_word(&results.display().to_string()));
    }
    let default_data = rbd_datasets::default_data_dir().ok();
    if !data_dir.as_os_str().is_empty() && default_data.as_deref() != Some(data_dir) {
        c += &format!(
            " --data-dir {}",
            shell_word(&data_dir.display().to_string())
        );
    }
    c
}

/// `w` as one word for a POSIX shell: as is when it is plain, else single-quoted.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=^+,@%".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// The rate `rbd tune` chose for `cfg`'s first optimiser, if it has run.
pub fn tuned_rate(results: &Path, cfg: &RunConfig) -> Result<Option<f64>> {
    let path = tuned_rate_file(results, cfg);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let lr = v["best_lr"]
        .as_f64()
        .with_context(|| format!("{}: no best_lr", path.display()))?;
    if !(lr.is_finite() && lr > 0.0) {
        bail!(
            "{}: best_lr = {lr}: not a positive rate (run rbd tune again)",
            path.display()
        );
    }
    Ok(Some(lr))
}

/// Options a user gives to a reproduction.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// A shorter (or longer) budget than the paper's.
    pub epochs: Option<u64>,
    /// Seeds per run (default: the manifest's).
    pub seeds: Option<u64>,
    /// Only runs whose id is one of these, or (for a text that is no run's id)
    /// contains it.
    pub only: Vec<String>,
    /// Device of every run.
    pub device: Option<rbd_engine::DeviceChoice>,
    /// Where data sets are kept.
    pub data_dir: PathBuf,
}

impl Manifest {
    /// Expands the manifest into runs under `results/NAME/runs/`.
    pub fn plan(&self, results: &Path, opts: &PlanOptions) -> Result<Vec<PlannedRun>> {
        let seeds = opts.seeds.unwrap_or(self.seeds);
        if seeds > MAX_SEEDS {
            bail!("seeds: {seeds} seeds per run is more than {MAX_SEEDS}");
        }
        let mut out = Vec::new();
        let entries = self.entries()?;
        // A filter equal to an id selects that run alone (`--only d10` is not d100).
        let selects = |o: &String, id: &str| {
            id == o || (!entries.iter().any(|e| &e.id == o) && id.contains(o.as_str()))
        };
        for entry in entries.iter() {
            if !opts.only.is_empty() && !opts.only.iter().any(|o| selects(o, &entry.id)) {
                continue;
            }
            for seed in 0..seeds {
                let mut cfg = entry
                    .config(self.epochs)
                    .with_context(|| format!("run '{}'", entry.id))?;
                let mut blocked = None;
                if entry.lr.as_deref() == Some("tune") {
                    let file = tuned_rate_file(results, &cfg);
                    match tuned_rate(results, &cfg)? {
                        Some(lr) => {
                            let source = tuned_source(&cfg);
                            let seg = &mut cfg.schedule[0];
                            seg.lr = lr;
                            seg.lr_source = source;
                        }
                        None => {
                            cfg.schedule[0].lr_source = "no published rate; not tuned yet".into();
                            blocked = Some(format!(
                                "lr = \"tune\" and no tuned rate yet: run `{}` first (it writes {}; Table 4 tuned over the whole budget)",
                                tune_command(
                                    &{
                                        let mut tuning = cfg.clone();
                                        tuning.seed = 0;
                                        tuning
                                    },
                                    results,
                                    &opts.data_dir
                                ),
                                file.display()
                            ));
                        }
                    }
                }
                cfg.seed = seed;
                if let Some(e) = opts.epochs {
                    cfg.epochs = e;
                }
                if let Some(d) = opts.device {
                    cfg.device = d;
                }
                cfg.data_dir = opts.data_dir.clone();
                cfg.validate()
                    .map_err(|e| anyhow!("run '{}': {e}", entry.id))?;
                let dir = results
                    .join(self.runs_of.as_deref().unwrap_or(&self.name))
                    .join("runs")
                    .join(format!("{}-seed{seed}", entry.id));
                out.push(PlannedRun {
                    entry: entry.clone(),
                    seed,
                    cfg,
                    dir,
                    blocked,
                });
            }
        }
        if out.is_empty() && self.kind == ArtefactKind::Training {
            if opts.only.is_empty() {
                bail!(
                    "'{}' has no runs (its manifest lists no [[run]])",
                    self.name
                );
            }
            bail!(
                "no run of '{}' matches --only {}",
                self.name,
                opts.only.join(", ")
            );
        }
        Ok(out)
    }
}

/// Refuses `value` for `field` unless it is one plain file name: it becomes a directory
/// or file inside the results directory, so no separator, `.`, `..` or emptiness.
fn plain_name(field: &str, value: &str) -> Result<(), String> {
    // Letters, digits and `-_.+` only: the name becomes a file name that shells and
    // other tools take as it is (no `^`, spaces, quotes or globs).
    let plain = !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{field} = {value:?} must be a plain name (letters, digits, '-', '_', '.', '+'; not '.' or '..'): it names a path inside the results directory"
        ))
    }
}

impl RunEntry {
    /// Checks the fields that become paths or numbers of the summary.
    fn check(&self) -> Result<(), String> {
        plain_name("id", &self.id)?;
        let finite = |field: &str, v: Option<f64>| match v {
            Some(x) if !x.is_finite() => Err(format!("{field} = {x} must be a finite number")),
            _ => Ok(()),
        };
        finite("paper", self.paper)?;
        finite("paper_std", self.paper_std)?;
        finite("x", self.x)?;
        if let Some(s) = self.paper_std.filter(|s| *s < 0.0) {
            return Err(format!(
                "paper_std = {s} must not be negative (a standard deviation)"
            ));
        }
        if self.paper_std.is_some() && self.paper.is_none() {
            return Err("paper_std is given without paper".into());
        }
        if self.epochs == Some(0) {
            return Err("epochs = 0: a run needs at least 1 epoch".into());
        }
        Ok(())
    }

    /// The run's configuration (seed 0, checkpoint every epoch).
    pub fn config(&self, manifest_epochs: u64) -> Result<RunConfig> {
        let spec = match (&self.schedule, self.optimizer) {
            (Some(s), _) => s
                .parse::<ScheduleSpec>()
                .map_err(|e| anyhow!("schedule: {e}"))?,
            (None, Some(o)) => ScheduleSpec::single(o),
            (None, None) => bail!("no optimizer"),
        };
        let lr = match self.lr.as_deref() {
            // A placeholder until the tuned rate is filled in by the plan.
            Some("tune") => Some(1.0),
            Some(t) => Some(crate::lr::parse_lr(t).map_err(|e| anyhow!("lr: {e}"))?),
            None => None,
        };
        let schedule = resolve_schedule(
            &spec,
            lr,
            self.model,
            &self.dataset,
            self.settings.directions.distribution,
            self.lr_preset.unwrap_or(PresetSource::Paper),
        )?;
        let mut cfg = RunConfig::build(
            self.model,
            self.dataset.clone(),
            schedule,
            self.data.clone(),
            self.settings.clone(),
        );
        cfg.epochs = self.epochs.unwrap_or(manifest_epochs);
        cfg.options.checkpoint_every = CheckpointEvery::Epochs(1);
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbd_engine::random_bases::{DistributionKind, Generator};
    use rbd_optim::Compartments;

    #[test]
    fn every_built_in_manifest_parses_and_plans() {
        for (name, _) in BUILT_IN {
            let m = Manifest::load(name).unwrap();
            assert_eq!(m.name, *name);
            if m.kind == ArtefactKind::Training {
                let plan = m
                    .plan(Path::new("results"), &PlanOptions::default())
                    .unwrap();
                assert!(!plan.is_empty(), "{name} plans no run");
            }
        }
    }

    #[test]
    fn table1_has_72_runs_and_the_papers_values() {
        let m = Manifest::load("table1").unwrap();
        let plan = m
            .plan(Path::new("results"), &PlanOptions::default())
            .unwrap();
        assert_eq!(plan.len(), 72);
        assert!(plan
            .iter()
            .all(|p| p.cfg.epochs == 100 && p.cfg.settings.directions.dim == 250));
        let rbd = plan.iter().find(|p| p.entry.id == "fc-mnist-rbd").unwrap();
        assert_eq!(rbd.entry.paper, Some(93.893));
        // Table 1 came from the released configuration's rates.
        assert_eq!(rbd.cfg.schedule[0].lr, 1.0);
        // NES counts epochs as the released code; the other methods keep their run ids.
        use rbd_optim::NesEpochs;
        for p in &plan {
            let nes = p.cfg.schedule[0].optimizer == OptimizerKind::Nes;
            assert_eq!(p.cfg.nes_straddles(), nes, "{}", p.entry.id);
            let want = if nes {
                NesEpochs::Released
            } else {
                NesEpochs::Whole
            };
            assert_eq!(p.cfg.settings.nes.nes_epochs, want, "{}", p.entry.id);
        }
        let quick = Manifest::load("quick").unwrap();
        let qplan = quick
            .plan(Path::new("results"), &PlanOptions::default())
            .unwrap();
        let qnes = qplan.iter().find(|p| p.entry.id == "fc-mnist-nes").unwrap();
        assert!(qnes.cfg.nes_straddles());
    }

    #[test]
    fn every_tune_flag_keys_its_own_search_and_every_seed_reads_seed_0s() {
        let m = Manifest::load("table1").unwrap();
        let plan = m.plan(Path::new("r"), &PlanOptions::default()).unwrap();
        let base = plan
            .iter()
            .find(|p| p.entry.id == "fc-mnist-rbd")
            .unwrap()
            .cfg
            .clone();
        // `base` with `f` applied.
        let with = |f: &dyn Fn(&mut RunConfig)| {
            let mut c = base.clone();
            f(&mut c);
            c
        };
        let variants: Vec<(&str, RunConfig)> = vec![
            (
                "--compartments 5",
                with(&|c| c.settings.directions.compartments = Compartments::Even(5)),
            ),
            (
                "--compartments layer",
                with(&|c| c.settings.directions.compartments = Compartments::PerLayer),
            ),
            (
                "--split-dim",
                with(&|c| c.settings.directions.split_dim = true),
            ),
            (
                "--distribution uniform",
                with(&|c| c.settings.directions.distribution = DistributionKind::Uniform),
            ),
            (
                "--train-limit 500",
                with(&|c| c.data.train_limit = Some(500)),
            ),
            ("--val-size 5000", with(&|c| c.data.val_size = 5000)),
            (
                "--bernoulli-p 0.25",
                with(&|c| {
                    c.settings.directions.distribution = DistributionKind::Bernoulli;
                    c.settings.directions.bernoulli_p = 0.25;
                }),
            ),
            (
                "--nes-sigma 0.02",
                with(&|c| c.settings.nes.nes_sigma = 0.02),
            ),
            (
                "--generator philox",
                with(&|c| c.settings.directions.generator = Generator::Philox),
            ),
            ("--no-augment", with(&|c| c.data.augment = false)),
            ("--batch-size 64", with(&|c| c.data.batch_size = 64)),
        ];
        let cmd = |c: &RunConfig| tune_command(c, Path::new("results"), Path::new(""));
        let mut files = vec![tune_file(Path::new("r"), &base)];
        for (flag, cfg) in &variants {
            let f = tune_file(Path::new("r"), cfg);
            assert!(!files.contains(&f), "{flag}: {} is taken", f.display());
            files.push(f);
            assert!(cmd(cfg).contains(flag), "{}", cmd(cfg));
            assert!(!cmd(&base).contains(flag));
        }
        // A variant of another optimiser or data set, against that optimiser's or data
        // set's default: each must change the key by itself.
        let fpd = with(&|c| c.schedule[0].optimizer = OptimizerKind::Fpd);
        let nes = with(&|c| c.schedule[0].optimizer = OptimizerKind::Nes);
        let cifar = with(&|c| c.dataset = DatasetSpec::Known(rbd_datasets::DatasetKind::Cifar10));
        let released = rbd_optim::FpdVariant::Released;
        let first = rbd_datasets::AugmentOrder::AugmentFirst;
        for (flag, reference, cfg) in [
            ("--fpd-variant released", &fpd, {
                let mut c = fpd.clone();
                c.settings.fpd.fpd_variant = released;
                c
            }),
            ("--nes-epochs update", &nes, {
                let mut c = nes.clone();
                c.settings.nes.nes_epochs = rbd_optim::NesEpochs::Update;
                c
            }),
            ("--augment-order augment-first", &cifar, {
                let mut c = cifar.clone();
                c.data.augment_order = first;
                c
            }),
        ] {
            assert_ne!(
                tune_file(Path::new("r"), &cfg),
                tune_file(Path::new("r"), reference),
                "{flag}"
            );
            assert!(cmd(&cfg).contains(flag), "{}", cmd(&cfg));
            assert!(!cmd(reference).contains(flag));
        }
        // What the run's identity ignores (another optimiser's or data set's variant) is
        // not part of the key either.
        let mut ignored = base.clone();
        ignored.settings.fpd.fpd_variant = released;
        ignored.settings.nes.nes_epochs = rbd_optim::NesEpochs::Update;
        ignored.data.augment_order = first;
        assert_eq!(ignored.run_id(), base.run_id());
        assert_eq!(tune_file(Path::new("r"), &ignored), files[0]);
        // A results directory, data directory or data set path the shell would split
        // is passed on, quoted.
        let mut spaced = base.clone();
        spaced.dataset = "idx:/data/my digits".parse().unwrap();
        let c = tune_command(&spaced, Path::new("my results"), Path::new("/d d"));
        assert!(c.contains("--dataset 'idx:/data/my digits'"), "{c}");
        assert!(c.contains("--results 'my results'"), "{c}");
        assert!(c.contains("--data-dir '/d d'"), "{c}");
        // `rbd tune --seed 1` searches apart from seed 0; a run at seed 1 reads seed 0's.
        let mut seed1 = base.clone();
        seed1.seed = 1;
        assert!(!files.contains(&tune_file(Path::new("r"), &seed1)));
        assert_eq!(
            tuned_rate_file(Path::new("r"), &seed1),
            tune_file(Path::new("r"), &base)
        );
        // Defaults add nothing: the searches already in results/tune keep their names.
        assert_eq!(files[0], Path::new("r/tune/fc-mnist-rbd-d250.json"));
    }

    #[test]
    fn an_untuned_rate_blocks_with_the_tune_command_that_unblocks_it() {
        let empty = std::env::temp_dir().join(format!("rbd-no-tune-{}", std::process::id()));
        let m = Manifest::load("table1-tuned").unwrap();
        let plan = m.plan(&empty, &PlanOptions::default()).unwrap();
        let nes = plan.iter().find(|p| p.entry.id == "fc-mnist-nes").unwrap();
        let why = nes.blocked.as_deref().expect("no tuned rate: blocked");
        // The hint must name every flag that changes the tuned file's key or what a
        // trial trains, and the manifest's whole budget (Table 4's protocol).
        for flag in [
            "--model fc",
            "--dataset mnist",
            "--optimizer nes",
            "--dim 250",
            "--nes-epochs released",
            "--epochs 100",
        ] {
            assert!(why.contains(flag), "{flag} missing from: {why}");
        }
        let file = tuned_rate_file(&empty, &nes.cfg);
        assert!(why.contains(&file.display().to_string()), "{why}");
    }

    #[test]
    fn a_tuned_rate_that_is_not_positive_is_refused_naming_the_file() {
        // Found by rbd-fuzz (tune): `"best_lr": 0` or `-0` was returned as the rate,
        // and the run failed later with an error naming neither the file nor the key.
        let results = std::env::temp_dir().join(format!("rbd-bad-tune-{}", std::process::id()));
        let m = Manifest::load("table1-tuned").unwrap();
        let plan = m.plan(&results, &PlanOptions::default()).unwrap();
        let cfg = &plan[0].cfg;
        let file = tuned_rate_file(&results, cfg);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        for bad in ["0", "-0", "-0.5"] {
            std::fs::write(&file, format!("{{\"best_lr\": {bad}}}")).unwrap();
            let e = format!("{:#}", tuned_rate(&results, cfg).unwrap_err());
            assert!(e.starts_with(&file.display().to_string()), "{e}");
            assert!(e.contains("best_lr = "), "{e}");
        }
        std::fs::write(&file, "{\"best_lr\": 0.125}").unwrap();
        assert_eq!(tuned_rate(&results, cfg).unwrap(), Some(0.125));
        std::fs::remove_dir_all(&results).unwrap();
    }

    #[test]
    fn an_empty_or_oversized_artefact_is_refused_naming_the_file() {
        // Found by rbd-fuzz (manifest): a manifest whose runs were all removed said "no
        // run of 'x' matches the filter" though no filter was given.
        let e = Manifest::parse("name = \"t\"\ntitle = \"t\"\n", "t.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml: no [[run]]: a training artefact lists its runs"
        );
        // Found while writing the fuzzer: `vectors` past usize's half overflowed `2 ×
        // vectors` and aborted on allocation in the experiment, after parsing.
        let b8 = BUILT_IN.iter().find(|(n, _)| *n == "b8").unwrap().1;
        let huge = b8.replace("vectors = 100", "vectors = 9223372036854775807");
        assert_ne!(huge, b8, "b8 sets vectors = 100");
        let e = format!("{:#}", Manifest::parse(&huge, "b8.toml").unwrap_err());
        assert!(
            e.starts_with("b8.toml: [orthogonality]: vectors must be 2 to"),
            "{e}"
        );
    }

    #[test]
    fn seeds_past_the_bound_are_refused_not_planned_without_end() {
        // Found by rbd-fuzz (manifest): `seeds = 1099511627776` planned runs until the
        // memory ran out.
        let text = "name = \"t\"\ntitle = \"t\"\nseeds = 1099511627776\n[[run]]\nid = \"a\"\nmodel = \"fc\"\ndataset = \"mnist\"\noptimizer = \"sgd\"\n";
        let e = Manifest::parse(text, "t.toml").unwrap_err().to_string();
        assert_eq!(e, "t.toml: seeds = 1099511627776: must be 1 to 1000");
        let zero = text.replace("1099511627776", "0");
        let e = Manifest::parse(&zero, "t.toml").unwrap_err().to_string();
        assert_eq!(e, "t.toml: seeds = 0: must be 1 to 1000");
        let m = Manifest::parse(&text.replace("1099511627776", "2"), "t.toml").unwrap();
        let opts = PlanOptions {
            seeds: Some(1 << 40),
            ..PlanOptions::default()
        };
        let e = m.plan(Path::new("r"), &opts).unwrap_err().to_string();
        assert!(e.starts_with("seeds: 1099511627776 seeds per run"), "{e}");
        assert_eq!(
            m.plan(Path::new("r"), &PlanOptions::default())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn b15_runs_both_bernoullis_at_the_published_rate() {
        let m = Manifest::load("b15").unwrap();
        let plan = m
            .plan(Path::new("results"), &PlanOptions::default())
            .unwrap();
        let of = |id: &str| {
            plan.iter()
                .find(|p| p.entry.id == id && p.seed == 0)
                .unwrap()
                .cfg
                .clone()
        };
        let zero_mean = of("bernoulli");
        let released = of("bernoulli-released");
        assert_eq!(
            zero_mean.settings.directions.distribution,
            DistributionKind::Bernoulli
        );
        assert_eq!(
            released.settings.directions.distribution,
            DistributionKind::BernoulliReleased
        );
        assert_eq!(released.settings.directions.bernoulli_p, 0.5);
        assert_eq!(zero_mean.schedule[0].lr, 0.5);
        assert_eq!(released.schedule[0].lr, 0.5);
        assert_ne!(zero_mean.run_id(), released.run_id());
    }

    #[test]
    fn defaults_merge_and_filters_apply() {
        let text = r#"
            name = "t"
            title = "t"
            epochs = 7
            seeds = 2
            [defaults]
            model = "fc"
            dataset = "mnist"
            dim = 10
            [[run]]
            id = "a"
            optimizer = "rbd"
            [[run]]
            id = "b"
            optimizer = "sgd"
            dim = 20
        "#;
        let m = Manifest::parse(text, "t").unwrap();
        let opts = PlanOptions {
            only: vec!["b".into()],
            epochs: Some(3),
            ..PlanOptions::default()
        };
        let plan = m.plan(Path::new("r"), &opts).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1].cfg.settings.directions.dim, 20);
        assert_eq!(plan[1].cfg.seed, 1);
        assert_eq!(plan[0].cfg.epochs, 3);
        assert!(plan[0].dir.ends_with("t/runs/b-seed0"));
        // An exact id selects that run alone, though it is part of another id.
        let text = text.replace("id = \"b\"", "id = \"ab\"");
        let m = Manifest::parse(&text, "t").unwrap();
        let ids = |only: &str| -> Vec<String> {
            let opts = PlanOptions {
                only: vec![only.into()],
                seeds: Some(1),
                ..PlanOptions::default()
            };
            let plan = m.plan(Path::new("r"), &opts).unwrap();
            plan.iter().map(|p| p.entry.id.clone()).collect()
        };
        assert_eq!(ids("a"), ["a"]);
        assert_eq!(ids("ab"), ["ab"]);
        assert_eq!(ids("b"), ["ab"]);
        // A key no setting reads is refused, naming the key, the run and the file,
        // whether in a run or in the defaults.
        let bad = text.replace("dim = 20", "dimm = 20");
        let e = format!("{:#}", Manifest::parse(&bad, "t.toml").unwrap_err());
        assert!(
            e.contains("t.toml") && e.contains("`dimm`") && e.contains("(\"ab\")"),
            "{e}"
        );
        let bad = text.replace("dim = 10", "nes_sigmaa = 0.1");
        let e = format!("{:#}", Manifest::parse(&bad, "t.toml").unwrap_err());
        assert!(e.contains("`nes_sigmaa`"), "{e}");
        // Every setting of config.json is a key, under its own name.
        let ok = text.replace(
            "dim = 20",
            "dim = 20\nnes_epochs = \"update\"\naugment = false",
        );
        let m = Manifest::parse(&ok, "t.toml").unwrap();
        let b = &m.entries().unwrap()[1];
        assert_eq!(b.settings.nes.nes_epochs, rbd_optim::NesEpochs::Update);
        assert!(!b.data.augment);
    }
}
