//! The parsers under test, one [`Target`] each: a generator of valid files in the
//! parser's format with structure-aware mutations, the parser's entry point as rbd
//! calls it, an oracle for what it accepts, and its memory bound.

mod campaign;
mod checkpoint;
mod cifar;
mod config;
mod idx;
mod manifest;
mod metrics;
mod provenance;
mod records;
mod sealed;
mod tar;

use crate::rng::Rng;
use std::fmt::Display;
use std::path::Path;

/// One generated input.
#[derive(Clone, Debug, Default)]
pub struct Case {
    /// Files written into the case directory before the parser runs: (relative path,
    /// contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// The file (relative path) every refusal must name.
    pub named: String,
    /// The mutation that made it, in words ("valid" for none).
    pub what: String,
    /// An unmutated valid file, which must be accepted.
    pub valid: bool,
    /// What the oracle compares an accepted input with (named blobs).
    pub expect: Vec<(String, Vec<u8>)>,
}

impl Case {
    /// A case of one file.
    pub fn one(name: &str, bytes: Vec<u8>, what: String, valid: bool) -> Case {
        Case {
            files: vec![(name.to_string(), bytes)],
            named: name.to_string(),
            what,
            valid,
            expect: Vec::new(),
        }
    }

    /// The expected blob `key`, if recorded.
    pub fn expected(&self, key: &str) -> Option<&[u8]> {
        self.expect
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// What a parser made of a case.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Accepted, and the oracle holds.
    Accepted,
    /// Refused with this message (as the user would read it).
    Refused(String),
    /// The oracle failed: why.
    Wrong(String),
}

impl Verdict {
    /// The verdict of a parser's result: its error in full (`{:#}` shows an anyhow
    /// chain), or `check` of what it returned.
    pub fn of<T, E: Display>(r: Result<T, E>, check: impl FnOnce(T) -> Verdict) -> Verdict {
        match r {
            Ok(v) => check(v),
            Err(e) => Verdict::Refused(format!("{e:#}")),
        }
    }
}

/// A parser of user files under test.
pub trait Target: Sync {
    /// Its name on the command line (`--parser`).
    fn name(&self) -> &'static str;
    /// What it reads, in a line.
    fn about(&self) -> &'static str;
    /// One case: usually a mutated valid file, now and then the valid file itself.
    fn generate(&self, rng: &mut Rng) -> Case;
    /// Runs the parser on the case's files, written into `dir`.
    fn run(&self, case: &Case, dir: &Path) -> Verdict;
    /// Whether refusal `msg` says where the problem is: by default, it names the file
    /// (`path`, the case's named file in its directory).
    fn names_input(&self, msg: &str, path: &str) -> bool {
        msg.contains(path)
    }
    /// The largest single allocation allowed for `input` bytes of input (the peak of
    /// live bytes may be four times this).
    fn alloc_bound(&self, input: usize) -> usize;
}

/// Every target, in the order the command line lists them.
pub fn all() -> Vec<&'static dyn Target> {
    vec![
        &idx::Idx { gzip: false },
        &idx::Idx { gzip: true },
        &cifar::CifarBatch,
        &tar::CifarArchive,
        &checkpoint::Checkpoint,
        &manifest::ManifestToml,
        &campaign::CampaignToml,
        &config::ConfigJson,
        &metrics::MetricsJsonl,
        &provenance::ProvenanceJsonl,
        &records::Diverged,
        &records::TuneRecord,
        &sealed::SealedRun,
        &sealed::SealedPack,
    ]
}

/// The target called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Target> {
    all().into_iter().find(|t| t.name() == name)
}

/// One case in `den` is the unmutated valid file.
const VALID_ONE_IN: u32 = 20;

/// Whether this case stays valid.
fn keep_valid(rng: &mut Rng) -> bool {
    rng.chance(1, VALID_ONE_IN)
}

/// Gzip of `bytes` at the fastest level.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

/// The most a gzip stream can expand (deflate's limit is 1032:1).
pub const GZIP_RATIO: usize = 1032;
