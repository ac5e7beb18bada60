//! The committed results keep their generator: every rbd run under `results/` names
//! the counter-based generator it drew its directions from, and the built-in manifest
//! that planned it still plans that generator. A change of the default generator
//! (`GeneratorKind`'s default) that is not pinned in the manifests fails here, before
//! `rbd reproduce` would plan other directions for a finished run.

#[cfg(test)]
mod tests {
    use crate::reproduce::manifest::{Manifest, PlanOptions, BUILT_IN};
    use std::path::Path;

    #[test]
    fn every_committed_run_keeps_its_generator_under_todays_manifests() {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        let mut checked = 0;
        for (name, _) in BUILT_IN {
            let manifest = Manifest::load(name).unwrap();
            let opts = PlanOptions {
                epochs: None,
                seeds: Some(5),
                only: Vec::new(),
                device: None,
                data_dir: std::env::temp_dir(),
            };
            let Ok(planned) = manifest.plan(&results, &opts) else {
                continue; // not a training artefact
            };
            for run in planned {
                // Open or sealed alike (`train::record`).
                let Ok(Some(text)) = crate::train::record::text(&run.dir, "config.json") else {
                    continue; // not run (yet)
                };
                let committed: serde_json::Value = serde_json::from_str(&text).unwrap();
                let generator = committed.get("generator").and_then(|g| g.as_str());
                assert_eq!(
                    generator,
                    Some(run.cfg.settings.directions.generator.to_string().as_str()),
                    "{}: the committed run's generator (left) and the one {name}.toml plans now (right); pin `generator` in the manifest",
                    run.dir.display()
                );
                checked += 1;
            }
        }
        // The repository holds Table 1's committed runs at least.
        assert!(checked >= 20, "only {checked} committed runs found");
    }
}
