//! The typed choices of a run, each parsed from its text form (`FromStr`) beside its
//! type and written back (`Display`) into `config.json`. Errors name the value and the
//! accepted forms; the CLI prefixes the flag.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Serialises a type through its `Display` and `FromStr` forms, so `config.json` holds
/// exactly what a user would type.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Writes `one, two or three`.
fn either(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Declares a plain enum with one text name per variant.
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The text form.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                let names: Vec<&str> = $name::ALL.iter().map(|v| v.name()).collect();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == text.trim())
                    .ok_or_else(|| format!("unknown {} '{text}' (expected {})", $what, either(&names)))
            }
        }
        serde_as_text!($name);
    };
}

named_enum!(
    /// The optimiser of a schedule segment.
    OptimizerKind, "optimizer" {
        /// Plain minibatch SGD.
        Sgd = "sgd",
        /// Random bases descent with fused, regenerated directions.
        Rbd = "rbd",
        /// Fixed projection descent (one base for the whole run).
        Fpd = "fpd",
        /// Natural evolution strategies.
        Nes = "nes",
        /// RBD with the d × D basis stored (a baseline for benchmarks).
        RbdMaterialized = "rbd-materialized",
    }
);

impl OptimizerKind {
    /// Whether the optimiser draws random directions (and so uses d, compartments,
    /// distribution and generator).
    pub fn uses_directions(self) -> bool {
        !matches!(self, OptimizerKind::Sgd)
    }
}

named_enum!(
    /// The network.
    ModelKind, "model" {
        /// Dense 128 → Dense 10.
        Fc = "fc",
        /// The paper's three-convolution network.
        Cnn = "cnn",
        /// Keras ResNet v1 with n = 1 (CIFAR-10).
        Resnet8 = "resnet8",
        /// Keras ResNet v1 with n = 5 (CIFAR-10).
        Resnet32 = "resnet32",
    }
);

named_enum!(
    /// The distribution of the entries of a random direction.
    DistributionKind, "distribution" {
        /// N(0, 1).
        Gaussian = "gaussian",
        /// Uniform on [−1, 1].
        Uniform = "uniform",
        /// Zero-mean, unit-variance two-point distribution with probability p.
        Bernoulli = "bernoulli",
        /// The authors' released code's `bernoulli-p`: 1 − p with probability p, else
        /// −1 − p (p = 0.5: {+0.5, −1.5}, mean −0.5, variance 1).
        BernoulliReleased = "bernoulli-released",
        /// Packed signs: ±1 from single bits, 32 entries per stream word (built for speed).
        Rademacher = "rademacher",
    }
);

impl DistributionKind {
    /// The distribution with its Bernoulli probability, in words (for logs).
    pub fn describe(self, p: f64) -> String {
        match self {
            DistributionKind::Gaussian => "gaussian N(0, 1)".into(),
            DistributionKind::Uniform => "uniform on (-1, 1)".into(),
            DistributionKind::Bernoulli => {
                let sd = (p * (1.0 - p)).sqrt();
                format!(
                    "bernoulli p = {p}: zero-mean {{{:+}, {:+}}} (paper)",
                    (1.0 - p) / sd,
                    -p / sd
                )
            }
            DistributionKind::BernoulliReleased => format!(
                "bernoulli-released p = {p}: {{{:+}, {:+}}}, mean {} (released code)",
                1.0 - p,
                -1.0 - p,
                -(1.0 - p)
            ),
            DistributionKind::Rademacher => "rademacher ±1 (packed signs, 32 per word)".into(),
        }
    }
}

named_enum!(
    /// The family of random bases: how a step's d directions are drawn.
    BasesKind, "bases" {
        /// Every direction entry an independent draw (the paper's random bases).
        Iid = "iid",
        /// Columns of stacked Fastfood blocks H G Π H B (Le et al. 2013), applied in
        /// O(D log d) (`docs/random-directions.md` §11).
        Fastfood = "fastfood",
    }
);

impl BasesKind {
    /// The family, in words (for logs).
    pub fn describe(self) -> &'static str {
        match self {
            BasesKind::Iid => "iid (every direction entry an independent draw, the paper's)",
            BasesKind::Fastfood => {
                "fastfood (columns of stacked H G Pi H B blocks, L = next power of two >= d)"
            }
        }
    }
}

named_enum!(
    /// The counter-based generator of the direction stream.
    GeneratorKind, "generator" {
        /// Threefry-2×32-20 (the default: the faster on the cpu).
        Threefry = "threefry",
        /// Philox-4×32-10.
        Philox = "philox",
    }
);

named_enum!(
    /// Which published learning rates fill in a rate the user did not give, where the
    /// paper's Table 4 and the authors' released configuration differ.
    PresetSource, "preset source" {
        /// Table 4 of the supplementary material.
        Paper = "paper",
        /// The authors' released configuration (`experiments/baseline`).
        Released = "released",
    }
);

named_enum!(
    /// Where FPD takes its training gradient.
    FpdVariant, "FPD variant" {
        /// At the current point θ₀ + P·c (the paper's text).
        Paper = "paper",
        /// At θ₀ + P·c_prev, the point before the last update (the authors' released
        /// code); validation at the current point.
        Released = "released",
    }
);

impl FpdVariant {
    /// Where the gradient is taken, in words.
    pub fn describe(self) -> &'static str {
        match self {
            FpdVariant::Paper => "gradient at the current point (paper)",
            FpdVariant::Released => "gradient at the previous point (released code)",
        }
    }
}

