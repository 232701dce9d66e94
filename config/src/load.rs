//! Layering with figment: defaults <- base file <- `CORRAL_` env <- overrides.
//!
//! The base layer is either a TOML file or an already parsed zoo.cfg, so both
//! entry points share the environment and override handling and the mapping
//! of figment errors onto `ConfigError`.

use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::config::KEYS;
use crate::{Config, ConfigError};

/// Prefix of the environment variables corral reads.
pub const ENV_PREFIX: &str = "CORRAL_";

const DEFAULTS_NAME: &str = "built-in defaults";
const OVERRIDE_NAME: &str = "command-line override";
const ZOO_CFG_NAME: &str = "zoo.cfg file";

/// Loads defaults, then the TOML file (if given), then `CORRAL_*` variables,
/// and validates the result.
pub fn load(toml_path: Option<&Path>) -> Result<Config, ConfigError> {
    load_with(toml_path, &[])
}

/// As [`load`], with explicit `(key, value)` overrides applied last (command
/// line flags). Values are parsed like environment variables.
pub fn load_with(
    toml_path: Option<&Path>,
    overrides: &[(&str, &str)],
) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Layer::from_config(DEFAULTS_NAME, None, &Config::default())?);
    if let Some(path) = toml_path {
        // figment treats a missing file as empty; a path the operator named must exist.
        std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        figment = figment.merge(Toml::file_exact(path));
    }
    finish(figment, overrides)
}

/// Layers environment and overrides on `figment`, extracts and validates.
pub(crate) fn finish(figment: Figment, overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let figment = figment
        .merge(Env::prefixed(ENV_PREFIX).only(KEYS))
        .merge(Layer::from_overrides(overrides)?);
    let config: Config = figment.extract().map_err(from_figment)?;
    config.validate()?;
    Ok(config)
}

/// The base layer for a parsed zoo.cfg.
pub(crate) fn zoo_cfg_layer(path: &Path, config: &Config) -> Result<Figment, ConfigError> {
    Ok(Figment::from(Layer::from_config(
        ZOO_CFG_NAME,
        Some(path),
        config,
    )?))
}

/// A named, flat dictionary of values.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    fn from_config(name: &str, path: Option<&Path>, config: &Config) -> Result<Layer, ConfigError> {
        let dict = Value::serialize(config)
            .ok()
            .and_then(Value::into_dict)
            .ok_or_else(|| ConfigError::invalid("config", "cannot be represented as a table"))?;
        let metadata = match path {
            Some(path) => Metadata::from(name.to_string(), path),
            None => Metadata::named(name.to_string()),
        };
        Ok(Layer { metadata, dict })
    }

    fn from_overrides(overrides: &[(&str, &str)]) -> Result<Layer, ConfigError> {
        let mut dict = Dict::new();
        for (key, value) in overrides {
            if !KEYS.contains(key) {
                return Err(ConfigError::UnknownKey {
                    key: key.to_string(),
                    origin: Some(OVERRIDE_NAME.to_string()),
                });
            }
            // Infallible: anything that is not a number, bool or list is a string.
            let parsed = value
                .parse::<Value>()
                .unwrap_or_else(|never| match never {});
            dict.insert(key.to_string(), parsed);
        }
        Ok(Layer {
            metadata: Metadata::named(OVERRIDE_NAME),
            dict,
        })
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Maps figment's error onto one that names the key and where it came from.
fn from_figment(error: figment::Error) -> ConfigError {
    let origin = describe_origin(&error);
    let key = error.path.join(".");
    match &error.kind {
        Kind::UnknownField(field, _) => ConfigError::UnknownKey {
            key: join_key(&key, field),
            origin,
        },
        // A provider that fails to parse reports a bare message with no key.
        Kind::Message(message) if key.is_empty() => match source_file(&error) {
            Some(path) => ConfigError::Toml {
                path,
                message: message.trim().to_string(),
            },
            None => ConfigError::invalid("config", message.clone()),
        },
        kind => ConfigError::Invalid {
            key,
            problem: kind.to_string(),
            origin,
        },
    }
}

/// figment usually puts the unknown field at the end of the path already.
fn join_key(parent: &str, field: &str) -> String {
    if parent == field || parent.ends_with(&format!(".{field}")) {
        parent.to_string()
    } else if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

fn source_file(error: &figment::Error) -> Option<PathBuf> {
    error
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .and_then(|s| s.file_path())
        .map(Path::to_path_buf)
}

fn describe_origin(error: &figment::Error) -> Option<String> {
    let metadata = error.metadata.as_ref()?;
    if metadata.name.contains("environment") {
        let var = error.path.first().map(|k| k.to_ascii_uppercase());
        return Some(format!(
            "environment variable {ENV_PREFIX}{}",
            var.unwrap_or_default()
        ));
    }
    match source_file(error) {
        Some(path) => Some(format!("{} {}", metadata.name, path.display())),
        None => Some(metadata.name.to_string()),
    }
}
