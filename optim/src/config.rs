//! What every optimiser's settings share: an error naming the setting at fault, and
//! defaults taken from the settings' own declaration (each setting is declared once, as
//! a field with its flag, help and default; serde reads a missing key as that default).

use std::fmt;

/// A setting's value that cannot run, naming its field (the key of `config.json` and of
/// a manifest; the command line names the flag instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong, and what would be accepted.
    pub message: String,
}

impl ConfigError {
    /// An error of `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A settings struct at the defaults its flags declare (an empty command line).
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults").no_binary_name(true));
    let matches = command
        .try_get_matches_from(std::iter::empty::<&str>())
        .expect("every setting has a default");
    T::from_arg_matches(&matches).expect("the defaults parse")
}

/// The fields of a settings struct, as its flags' ids (clap names each flag's id after
/// its field, flattened structs included).
pub fn fields<T: clap::Args>() -> Vec<String> {
    T::augment_args(clap::Command::new("fields"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// A whole number of at least 1 (a flag's value parser).
pub fn at_least_one(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a whole number of at least 1")),
    }
}

/// A count of at least 1 (a flag's value parser).
pub fn count(text: &str) -> Result<usize, String> {
    at_least_one(text).map(|n| n as usize)
}
