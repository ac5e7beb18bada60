//! Structure-aware fuzzing of every parser of user files, on stable Rust: valid files
//! of each format are generated and mutated (bit flips, cuts, length and header fields,
//! huge declared sizes, duplicated and missing keys, wrong types, non-finite numbers),
//! and each case is held to four properties: no panic, no allocation past a bound
//! proportional to its input, no hang, and an error that names the file. The CI test
//! (`tests/ci.rs`) runs a few thousand cases per parser; the `rbd-fuzz` command runs as
//! many as asked (see `docs/fuzzing.md`).

pub mod alloc;
pub mod json;
pub mod mutate;
pub mod rng;
pub mod runner;
pub mod targets;
pub mod toml_mut;
