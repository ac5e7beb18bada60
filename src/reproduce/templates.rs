//! Text that quotes results without typing them: a placeholder `{{CELL STAT [ARG] [FORMAT]}}`
//! names a cell of the committed runs (`sources`) and a statistic of it, and is replaced
//! by the number when the artefact is summarised, so adding a seed updates every sentence
//! that quotes the cell. Examples:
//!
//! - `{{table1/fc-mnist-sgd mean±std}}` → `98.05 ± 0.11`; `cell` adds the seeds;
//! - `{{table1/fc-fmnist-rbd diff}}` → `−5.96` (ours minus the paper's);
//! - `{{table1-plain/cnn-fmnist-rbd minus table1/cnn-fmnist-rbd .1}}` → `+5.2`;
//! - `{{peer-torch/cnn-fmnist-sgd welch table1/cnn-fmnist-sgd}}` → `0.79` (Welch's p);
//! - `{{tune/fc-fmnist-sgd-d250 loss -4}}` → `0.437`;
//! - `{{quote 76.9}}` → `76.9`: a number typed by hand, with its source beside it (a
//!   command's printed output that no committed run holds, a threshold, a hypothetical);
//!   the only way to type a result-like number.
//!
//! [`lint`] lists every result-like number typed outside a placeholder, so a test can
//! hold the findings to this.

use super::sources::{Cell, Library, Row};
use super::stats::{self, mean_std};
use anyhow::{anyhow, bail, Context, Result};

/// Every statistic a placeholder may ask for, with what it gives (for errors and docs).
pub const STATS: &[(&str, &str)] = &[
    (
        "mean",
        "mean final validation accuracy (%) over finished seeds",
    ),
    (
        "std",
        "its sample standard deviation, or `(1 seed: no std)`",
    ),
    ("mean±std", "`m ± s`, or `m` for one seed"),
    (
        "cell",
        "`m ± s (n seeds)`, `m (1 seed)`, or the cell's state",
    ),
    ("n", "finished seeds"),
    ("seeds", "`n seeds` / `1 seed`"),
    (
        "values",
        "each finished seed's final accuracy, comma-separated",
    ),
    ("seed-ids", "the finished seeds' numbers, comma-separated"),
    ("paper", "the paper's `m ± s`"),
    ("paper-mean", "the paper's mean"),
    ("paper-std", "the paper's standard deviation"),
    ("paper-seeds", "the paper's seed count"),
    ("paper-se", "the paper's standard error, std/√seeds"),
    ("diff", "ours minus the paper's, signed"),
    (
        "sigmas",
        "|ours − paper| in the paper's standard deviations",
    ),
    (
        "welch-paper",
        "Welch's two-sided p against the paper's cell",
    ),
    ("minus CELL", "our mean minus CELL's, signed"),
    (
        "paired-minus CELL",
        "mean ± std of the per-seed differences (seeds in both)",
    ),
    ("welch CELL", "Welch's two-sided p between the two cells"),
    ("ratio CELL", "our mean as % of CELL's"),
    (
        "at E",
        "mean validation accuracy at epoch E (seeds that have it)",
    ),
    ("train", "mean final training accuracy (%)"),
    ("train at E", "mean training accuracy at epoch E"),
    (
        "train-range",
        "`lo–hi` of the finished seeds' final training accuracy",
    ),
    (
        "last10-range",
        "`lo–hi` of validation accuracy over the last 10 epochs, all seeds",
    ),
    (
        "last10-mean",
        "mean over seeds of each seed's last-10-epoch mean",
    ),
    ("last10-mean±std", "the same with the std over seeds"),
    (
        "best",
        "each finished seed's best validation accuracy, comma-separated",
    ),
    ("best-mean", "the mean of those"),
    ("best-epochs", "the epochs of those, comma-separated"),
    (
        "best-mean-diff",
        "the best-epoch mean minus the paper's, signed",
    ),
    (
        "last10-minus CELL",
        "our last-10-epoch mean minus CELL's, signed",
    ),
    (
        "pooled CELL",
        "`m ± s (n seeds)` over our finished seeds and CELL's together",
    ),
    (
        "pooled-welch-paper CELL",
        "Welch's p of those pooled seeds against our paper value",
    ),
    ("first-reach X", "first epoch the mean curve reaches X %"),
    (
        "stays-above X",
        "first epoch from which the mean curve stays at or above X %",
    ),
    (
        "corr",
        "mean gradient correlation over the last epoch (whole vector)",
    ),
    (
        "corr-pooled",
        "the released code's pooled per-tensor correlation",
    ),
    (
        "hours",
        "training hours of the whole run, mean over finished seeds",
    ),
    (
        "epoch-minutes E",
        "minutes of training in epoch E, mean over seeds",
    ),
    (
        "median-epoch-minutes",
        "the median epoch's minutes (first seed)",
    ),
    ("D", "the run's parameter count"),
    (
        "sqrt-d/D",
        "√(d/D): a random d-dimensional projection's expected cosine",
    ),
    ("best (tune/…)", "the chosen rate, `2^E`"),
    ("loss E (tune/…)", "held-out loss at 2^E"),
    ("acc E (tune/…)", "held-out accuracy (%) at 2^E"),
];

