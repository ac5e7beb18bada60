//! What a placeholder of the results' text reads (`templates`): the runs of one cell,
//! seed by seed, as epoch rows, with the paper's value where the manifest gives one;
//! or one `rbd tune` search. A cell is named by a path under `results/`:
//!
//! - `ARTEFACT/ID`: a manifest entry of a built-in artefact (every seed on disk), read
//!   by the same code that writes its `summary.csv`; `ARTEFACT/ID/seedN`: one seed;
//! - `DIR/ID`: a peer implementation's runs, `results/DIR/ID/seedN/metrics.jsonl`
//!   (`scripts/train_peer_torch.py`), and `DIR/ID/seedN`;
//! - `DIR/RUN`: a run directory `results/DIR/runs/RUN` outside any manifest;
//! - `tune/NAME`: the search `results/tune/NAME.json`.

use super::manifest::Manifest;
use super::summary::{self, EntryResult};
use super::tune::TuneResult;
use crate::train::metrics::{read_epochs_timed, EpochMetrics};
use crate::train::record;
use crate::train::RunConfig;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One epoch of one seed, in the units the text quotes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// Epoch, from 1.
    pub epoch: u64,
    /// Validation accuracy (%).
    pub val: f64,
    /// Training accuracy on the (augmented) batches of the epoch (%).
    pub train: f64,
    /// Training seconds of the epoch, where recorded.
    pub seconds: Option<f64>,
    /// Mean gradient correlation over the epoch (whole vector).
    pub correlation: Option<f64>,
    /// The released code's pooled per-tensor correlation.
    pub correlation_pooled: Option<f64>,
}

impl Row {
    /// A row of rbd's `metrics.jsonl`.
    pub fn of(m: &EpochMetrics) -> Row {
        Row {
            epoch: m.epoch,
            val: 100.0 * m.val_accuracy,
            train: 100.0 * m.train_accuracy,
            seconds: m.seconds,
            correlation: m.correlation.map(|c| c.mean),
            correlation_pooled: m.correlation_pooled.map(|c| c.mean),
        }
    }
}

/// One seed's rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Seed {
    /// Its seed.
    pub seed: u64,
    /// Its epochs so far (at most the planned epochs).
    pub rows: Vec<Row>,
}

/// The paper's cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paper {
    /// Mean.
    pub mean: f64,
    /// Standard deviation, where printed.
    pub std: Option<f64>,
    /// Its seeds.
    pub seeds: u64,
}

/// The runs of one cell.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The name it was asked by.
    pub name: String,
    /// Planned epochs: a seed is finished when it has them.
    pub epochs: u64,
    /// Every seed on disk.
    pub seeds: Vec<Seed>,
    /// The paper's value.
    pub paper: Option<Paper>,
    /// What the cell says when no seed is finished (`not run`, `running (3/100 epochs)`).
    pub state: String,
    /// Its configuration (of the first seed), where it is an rbd run.
    pub config: Option<RunConfig>,
}

impl Cell {
    /// Seeds that reached the planned epochs.
    pub fn finished(&self) -> impl Iterator<Item = &Seed> {
        self.seeds
            .iter()
            .filter(|s| s.rows.len() as u64 >= self.epochs)
    }

    /// Final validation accuracy of each finished seed (%).
    pub fn values(&self) -> Vec<f64> {
        self.finished()
            .filter_map(|s| s.rows.last().map(|r| r.val))
            .collect()
    }

    /// This cell with only `seed`.
    pub fn only_seed(&self, seed: u64) -> Result<Cell> {
        let s = self
            .seeds
            .iter()
            .find(|s| s.seed == seed)
            .ok_or_else(|| anyhow!("{}: no seed {seed} on disk", self.name))?;
        Ok(Cell {
            name: format!("{}/seed{seed}", self.name),
            seeds: vec![s.clone()],
            state: self.state.clone(),
            ..self.clone()
        })
    }
}

fn cell_of(name: &str, r: &EntryResult, paper_seeds: u64) -> Cell {
    Cell {
        name: name.to_string(),
        epochs: r.epochs,
        seeds: r
            .seed_ids
            .iter()
            .zip(&r.seeds)
            .map(|(seed, rows)| Seed {
                seed: *seed,
                rows: rows.iter().map(Row::of).collect(),
            })
            .collect(),
        paper: r.entry.paper.map(|mean| Paper {
            mean,
            std: r.entry.paper_std,
            seeds: paper_seeds,
        }),
        state: r.ours(),
        config: r.config.clone(),
    }
}

/// A row of `scripts/train_peer_torch.py`'s `metrics.jsonl` (accuracies already in %).
#[derive(serde::Deserialize)]
struct PeerRow {
    epoch: u64,
    val_accuracy: f64,
    train_accuracy: f64,
    #[serde(default)]
    seconds: Option<f64>,
}

/// Reads what the results' text quotes, each artefact once.
pub struct Library {
    results: PathBuf,
    artefacts: BTreeMap<String, (Manifest, Vec<EntryResult>)>,
    tunes: BTreeMap<String, TuneResult>,
}

impl Library {
    /// A library over `results` (the folder that holds every artefact's folder).
    pub fn new(results: &Path) -> Library {
        Library {
            results: results.to_path_buf(),
            artefacts: BTreeMap::new(),
            tunes: BTreeMap::new(),
        }
    }

    /// The results folder.
    pub fn results(&self) -> &Path {
        &self.results
    }

