//! The machine this process runs on, as results name it: processor model and core count.
//! Recorded with every stretch of a run (`provenance.jsonl`) and in every summary, since
//! runs of one artefact may be trained on different machines.

/// "PROCESSOR, N cores" (the architecture where `/proc/cpuinfo` has no model name).
pub fn describe() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores")
}