/// How a number is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Format {
    decimals: Option<usize>,
    abs: bool,
}

/// A parsed placeholder.
#[derive(Clone, Debug, PartialEq)]
struct Placeholder {
    cell: String,
    stat: String,
    args: Vec<String>,
    format: Format,
}

fn parse(inner: &str) -> Result<Placeholder> {
    let mut words: Vec<&str> = inner.split_whitespace().collect();
    let mut format = Format::default();
    while let Some(last) = words.last() {
        if let Some(d) = last.strip_prefix('.').and_then(|d| d.parse::<usize>().ok()) {
            format.decimals = Some(d);
        } else if *last == "abs" {
            format.abs = true;
        } else {
            break;
        }
        words.pop();
    }
    match words.as_slice() {
        [cell, stat, args @ ..] => Ok(Placeholder {
            cell: cell.to_string(),
            stat: stat.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            format,
        }),
        _ => bail!(
            "'{{{{{inner}}}}}' needs a cell and a statistic, e.g. {{{{table1/fc-mnist-sgd mean}}}}"
        ),
    }
}

/// `x` with `decimals`, negative numbers with a real minus sign.
fn number(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, x);
    match s.strip_prefix('-') {
        // "-0.00" is zero at this precision.
        Some(rest) if rest.chars().any(|c| c.is_ascii_digit() && c != '0') => format!("−{rest}"),
        Some(rest) => rest.to_string(),
        None => s,
    }
}

/// `x` with a sign always (`+2.13`, `−0.48`).
fn signed(x: f64, decimals: usize) -> String {
    let s = number(x, decimals);
    if s.starts_with('−') || s.chars().all(|c| c == '0' || c == '.') {
        s
    } else {
        format!("+{s}")
    }
}