    /// Hands the library an artefact's results already read (the summary's own), so
    /// its placeholders read exactly what its table shows.
    pub fn insert(&mut self, manifest: &Manifest, results: Vec<EntryResult>) {
        self.artefacts
            .insert(manifest.name.clone(), (manifest.clone(), results));
    }

    /// Every entry of a built-in artefact, read from disk once.
    pub fn artefact(&mut self, name: &str) -> Result<&(Manifest, Vec<EntryResult>)> {
        if !self.artefacts.contains_key(name) {
            let m = Manifest::load(name)?;
            let results = summary::collect_all(&m, &self.results)?;
            self.artefacts.insert(name.to_string(), (m, results));
        }
        Ok(&self.artefacts[name])
    }

    /// The cell a placeholder names (see the module's documentation).
    pub fn cell(&mut self, name: &str) -> Result<Cell> {
        let parts: Vec<&str> = name.split('/').collect();
        let (base, seed) = match parts.as_slice() {
            [a, id] => ((*a, *id), None),
            [a, id, s] => {
                let seed = s
                    .strip_prefix("seed")
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| anyhow!("'{name}': the third part must be seedN"))?;
                ((*a, *id), Some(seed))
            }
            _ => bail!("'{name}' is not ARTEFACT/ID or ARTEFACT/ID/seedN"),
        };
        let cell = self.whole_cell(base.0, base.1, name)?;
        match seed {
            Some(s) => cell.only_seed(s),
            None => Ok(cell),
        }
    }

    fn whole_cell(&mut self, artefact: &str, id: &str, name: &str) -> Result<Cell> {
        let built_in = super::manifest::BUILT_IN
            .iter()
            .any(|(n, _)| *n == artefact);
        if built_in || self.artefacts.contains_key(artefact) {
            let (m, results) = self.artefact(artefact)?;
            let paper_seeds = m.paper_seeds();
            let r = results.iter().find(|r| r.entry.id == id).ok_or_else(|| {
                anyhow!(
                    "'{name}': {artefact} has no run '{id}' (it has {})",
                    results
                        .iter()
                        .map(|r| r.entry.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            return Ok(cell_of(name, r, paper_seeds));
        }
        let folder = self.results.join(artefact);
        let run = folder.join("runs").join(id);
        if record::has(&run, crate::train::trainer::CONFIG) {
            return plain_run(name, &run);
        }
        let peer = folder.join(id);
        if peer.is_dir() {
            return peer_cell(name, &peer);
        }
        bail!(
            "'{name}': no built-in artefact '{artefact}', no run {} and no peer runs {}",
            run.display(),
            peer.display()
        )
    }

    /// The `rbd tune` search `results/tune/NAME.json`.
    pub fn tune(&mut self, name: &str) -> Result<&TuneResult> {
        if !self.tunes.contains_key(name) {
            let file = self.results.join("tune").join(format!("{name}.json"));
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("'tune/{name}': reading {}", file.display()))?;
            let r: TuneResult = serde_json::from_str(&text)
                .with_context(|| format!("{}: not an rbd tune result", file.display()))?;
            self.tunes.insert(name.to_string(), r);
        }
        Ok(&self.tunes[name])
    }
}

/// A run directory outside any manifest: one seed, finished at its configured epochs.
fn plain_run(name: &str, dir: &Path) -> Result<Cell> {
    let cfg = crate::reproduce::runner::read_config(dir)?;
    let rows: Vec<Row> = read_epochs_timed(dir)?.iter().map(Row::of).collect();
    Ok(Cell {
        name: name.to_string(),
        epochs: cfg.epochs,
        state: format!("running ({}/{} epochs)", rows.len(), cfg.epochs),
        seeds: vec![Seed {
            seed: cfg.seed,
            rows,
        }],
        paper: None,
        config: Some(cfg),
    })
}

/// A peer implementation's runs: `DIR/seedN/{config.json, metrics.jsonl}`.
fn peer_cell(name: &str, dir: &Path) -> Result<Cell> {
    let mut seeds = Vec::new();
    let mut epochs = 0;
    let entries: Vec<PathBuf> = record::runs_in(dir)?
        .into_iter()
        .filter(|p| record::has(p, "metrics.jsonl"))
        .collect();
    for seed_dir in entries {
        let config = record::describe(&seed_dir, "config.json");
        let metrics = record::describe(&seed_dir, "metrics.jsonl");
        let cfg: serde_json::Value = serde_json::from_str(
            &record::text(&seed_dir, "config.json")?.ok_or_else(|| anyhow!("{config}: missing"))?,
        )
        .with_context(|| format!("{config}: not a peer run's config"))?;
        let field = |k: &str| {
            cfg.get(k)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| anyhow!("{config}: no '{k}'"))
        };
        epochs = field("epochs")?;
        let text = record::text(&seed_dir, "metrics.jsonl")?.unwrap_or_default();
        let mut rows = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let r: PeerRow =
                serde_json::from_str(line).with_context(|| format!("{metrics} line {}", i + 1))?;
            rows.push(Row {
                epoch: r.epoch,
                val: r.val_accuracy,
                train: r.train_accuracy,
                seconds: r.seconds,
                correlation: None,
                correlation_pooled: None,
            });
        }
        rows.truncate(epochs as usize);
        seeds.push(Seed {
            seed: field("seed")?,
            rows,
        });
    }
    seeds.sort_by_key(|s| s.seed);
    Ok(Cell {
        name: name.to_string(),
        epochs,
        state: "running".into(),
        seeds,
        paper: None,
        config: None,
    })
}
