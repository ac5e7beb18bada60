//! Manifests (`reproduce/*.toml`): the built-in manifests, cut to 1–3 runs and 1–2 seeds
//! so a case plans in milliseconds, then mutated (see [`crate::toml_mut`]). The parser
//! is what `rbd reproduce FILE.toml` runs before training: `Manifest::load` and, for a
//! training artefact, `Manifest::plan`. The oracle: every planned run directory lies
//! inside `--results`, and the paper's values are finite (a standard deviation not
//! negative).

use super::{keep_valid, Case, Target, Verdict};
use crate::rng::Rng;
use crate::toml_mut;
use rbd::reproduce::manifest::{ArtefactKind, Manifest, PlanOptions, BUILT_IN};
use std::path::Path;

/// `Manifest::load` and `Manifest::plan` on a generated manifest file.
pub struct ManifestToml;

const FILE: &str = "my-artefact.toml";

/// A built-in manifest with at most 3 of its runs and 1 or 2 seeds.
fn small_manifest(rng: &mut Rng) -> String {
    let (_, text) = rng.pick(BUILT_IN);
    let mut table: toml::Table = text.parse().expect("a built-in manifest is TOML");
    if let Some(toml::Value::Array(runs)) = table.get_mut("run") {
        let keep = rng.range(1, 3).min(runs.len());
        for _ in 0..runs.len() - keep {
            runs.remove(rng.below(runs.len()));
        }
    }
    table.insert("seeds".into(), toml::Value::Integer(rng.range(1, 2) as i64));
    toml::to_string(&table).expect("a manifest writes back")
}

impl Target for ManifestToml {
    fn name(&self) -> &'static str {
        "manifest"
    }

    fn about(&self) -> &'static str {
        "manifests, TOML (Manifest::load, Manifest::plan)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let text = small_manifest(rng);
        if keep_valid(rng) {
            return Case::one(FILE, text.into_bytes(), "valid".into(), true);
        }
        let (bytes, what) = toml_mut::mutate_text(rng, &text);
        Case::one(FILE, bytes, what, false)
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        let path = dir.join(&case.named);
        let m = match Manifest::load(&path.display().to_string()) {
            Ok(m) => m,
            Err(e) => return Verdict::Refused(format!("{e:#}")),
        };
        if m.kind != ArtefactKind::Training {
            return Verdict::Accepted;
        }
        let results = dir.join("results");
        let opts = PlanOptions {
            data_dir: dir.join("data"),
            ..PlanOptions::default()
        };
        Verdict::of(m.plan(&results, &opts), |runs| {
            // Lexically inside: below `results` with no `..` or root on the way.
            let inside = |dir: &Path| {
                dir.strip_prefix(&results).is_ok_and(|rest| {
                    rest.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                })
            };
            if let Some(r) = runs.iter().find(|r| !inside(&r.dir)) {
                return Verdict::Wrong(format!(
                    "run '{}' planned outside --results: {}",
                    r.entry.id,
                    r.dir.display()
                ));
            }
            // The paper's values go into the summary beside the results.
            let number = |v: Option<f64>| v.is_none_or(f64::is_finite);
            match runs.iter().find(|r| {
                let e = &r.entry;
                !(number(e.paper) && number(e.paper_std) && number(e.x))
                    || e.paper_std.is_some_and(|s| s < 0.0)
            }) {
                Some(r) => Verdict::Wrong(format!(
                    "run '{}' accepted with paper = {:?}, paper_std = {:?}, x = {:?}",
                    r.entry.id, r.entry.paper, r.entry.paper_std, r.entry.x
                )),
                None => Verdict::Accepted,
            }
        })
    }

    /// A planning error names the run and its field (`run 'fc-rbd': dim: ...`), which
    /// is where the user looks in the file; a parsing error names the file.
    fn names_input(&self, msg: &str, path: &str) -> bool {
        msg.contains(path) || msg.starts_with("run '")
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // Planning builds each run's model to count its parameters (a layout, no
        // weights): a fixed cost beside the text's.
        16 * input + (4 << 20)
    }
}