fn join(xs: &[f64], decimals: usize) -> String {
    xs.iter()
        .map(|x| number(*x, decimals))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The mean validation (or training) accuracy of the seeds that reached `epoch`.
fn at_epoch(cell: &Cell, epoch: u64, f: fn(&Row) -> f64) -> Option<f64> {
    let xs: Vec<f64> = cell
        .seeds
        .iter()
        .filter_map(|s| s.rows.get(epoch.checked_sub(1)? as usize).map(f))
        .collect();
    mean_std(&xs).map(|m| m.0)
}

/// The mean validation curve over finished seeds (over all seeds if none finished).
fn mean_curve(cell: &Cell) -> Vec<f64> {
    let seeds: Vec<_> = if cell.finished().next().is_some() {
        cell.finished().collect()
    } else {
        cell.seeds.iter().collect()
    };
    let longest = seeds.iter().map(|s| s.rows.len()).max().unwrap_or(0);
    (0..longest)
        .filter_map(|e| {
            let xs: Vec<f64> = seeds
                .iter()
                .filter_map(|s| s.rows.get(e).map(|r| r.val))
                .collect();
            mean_std(&xs).map(|m| m.0)
        })
        .collect()
}

/// The mean over finished seeds of each seed's last-10-epoch mean.
fn last10_mean(cell: &Cell) -> Option<f64> {
    let means: Vec<f64> = cell
        .finished()
        .filter_map(|s| {
            let last = &s.rows[s.rows.len().saturating_sub(10)..];
            mean_std(&last.iter().map(|r| r.val).collect::<Vec<_>>()).map(|m| m.0)
        })
        .collect();
    mean_std(&means).map(|m| m.0)
}

fn epoch_arg(args: &[String], what: &str) -> Result<u64> {
    args.first()
        .and_then(|a| a.parse::<u64>().ok())
        .filter(|e| *e >= 1)
        .ok_or_else(|| anyhow!("'{what}' needs an epoch number (from 1)"))
}

fn level_arg(args: &[String], what: &str) -> Result<f64> {
    args.first()
        .and_then(|a| a.parse::<f64>().ok())
        .ok_or_else(|| anyhow!("'{what}' needs an accuracy in %"))
}

/// The other side of a comparison: a cell's runs, or (`paper:CELL`) the paper's value
/// of a cell as mean, std and seeds.
struct Other {
    mean: Option<f64>,
    welch: Option<stats::Cell>,
    cell: Option<Cell>,
    state: String,
}

fn other_side(lib: &mut Library, args: &[String], what: &str) -> Result<Other> {
    let name = args.first().ok_or_else(|| {
        anyhow!("'{what}' needs another cell, e.g. {what} table1/fc-mnist-sgd, or paper:table1/fc-mnist-sgd")
    })?;
    if let Some(name) = name.strip_prefix("paper:") {
        let c = lib.cell(name)?;
        let p = c
            .paper
            .ok_or_else(|| anyhow!("{name} has no paper value in its manifest"))?;
        return Ok(Other {
            mean: Some(p.mean),
            welch: p.std.map(|std| stats::Cell {
                mean: p.mean,
                std,
                n: p.seeds as f64,
            }),
            cell: None,
            state: String::new(),
        });
    }
    let c = lib.cell(name)?;
    let v = c.values();
    let ms = mean_std(&v);
    Ok(Other {
        mean: ms.map(|m| m.0),
        welch: ms.map(|(mean, std)| stats::Cell {
            mean,
            std,
            n: v.len() as f64,
        }),
        state: c.state.clone(),
        cell: Some(c),
    })
}

/// What a statistic says where the runs cannot give it yet.
fn missing(cell: &Cell, what: &str) -> String {
    format!("(n/a: {} — {what})", cell.state)
}

fn cell_stat(lib: &mut Library, p: &Placeholder, cell: &Cell) -> Result<String> {
    let d = |default: usize| p.format.decimals.unwrap_or(default);
    let fmt = |x: f64, default: usize| {
        let x = if p.format.abs { x.abs() } else { x };
        number(x, d(default))
    };
    let values = cell.values();
    let ms = mean_std(&values);
    let no_seed = || missing(cell, "no finished seed");
    let paper = cell.paper;
    let no_paper = || anyhow!("{} has no paper value in its manifest", cell.name);
    let finished_rows = || cell.finished().map(|s| s.rows.as_slice());
    Ok(match p.stat.as_str() {
        "mean" => ms.map_or_else(no_seed, |m| fmt(m.0, 2)),
        // One seed has no spread: a printed 0.00 would read as a measured one.
        "std" => match ms {
            Some(_) if values.len() < 2 => "(1 seed: no std)".into(),
            Some(m) => fmt(m.1, 2),
            None => no_seed(),
        },
        "mean±std" => match ms {
            Some((m, s)) if values.len() > 1 => format!("{} ± {}", fmt(m, 2), fmt(s, 2)),
            Some((m, _)) => fmt(m, 2),
            None => no_seed(),
        },
        "cell" => match ms {
            Some((m, s)) if values.len() > 1 => {
                format!("{} ± {} ({} seeds)", fmt(m, 2), fmt(s, 2), values.len())
            }
            Some((m, _)) => format!("{} (1 seed)", fmt(m, 2)),
            None => cell.state.clone(),
        },
        "n" => values.len().to_string(),
        "seeds" => match values.len() {
            1 => "1 seed".into(),
            n => format!("{n} seeds"),
        },
        "values" => {
            if values.is_empty() {
                no_seed()
            } else {
                join(&values, d(2))
            }
        }
        "seed-ids" => cell
            .finished()
            .map(|s| s.seed.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        "paper" => {
            let pp = paper.ok_or_else(no_paper)?;
            match pp.std {
                Some(s) => format!("{} ± {}", pp.mean, s),
                None => pp.mean.to_string(),
            }
        }
        "paper-mean" => paper.ok_or_else(no_paper)?.mean.to_string(),
        "paper-std" => paper
            .ok_or_else(no_paper)?
            .std
            .ok_or_else(no_paper)?
            .to_string(),
        "paper-seeds" => paper.ok_or_else(no_paper)?.seeds.to_string(),
        "paper-se" => {
            let pp = paper.ok_or_else(no_paper)?;
            fmt(pp.std.ok_or_else(no_paper)? / (pp.seeds as f64).sqrt(), 1)
        }
        "diff" => {
            let pp = paper.ok_or_else(no_paper)?;
            ms.map_or_else(no_seed, |m| signed_fmt(m.0 - pp.mean, d(2), p.format.abs))
        }
        "sigmas" => {
            let pp = paper.ok_or_else(no_paper)?;
            let s = pp.std.ok_or_else(no_paper)?;
            ms.map_or_else(no_seed, |m| number((m.0 - pp.mean).abs() / s, d(1)))
        }
        "welch-paper" => {
            let pp = paper.ok_or_else(no_paper)?;
            let theirs = stats::Cell {
                mean: pp.mean,
                std: pp.std.ok_or_else(no_paper)?,
                n: pp.seeds as f64,
            };
            let mine = ms.map(|(mean, std)| stats::Cell {
                mean,
                std,
                n: values.len() as f64,
            });
            match mine.and_then(|c| stats::welch(c, theirs)) {
                Some((_, _, pv)) => number(pv, d(3)),
                None => missing(cell, "Welch's test needs 2 seeds"),
            }
        }
        "minus" | "ratio" | "welch" | "paired-minus" => {
            let other = other_side(lib, &p.args, &p.stat)?;
            let Some((mine, mine_std)) = ms else {
                return Ok(no_seed());
            };
            let Some(theirs) = other.mean else {
                return Ok(missing(
                    &Cell {
                        state: other.state.clone(),
                        ..cell.clone()
                    },
                    "the other side has no finished seed",
                ));
            };
            match p.stat.as_str() {
                "minus" => signed_fmt(mine - theirs, d(2), p.format.abs),
                "ratio" => fmt(100.0 * mine / theirs, 1),
                "welch" => {
                    let a = stats::Cell {
                        mean: mine,
                        std: mine_std,
                        n: values.len() as f64,
                    };
                    match other.welch.and_then(|b| stats::welch(a, b)) {
                        Some((_, _, pv)) => number(pv, d(3)),
                        None => missing(cell, "Welch's test needs 2 seeds a side"),
                    }
                }
                _ => {
                    let other_cell = other.cell.ok_or_else(|| {
                        anyhow!("paired-minus needs runs on both sides, not the paper's value")
                    })?;
                    let diffs: Vec<f64> = cell
                        .finished()
                        .filter_map(|s| {
                            let o = other_cell.finished().find(|o| o.seed == s.seed)?;
                            Some(s.rows.last()?.val - o.rows.last()?.val)
                        })
                        .collect();
                    match mean_std(&diffs) {
                        Some((m, s)) if diffs.len() > 1 => format!(
                            "{} ± {} ({} seeds)",
                            signed_fmt(m, d(2), p.format.abs),
                            fmt(s, 2),
                            diffs.len()
                        ),
                        Some((m, _)) => format!("{} (1 seed)", signed_fmt(m, d(2), p.format.abs)),
                        None => missing(cell, "no seed finished on both sides"),
                    }
                }
            }
        }
        "at" => {
            let e = epoch_arg(&p.args, "at")?;
            at_epoch(cell, e, |r| r.val).map_or_else(
                || missing(cell, &format!("epoch {e} not reached")),
                |x| fmt(x, 2),
            )
        }
        "train" if p.args.first().map(String::as_str) == Some("at") => {
            let e = epoch_arg(&p.args[1..], "train at")?;
            at_epoch(cell, e, |r| r.train).map_or_else(
                || missing(cell, &format!("epoch {e} not reached")),
                |x| fmt(x, 2),
            )
        }
        "train" => {
            let xs: Vec<f64> = finished_rows()
                .filter_map(|r| r.last().map(|r| r.train))
                .collect();
            mean_std(&xs).map_or_else(no_seed, |m| fmt(m.0, 2))
        }
        "train-range" => {
            let xs: Vec<f64> = finished_rows()
                .filter_map(|r| r.last().map(|r| r.train))
                .collect();
            range(&xs).map_or_else(no_seed, |(lo, hi)| format!("{}–{}", fmt(lo, 2), fmt(hi, 2)))
        }
        "last10-range" => {
            let xs: Vec<f64> = finished_rows()
                .flat_map(|r| r[r.len().saturating_sub(10)..].iter().map(|r| r.val))
                .collect();
            range(&xs).map_or_else(no_seed, |(lo, hi)| format!("{}–{}", fmt(lo, 2), fmt(hi, 2)))
        }
        "last10-mean" | "last10-mean±std" => {
            let means: Vec<f64> = finished_rows()
                .filter_map(|r| {
                    let last = &r[r.len().saturating_sub(10)..];
                    mean_std(&last.iter().map(|r| r.val).collect::<Vec<_>>()).map(|m| m.0)
                })
                .collect();
            match (mean_std(&means), p.stat.as_str()) {
                (None, _) => no_seed(),
                (Some((m, s)), "last10-mean±std") if means.len() > 1 => {
                    format!("{} ± {}", fmt(m, 2), fmt(s, 2))
                }
                (Some((m, _)), _) => fmt(m, 2),
            }
        }
        "best" | "best-mean" | "best-epochs" => {
            let bests: Vec<(f64, u64)> = finished_rows()
                .filter_map(|r| {
                    r.iter()
                        .map(|r| (r.val, r.epoch))
                        // The first epoch of the best value.
                        .fold(None, |acc: Option<(f64, u64)>, x| match acc {
                            Some(a) if a.0 >= x.0 => Some(a),
                            _ => Some(x),
                        })
                })
                .collect();
            if bests.is_empty() {
                no_seed()
            } else {
                match p.stat.as_str() {
                    "best" => join(&bests.iter().map(|b| b.0).collect::<Vec<_>>(), d(2)),
                    "best-mean" => fmt(
                        mean_std(&bests.iter().map(|b| b.0).collect::<Vec<_>>())
                            .unwrap()
                            .0,
                        2,
                    ),
                    _ => bests
                        .iter()
                        .map(|b| b.1.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            }
        }
        "best-mean-diff" => {
            let pp = paper.ok_or_else(no_paper)?;
            let bests: Vec<f64> = finished_rows()
                .filter_map(|r| r.iter().map(|r| r.val).reduce(f64::max))
                .collect();
            mean_std(&bests).map_or_else(no_seed, |m| signed_fmt(m.0 - pp.mean, d(2), p.format.abs))
        }
        "last10-minus" => {
            let other = other_side(lib, &p.args, "last10-minus")?;
            let other = other
                .cell
                .ok_or_else(|| anyhow!("last10-minus compares runs, not the paper's value"))?;
            match (last10_mean(cell), last10_mean(&other)) {
                (Some(a), Some(b)) => signed_fmt(a - b, d(2), p.format.abs),
                _ => no_seed(),
            }
        }
        "pooled" | "pooled-welch-paper" => {
            let other = other_side(lib, &p.args, &p.stat)?;
            let other = other
                .cell
                .ok_or_else(|| anyhow!("{} pools runs, not the paper's value", p.stat))?;
            let mut all = values.clone();
            all.extend(other.values());
            let Some((m, s)) = mean_std(&all) else {
                return Ok(no_seed());
            };
            if p.stat == "pooled" {
                format!("{} ± {} ({} seeds)", fmt(m, 2), fmt(s, 2), all.len())
            } else {
                let pp = paper.ok_or_else(no_paper)?;
                let theirs = stats::Cell {
                    mean: pp.mean,
                    std: pp.std.ok_or_else(no_paper)?,
                    n: pp.seeds as f64,
                };
                let mine = stats::Cell {
                    mean: m,
                    std: s,
                    n: all.len() as f64,
                };
                match stats::welch(mine, theirs) {
                    Some((_, _, pv)) => number(pv, d(3)),
                    None => missing(cell, "Welch's test needs 2 seeds a side"),
                }
            }
        }
        "first-reach" | "stays-above" => {
            let level = level_arg(&p.args, &p.stat)?;
            let curve = mean_curve(cell);
            let epoch = if p.stat == "first-reach" {
                curve.iter().position(|v| *v >= level)
            } else {
                let below = curve.iter().rposition(|v| *v < level);
                match below {
                    None if !curve.is_empty() => Some(0),
                    Some(i) if i + 1 < curve.len() => Some(i + 1),
                    _ => None,
                }
            };
            epoch.map_or_else(
                || missing(cell, &format!("never at {level}%")),
                |e| (e + 1).to_string(),
            )
        }
        "corr" | "corr-pooled" => {
            let pooled = p.stat == "corr-pooled";
            let xs: Vec<f64> = finished_rows()
                .filter_map(|r| {
                    let last = r.last()?;
                    if pooled {
                        last.correlation_pooled
                    } else {
                        last.correlation
                    }
                })
                .collect();
            mean_std(&xs).map_or_else(|| missing(cell, "no correlation logged"), |m| fmt(m.0, 3))
        }
        "hours" => {
            let xs: Vec<f64> = finished_rows()
                .filter_map(|r| r.iter().map(|r| r.seconds).sum::<Option<f64>>())
                .collect();
            mean_std(&xs).map_or_else(
                || missing(cell, "time not recorded"),
                |m| fmt(m.0 / 3600.0, 2),
            )
        }
        "epoch-minutes" | "epoch-seconds" => {
            let e = epoch_arg(&p.args, &p.stat)?;
            let unit = if p.stat == "epoch-minutes" { 60.0 } else { 1.0 };
            let xs: Vec<f64> = cell
                .seeds
                .iter()
                .filter_map(|s| s.rows.get(e as usize - 1)?.seconds)
                .collect();
            mean_std(&xs).map_or_else(
                || missing(cell, &format!("epoch {e}'s time not recorded")),
                |m| fmt(m.0 / unit, 0),
            )
        }
        "median-epoch-minutes" | "median-epoch-seconds" => {
            let unit = if p.stat == "median-epoch-minutes" {
                60.0
            } else {
                1.0
            };
            let mut xs: Vec<f64> = cell
                .seeds
                .first()
                .map(|s| s.rows.iter().filter_map(|r| r.seconds).collect())
                .unwrap_or_default();
            xs.sort_by(f64::total_cmp);
            match xs.get(xs.len() / 2) {
                Some(m) => fmt(m / unit, 0),
                None => missing(cell, "time not recorded"),
            }
        }
        "our-sigmas" => {
            let pp = paper.ok_or_else(no_paper)?;
            match ms {
                Some((m, s)) if values.len() > 1 && s > 0.0 => {
                    number((m - pp.mean).abs() / s, d(1))
                }
                _ => missing(cell, "our std needs 2 seeds"),
            }
        }
        "welch-paper-at" => {
            let pp = paper.ok_or_else(no_paper)?;
            let n: f64 = p
                .args
                .first()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| anyhow!("'welch-paper-at' needs a seed count"))?;
            let theirs = stats::Cell {
                mean: pp.mean,
                std: pp.std.ok_or_else(no_paper)?,
                n: pp.seeds as f64,
            };
            match ms.and_then(|(mean, std)| stats::welch(stats::Cell { mean, std, n }, theirs)) {
                Some((_, _, pv)) => number(pv, d(3)),
                None => missing(cell, "Welch's test needs 2 seeds a side"),
            }
        }
        "D" | "sqrt-d/D" => {
            let cfg = cell
                .config
                .as_ref()
                .ok_or_else(|| anyhow!("{}: not an rbd run (no configuration)", cell.name))?;
            let big_d = parameter_count(cfg)?;
            if p.stat == "D" {
                thousands(big_d)
            } else {
                fmt(
                    (cfg.settings.directions.dim as f64 / big_d as f64).sqrt(),
                    3,
                )
            }
        }
        other => bail!(
            "unknown statistic '{other}' (one of: {})",
            STATS
                .iter()
                .map(|(s, _)| *s)
                .filter(|s| !s.contains("tune"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn signed_fmt(x: f64, decimals: usize, abs: bool) -> String {
    if abs {
        number(x.abs(), decimals)
    } else {
        signed(x, decimals)
    }
}

fn range(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    Some((
        xs.iter().cloned().fold(f64::INFINITY, f64::min),
        xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    ))
}

/// `101770` → `101,770`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// D of a run's model on its data.
fn parameter_count(cfg: &crate::train::RunConfig) -> Result<usize> {
    let (c, h, w) = cfg.dataset.shape();
    let model = rbd_models::build(cfg.model, c, h, w, &rbd_engine::Device::Cpu)?;
    Ok(model.layout().total)
}

fn tune_stat(lib: &mut Library, p: &Placeholder, name: &str) -> Result<String> {
    let r = lib.tune(name)?;
    let d = |default: usize| p.format.decimals.unwrap_or(default);
    let trial = |what: &str| -> Result<&super::tune::Trial> {
        let e: i32 = p
            .args
            .first()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| anyhow!("'{what}' needs a rate exponent, e.g. {what} -4"))?;
        r.trials
            .iter()
            .find(|t| t.exponent == e)
            .ok_or_else(|| anyhow!("tune/{name} tried no rate 2^{e}"))
    };
    Ok(match p.stat.as_str() {
        "best" => format!("2^{}", r.best_exponent),
        "loss" => number(trial("loss")?.held_out_loss, d(3)),
        "acc" => number(100.0 * trial("acc")?.held_out_accuracy, d(1)),
        other => bail!("unknown statistic '{other}' of a tune search (best, loss E, acc E)"),
    })
}

fn evaluate(lib: &mut Library, inner: &str) -> Result<String> {
    let trimmed = inner.trim();
    if let Some(q) = trimmed.strip_prefix("quote ") {
        return Ok(q.trim().to_string());
    }
    let p = parse(trimmed)?;
    if let Some(name) = p.cell.strip_prefix("tune/") {
        return tune_stat(lib, &p, name);
    }
    let cell = lib.cell(&p.cell)?;
    cell_stat(lib, &p, &cell)
}

/// `text` with every placeholder replaced; `origin` names the text in errors.
pub fn expand(text: &str, lib: &mut Library, origin: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            anyhow!(
                "{origin}: line {}: '{{{{' without '}}}}'",
                line_of(text, rest, start)
            )
        })?;
        let inner = &after[..end];
        let value = evaluate(lib, inner).with_context(|| {
            format!(
                "{origin}: line {}: {{{{{inner}}}}}",
                line_of(text, rest, start)
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn line_of(text: &str, rest: &str, offset: usize) -> usize {
    let at = text.len() - rest.len() + offset;
    text[..at].matches('\n').count() + 1
}

/// Every result-like number in `text` typed by hand: outside placeholders and `code`,
/// a decimal (`93.41`), a percentage (`95%`) or a seed count (`2 seeds`). Each as
/// (line, the number in its context).
pub fn lint(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in blank_out(text).lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut j = 0;
        while j < chars.len() {
            if !chars[j].is_ascii_digit() || (j > 0 && is_word(chars[j - 1])) {
                j += 1;
                continue;
            }
            let start = j;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let decimal = j + 1 < chars.len() && chars[j] == '.' && chars[j + 1].is_ascii_digit();
            if decimal {
                j += 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
            }
            let tail: String = chars[j..].iter().take(7).collect();
            let percent = tail.starts_with('%');
            let seeds = tail
                .strip_prefix(" seed")
                .is_some_and(|t| t.starts_with('s') || !t.starts_with(char::is_alphanumeric));
            // A version or commit (`2.15.0`, `0848a7d`) is not a result.
            let part_of_word = j < chars.len()
                && (is_word(chars[j])
                    || (chars[j] == '.' && chars.get(j + 1).is_some_and(char::is_ascii_digit)));
            if (decimal || percent || seeds) && !part_of_word {
                let from = start.saturating_sub(20);
                let to = (j + 12).min(chars.len());
                found.push((i + 1, chars[from..to].iter().collect::<String>()));
            }
        }
    }
    found
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '^'
}

/// `text` with placeholders, code spans and fenced code blocks replaced by spaces
/// (lines kept).
fn blank_out(text: &str) -> String {
    let mut fenced = false;
    let text: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return String::new();
            }
            if fenced {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    let mut in_placeholder = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_placeholder {
            if c == '}' && chars.peek() == Some(&'}') {
                chars.next();
                in_placeholder = false;
            }
            out.push(if c == '\n' { '\n' } else { ' ' });
            continue;
        }
        if c == '{' && chars.peek() == Some(&'{') {
            chars.next();
            in_placeholder = true;
            out.push(' ');
            continue;
        }
        if c == '`' {
            in_code = !in_code;
            out.push(' ');
            continue;
        }
        out.push(if in_code && c != '\n' { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_with_a_real_minus_and_signs_where_asked() {
        assert_eq!(number(-5.956, 2), "−5.96");
        assert_eq!(number(-0.001, 2), "0.00");
        assert_eq!(signed(2.133, 2), "+2.13");
        assert_eq!(signed(-0.48, 2), "−0.48");
        assert_eq!(signed(0.0, 2), "0.00");
        assert_eq!(thousands(101_770), "101,770");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn placeholders_parse_with_arguments_and_formats() {
        let p = parse(" table1/fc-mnist-rbd minus table1/fc-mnist-fpd .1 abs ").unwrap();
        assert_eq!(p.cell, "table1/fc-mnist-rbd");
        assert_eq!(p.stat, "minus");
        assert_eq!(p.args, ["table1/fc-mnist-fpd"]);
        assert_eq!(
            p.format,
            Format {
                decimals: Some(1),
                abs: true
            }
        );
        assert!(parse("table1/fc-mnist-rbd").is_err());
    }

    #[test]
    fn the_lint_finds_typed_results_and_spares_placeholders_code_and_names() {
        let text = "ends at 93.41 (2 seeds), {{table1/x mean}} and `0.5`; 95% there;\n\
                    commit 0848a7d, PyTorch `2.15`, 2^-4, epoch 73, {{quote 76.9}}, seed 0\n\
                    ```\nrbd train --lr 0.015625\n```\n";
        let found: Vec<String> = lint(text).into_iter().map(|f| f.1).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("93.41"));
        assert!(found[1].contains("2 seeds"));
        assert!(found[2].contains("95%"));
    }

    #[test]
    fn an_unclosed_or_unknown_placeholder_is_an_error_naming_its_line() {
        let mut lib = Library::new(std::path::Path::new("/nonexistent"));
        let e = expand("a\nb {{table1/x mean", &mut lib, "f.md").unwrap_err();
        assert!(format!("{e:#}").contains("f.md: line 2"), "{e:#}");
        let e = expand("{{nowhere/x mean}}", &mut lib, "f.md").unwrap_err();
        assert!(format!("{e:#}").contains("nowhere/x"), "{e:#}");
        assert_eq!(
            expand("x {{quote 7.5}} y", &mut lib, "f").unwrap(),
            "x 7.5 y"
        );
    }
}
