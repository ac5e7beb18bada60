//! `rbd` as a library: the trainer and what it needs. The command-line tool in
//! `main.rs` is a thin layer over it.

pub mod distributed;
pub mod lr;
pub mod machine;
pub mod measure;
pub mod nonfinite;
pub mod reproduce;
pub mod signals;
pub mod train;
