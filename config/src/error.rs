//! `ConfigError`: every message names the key, what is wrong, and the fix.

use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value corral cannot use.
    #[error("{key}: {problem}{}", origin_suffix(origin))]
    Invalid {
        key: String,
        problem: String,
        /// Where the value came from ("TOML file /etc/corral.toml",
        /// "environment variable CORRAL_CLIENT_PORT"), when known.
        origin: Option<String>,
    },
    /// A key corral does not know (usually a typo).
    #[error(
        "{key}: unknown configuration key{}; check the spelling against docs/configuration.md",
        origin_suffix(origin)
    )]
    UnknownKey { key: String, origin: Option<String> },
    /// A named file could not be read.
    #[error("{}: cannot read file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML file does not parse.
    #[error("{}: not valid TOML: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    /// A zoo.cfg line is malformed or has a value corral cannot use.
    #[error("{}:{line}: {key}: {problem}", path.display())]
    ZooCfg {
        path: PathBuf,
        line: usize,
        key: String,
        problem: String,
    },
}

impl ConfigError {
    /// The configuration key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. }
            | ConfigError::UnknownKey { key, .. }
            | ConfigError::ZooCfg { key, .. } => Some(key),
            ConfigError::Read { .. } | ConfigError::Toml { .. } => None,
        }
    }

    /// A validation error with no known origin.
    pub(crate) fn invalid(key: &str, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            problem: problem.into(),
            origin: None,
        }
    }
}

fn origin_suffix(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|o| format!(" (from {o})"))
        .unwrap_or_default()
}
