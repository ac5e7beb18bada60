//! Campaign plans (`reproduce/campaign.toml`, or a file given with `--plan`): the
//! built-in plan cut to 1–4 items, then mutated (see [`crate::toml_mut`]). The parser is
//! `Plan::load`, which also loads each item's manifest and checks its selection. The
//! oracle: an accepted plan has no item that planning would refuse for its seeds.

use super::{keep_valid, Case, Target, Verdict};
use crate::rng::Rng;
use crate::toml_mut;
use rbd::reproduce::campaign::{Plan, BUILT_IN};
use rbd::reproduce::manifest::MAX_SEEDS;
use std::path::Path;

/// `Plan::load` on a generated plan file.
pub struct CampaignToml;

const FILE: &str = "my-campaign.toml";

fn small_plan(rng: &mut Rng) -> String {
    let mut table: toml::Table = BUILT_IN.parse().expect("the built-in plan is TOML");
    if let Some(toml::Value::Array(items)) = table.get_mut("item") {
        let keep = rng.range(1, 4).min(items.len());
        for _ in 0..items.len() - keep {
            items.remove(rng.below(items.len()));
        }
    }
    toml::to_string(&table).expect("a plan writes back")
}

impl Target for CampaignToml {
    fn name(&self) -> &'static str {
        "campaign"
    }

    fn about(&self) -> &'static str {
        "campaign plans, TOML (campaign::Plan::load)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let text = small_plan(rng);
        if keep_valid(rng) {
            return Case::one(FILE, text.into_bytes(), "valid".into(), true);
        }
        let (bytes, what) = toml_mut::mutate_text(rng, &text);
        Case::one(FILE, bytes, what, false)
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        Verdict::of(Plan::load(Some(&dir.join(&case.named))), |plan| {
            // Planning an item's runs refuses more seeds than this; the plan must too,
            // before the campaign has run the items before it.
            match plan.items.iter().find(|i| i.seeds > Some(MAX_SEEDS)) {
                Some(i) => Verdict::Wrong(format!(
                    "accepted an item of {} with seeds = {:?}",
                    i.artefact, i.seeds
                )),
                None => Verdict::Accepted,
            }
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // Each item loads a built-in manifest: a fixed cost beside the text's.
        16 * input + (4 << 20)
    }
}
