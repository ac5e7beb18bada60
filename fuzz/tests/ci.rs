//! A few thousand cases of every parser, in the normal test suite: no panic, no
//! allocation past the bound, no hang, a clear error each time, and the oracles.
//! The long runs (10^6 cases per parser) are `rbd-fuzz --cases N` (docs/fuzzing.md).

use rbd_fuzz::runner::{default_scratch, run, Limits, Options};
use rbd_fuzz::targets::by_name;
use std::time::Duration;

#[global_allocator]
static ALLOC: rbd_fuzz::alloc::Counting = rbd_fuzz::alloc::Counting;

/// Cases per parser (the seed is fixed: the same inputs in every CI run; the long
/// command varies them).
fn cases() -> u64 {
    std::env::var("RBD_FUZZ_CI_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn fuzz(parser: &str) {
    let target = by_name(parser).expect("a known parser");
    let report = run(
        target,
        &Options {
            seed: 0,
            first: 0,
            cases: cases(),
            limits: Limits {
                slow: Duration::from_secs(5),
                hang: Duration::from_secs(60),
                memory: 4 << 30,
            },
            scratch: default_scratch(),
            save: None,
            progress: None,
        },
    );
    eprintln!(
        "{parser}: {} cases ({} valid), {} accepted, {} refused, {} distinct errors, largest allocation {} B, slowest {:?}, {:?}",
        report.cases,
        report.valid,
        report.accepted,
        report.refused,
        report.errors.len(),
        report.largest_alloc.0,
        report.slowest.0,
        report.wall
    );
    assert!(
        report.valid > 0 && report.refused > 0,
        "{parser}: the generator made no valid case or no refused one"
    );
    assert_eq!(
        report.finding_count(),
        0,
        "{parser}: {:?}\n{}",
        report.counts,
        report.describe_findings()
    );
}

#[test]
fn idx() {
    fuzz("idx");
}

#[test]
fn idx_gz() {
    fuzz("idx-gz");
}

#[test]
fn cifar_batch() {
    fuzz("cifar-batch");
}

#[test]
fn cifar_tar() {
    fuzz("cifar-tar");
}

#[test]
fn checkpoint() {
    fuzz("checkpoint");
}

#[test]
fn manifest() {
    fuzz("manifest");
}

#[test]
fn campaign() {
    fuzz("campaign");
}

#[test]
fn config() {
    fuzz("config");
}

#[test]
fn metrics() {
    fuzz("metrics");
}

#[test]
fn diverged() {
    fuzz("diverged");
}

#[test]
fn tune() {
    fuzz("tune");
}

#[test]
fn provenance() {
    fuzz("provenance");
}

#[test]
fn sealed() {
    fuzz("sealed");
}

#[test]
fn pack() {
    fuzz("pack");
}

#[test]
fn every_parser_has_a_test() {
    let tested = [
        "idx",
        "idx-gz",
        "cifar-batch",
        "cifar-tar",
        "checkpoint",
        "manifest",
        "campaign",
        "config",
        "metrics",
        "provenance",
        "diverged",
        "tune",
        "sealed",
        "pack",
    ];
    let all: Vec<&str> = rbd_fuzz::targets::all().iter().map(|t| t.name()).collect();
    assert_eq!(all, tested);
}
