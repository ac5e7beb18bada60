//! Measured step costs kept between processes (`estimates.json` in the data directory),
//! keyed by machine kind, binary commit and device, so a status view reads them instead
//! of timing steps against a campaign. Only costs measured while the machine was quiet
//! are kept: a cost measured beside a compiler is too high by an unknown factor.

use super::estimate::Cost;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest share of their ready time the contention probes run around the
/// measured steps ([`super::contention`]) may have waited for a core for the cost to be
/// kept. On a quiet machine they wait next to nothing; one busy thread of another
/// process beside a 2-core machine's two probes makes them wait about a third.
pub const QUIET: f64 = 0.10;

/// The costs kept in one file for one machine kind, binary and device.
pub struct CostCache {
    file: Option<PathBuf>,
    prefix: String,
}

impl CostCache {
    /// The cache in `file` (none: nothing is kept) for costs measured under `prefix`
    /// (machine kind, commit and device).
    pub fn new(file: Option<PathBuf>, prefix: String) -> Self {
        CostCache { file, prefix }
    }

    /// The file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn read_all(&self) -> BTreeMap<String, Cost> {
        self.file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The kept costs of this machine kind, binary and device, by run shape.
    pub fn load(&self) -> BTreeMap<String, Cost> {
        self.read_all()
            .into_iter()
            .filter_map(|(k, c)| Some((k.strip_prefix(&self.prefix)?.to_string(), c)))
            .collect()
    }

    /// Keeps `cost` for `key` if it was measured on a quiet machine; returns whether it
    /// was kept. A failure to write only loses the cache, never the estimate.
    pub fn keep(&self, key: &str, cost: Cost) -> bool {
        let Some(path) = &self.file else {
            return false;
        };
        if !cost.waited.is_some_and(|o| o <= QUIET) {
            return false;
        }
        let mut all = self.read_all();
        all.insert(format!("{}{key}", self.prefix), cost);
        let Ok(text) = serde_json::to_string_pretty(&all) else {
            return false;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::train::run_dir::write_atomic(path, text.as_bytes()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(waited: Option<f64>) -> Cost {
        Cost {
            step: 0.25,
            batch: 0.001,
            eval_image: 1e-5,
            waited,
        }
    }

    /// Quiet costs are kept and read back under their own machine, binary and device
    /// only; busy ones, and ones whose quietness is unknown, are not kept.
    #[test]
    fn only_quiet_costs_are_kept_and_only_for_their_prefix() {
        let dir = std::env::temp_dir().join(format!("rbd-cost-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("estimates.json");
        let here = CostCache::new(Some(file.clone()), "m | c1 | cpu | ".into());
        assert!(here.keep("rbd shape", cost(Some(0.02))));
        assert!(!here.keep("fpd shape", cost(Some(0.45))));
        assert!(!here.keep("nes shape", cost(None)));
        let loaded = here.load();
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["rbd shape"]);
        assert_eq!(loaded["rbd shape"].step, 0.25);
        // Another binary (or machine kind) sees none of them.
        let other = CostCache::new(Some(file), "m | c2 | cpu | ".into());
        assert!(other.load().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
