//! The application's own choices, each parsed from its text form (`FromStr`) beside its
//! type and written back (`Display`) into `config.json`: the checkpoint period, the
//! data set and where a missing learning rate comes from. The choices of the lower
//! crates (model, optimiser, distribution, generator, compartments, device, variants)
//! are theirs, with their text forms beside them.

use rbd_engine::serde_as_text;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

rbd_engine::named_enum!(
    /// Which published learning rates fill in a rate the user did not give, where the
    /// paper's Table 4 and the authors' released configuration differ.
    pub PresetSource, "preset source" {
        /// Table 4 of the supplementary material.
        Paper = "paper",
        /// The authors' released configuration (`experiments/baseline`).
        Released = "released",
    }
);

/// How often a run writes its checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointEvery {
    /// Never (the final parameters are still written).
    Off,
    /// Every N epochs, and at the end.
    Epochs(u64),
    /// Every N optimiser steps, and at the end.
    Steps(u64),
}

impl Default for CheckpointEvery {
    fn default() -> Self {
        CheckpointEvery::Epochs(1)
    }
}

impl fmt::Display for CheckpointEvery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointEvery::Off => f.write_str("0"),
            CheckpointEvery::Epochs(n) => write!(f, "{n}epochs"),
            CheckpointEvery::Steps(n) => write!(f, "{n}steps"),
        }
    }
}

impl FromStr for CheckpointEvery {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (number, steps) = match t.strip_suffix("steps") {
            Some(n) => (n, true),
            None => (t.strip_suffix("epochs").unwrap_or(t), false),
        };
        let n: u64 = number.trim().parse().map_err(|_| {
            format!("'{text}' (expected N or Nepochs for epochs, Nsteps for steps, 0 for never)")
        })?;
        Ok(match (n, steps) {
            (0, _) => CheckpointEvery::Off,
            (n, true) => CheckpointEvery::Steps(n),
            (n, false) => CheckpointEvery::Epochs(n),
        })
    }
}
serde_as_text!(CheckpointEvery);

/// The training data: one of the paper's data sets, or a directory of MNIST-named
/// IDX files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetSpec {
    /// MNIST, Fashion-MNIST or CIFAR-10, fetched on first use.
    Known(rbd_datasets::DatasetKind),
    /// `idx:DIR`: the four MNIST-named IDX files in DIR (28×28 grey images).
    Idx(PathBuf),
}

impl DatasetSpec {
    /// The key of the learning-rate presets: the data set's name, MNIST's for IDX data.
    pub fn preset_key(&self) -> &'static str {
        match self {
            DatasetSpec::Known(k) => k.name(),
            DatasetSpec::Idx(_) => "mnist",
        }
    }

    /// A short name for run directories.
    pub fn short_name(&self) -> &'static str {
        match self {
            DatasetSpec::Known(k) => k.name(),
            DatasetSpec::Idx(_) => "idx",
        }
    }

    /// Image shape `(channels, height, width)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        match self {
            DatasetSpec::Known(k) => k.shape(),
            DatasetSpec::Idx(_) => rbd_datasets::DatasetKind::Mnist.shape(),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Known(k) => write!(f, "{k}"),
            DatasetSpec::Idx(dir) => write!(f, "idx:{}", dir.display()),
        }
    }
}

impl FromStr for DatasetSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(dir) = text.strip_prefix("idx:") {
            if dir.is_empty() {
                return Err("idx:DIR needs a directory".into());
            }
            return Ok(DatasetSpec::Idx(PathBuf::from(dir)));
        }
        text.parse().map(DatasetSpec::Known).map_err(|_| {
            format!("unknown data set '{text}' (expected mnist, fmnist, cifar10 or idx:DIR)")
        })
    }
}
serde_as_text!(DatasetSpec);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: FromStr + fmt::Display + PartialEq + fmt::Debug>(v: T)
    where
        T::Err: fmt::Debug,
    {
        assert_eq!(v.to_string().parse::<T>().unwrap(), v);
    }

    #[test]
    fn every_kind_round_trips_through_its_text() {
        for &p in PresetSource::ALL {
            round_trip(p);
        }
        for c in [
            CheckpointEvery::Off,
            CheckpointEvery::Epochs(2),
            CheckpointEvery::Steps(500),
        ] {
            round_trip(c);
        }
        round_trip(DatasetSpec::Idx("/tmp/x".into()));
        round_trip(DatasetSpec::Known(rbd_datasets::DatasetKind::FashionMnist));
    }

    #[test]
    fn bad_text_is_refused_with_the_accepted_forms() {
        assert!("2 weeks".parse::<CheckpointEvery>().is_err());
        assert_eq!("0".parse::<CheckpointEvery>(), Ok(CheckpointEvery::Off));
        assert_eq!(
            "3".parse::<CheckpointEvery>(),
            Ok(CheckpointEvery::Epochs(3))
        );
        assert!("idx:".parse::<DatasetSpec>().is_err());
        let e = "svhn".parse::<DatasetSpec>().unwrap_err();
        assert!(e.contains("'svhn'") && e.contains("idx:DIR"), "{e}");
    }
}
