//! The machine this process runs on, as results name it: processor model, core count and
//! widest vector extension. Recorded with every stretch of a run (`provenance.jsonl`) and
//! in every summary, since runs of one artefact may be trained on different machines.
//! The vector width is part of the name because one model name covers both kinds this
//! project meets ("AMD EPYC" with and without AVX-512), whose step times differ 2–4×.

/// "PROCESSOR, N cores, SIMD" (the architecture where `/proc/cpuinfo` has no model name;
/// SIMD: avx512, avx2 or sse on x86-64, left out elsewhere).
pub fn describe() -> String {
    match simd() {
        Some(simd) => format!("{}, {simd}", model_and_cores()),
        None => model_and_cores(),
    }
}

/// The widest x86-64 vector extension the cpu kernels can use here.
fn simd() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        Some(if std::arch::is_x86_feature_detected!("avx512f") {
            "avx512"
        } else if std::arch::is_x86_feature_detected!("avx2") {
            "avx2"
        } else {
            "sse"
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Whether a machine name recorded before names carried the vector width ("PROCESSOR,
/// N cores") is `here` less its width: the same model, maybe another kind.
pub fn is_without_width_of(recorded: &str, here: &str) -> bool {
    simd().is_some_and(|simd| here.strip_suffix(&format!(", {simd}")) == Some(recorded))
}

/// "PROCESSOR, N cores".
fn model_and_cores() -> String {
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