named_enum!(
    /// How NES lays its updates over epochs (each update consumes d batches).
    NesEpochs, "NES epoch accounting" {
        /// Whole updates inside each epoch; the epoch's last `batches mod d` batches
        /// are dropped (an MNIST epoch at d = 250: 6 updates, 62 batches unused).
        Whole = "whole",
        /// Epochs count images, as the paper's text and the released code's
        /// `NesModel.train()`: one endless stream of batches, an update may straddle an
        /// epoch's end, and the epoch is evaluated after the update that crossed it (an
        /// MNIST epoch at d = 250: 6.25 updates on average, no batch dropped). That
        /// method is never called by the released code's runner (machinable 2.7 calls
        /// `on_execute`), so this is not what its NES runs did: see `Update`.
        Released = "released",
        /// One update per epoch, as the released code's NES actually runs: `NesModel`
        /// inherits `ImageModel.on_execute`, which runs its `train_op` (one update of d
        /// batches) once per configured epoch. The batches come from one endless stream
        /// over the data's epochs, as with `Released`; 100 epochs are 100 updates.
        Update = "update",
    }
);

impl NesEpochs {
    /// The accounting, in words.
    pub fn describe(self) -> &'static str {
        match self {
            NesEpochs::Whole => {
                "whole updates within each epoch, the epoch's remaining batches dropped"
            }
            NesEpochs::Released => {
                "epochs count images: one stream of batches, updates straddle epoch ends, none dropped (paper's text; released code's unused NesModel.train)"
            }
            NesEpochs::Update => {
                "one update of d batches per epoch (released code as run: ImageModel.on_execute)"
            }
        }
    }
}

named_enum!(
    /// Where a run's tensors live.
    DeviceKind, "device" {
        /// A real GPU adapter if there is one, else the cpu backend.
        Auto = "auto",
        /// A real GPU adapter; an error if there is none.
        Gpu = "gpu",
        /// The native cpu backend.
        Cpu = "cpu",
        /// The WGSL kernels on a CPU adapter (llvmpipe).
        WgpuCpu = "wgpu-cpu",
    }
);

impl DeviceKind {
    /// The engine's device choice.
    pub fn choice(self) -> rbd_engine::DeviceChoice {
        use rbd_engine::DeviceChoice as C;
        match self {
            DeviceKind::Auto => C::Auto,
            DeviceKind::Gpu => C::Gpu,
            DeviceKind::Cpu => C::Cpu,
            DeviceKind::WgpuCpu => C::WgpuCpu,
        }
    }
}

/// How θ is split into compartments, each with its own random base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompartmentKind {
    /// K contiguous, nearly even parts (a tensor may be split).
    Even(usize),
    /// One compartment per layer (kernel and bias together).
    PerLayer,
    /// One compartment per parameter tensor, tensors over the cap cut into pieces of
    /// at most the cap (the released code's even compartments).
    Capped(usize),
}

impl fmt::Display for CompartmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompartmentKind::Even(k) => write!(f, "{k}"),
            CompartmentKind::PerLayer => f.write_str("layer"),
            CompartmentKind::Capped(cap) => write!(f, "cap:{cap}"),
        }
    }
}

impl FromStr for CompartmentKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "layer" => Ok(CompartmentKind::PerLayer),
            t if t.starts_with("cap:") => match t["cap:".len()..].parse::<usize>() {
                Ok(cap) if cap > 0 => Ok(CompartmentKind::Capped(cap)),
                _ => Err(format!(
                    "'{text}': cap:N needs a positive number of weights per compartment"
                )),
            },
            t => match t.parse::<usize>() {
                Ok(k) if k > 0 => Ok(CompartmentKind::Even(k)),
                _ => Err(format!(
                    "'{text}' is neither a positive number of compartments, 'layer', nor cap:N"
                )),
            },
        }
    }
}
serde_as_text!(CompartmentKind);

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
        for &o in OptimizerKind::ALL {
            round_trip(o);
        }
        for &m in ModelKind::ALL {
            round_trip(m);
        }
        for &d in DistributionKind::ALL {
            round_trip(d);
        }
        for &g in GeneratorKind::ALL {
            round_trip(g);
        }
        for &b in BasesKind::ALL {
            round_trip(b);
        }
        for &d in DeviceKind::ALL {
            round_trip(d);
        }
        for &n in NesEpochs::ALL {
            round_trip(n);
        }
        for c in [
            CompartmentKind::Even(7),
            CompartmentKind::PerLayer,
            CompartmentKind::Capped(5000),
        ] {
            round_trip(c);
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
        let e = "adam".parse::<OptimizerKind>().unwrap_err();
        assert!(
            e.contains("'adam'") && e.contains("rbd-materialized"),
            "{e}"
        );
        assert!("0".parse::<CompartmentKind>().is_err());
        assert!("-3".parse::<CompartmentKind>().is_err());
        assert!("2 weeks".parse::<CheckpointEvery>().is_err());
        assert_eq!("0".parse::<CheckpointEvery>(), Ok(CheckpointEvery::Off));
        assert_eq!(
            "3".parse::<CheckpointEvery>(),
            Ok(CheckpointEvery::Epochs(3))
        );
        assert!("idx:".parse::<DatasetSpec>().is_err());
    }

    #[test]
    fn each_bernoulli_names_itself_and_its_values() {
        assert_eq!(
            "bernoulli-released".parse::<DistributionKind>(),
            Ok(DistributionKind::BernoulliReleased)
        );
        let released = DistributionKind::BernoulliReleased.describe(0.5);
        assert!(
            released.contains("{+0.5, -1.5}") && released.contains("released"),
            "{released}"
        );
        let zero_mean = DistributionKind::Bernoulli.describe(0.5);
        assert!(
            zero_mean.contains("{+1, -1}") && zero_mean.contains("zero-mean"),
            "{zero_mean}"
        );
    }
}
