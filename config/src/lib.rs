//! corral's typed configuration.
//!
//! Two ways in, one `Config` out:
//!
//! - [`load`]: built-in defaults, then a TOML file (optional), then `CORRAL_*`
//!   environment variables, then explicit overrides ([`load_with`]).
//! - [`load_zoo_cfg`]: an Apache ZooKeeper `zoo.cfg` (plus `dataDir/myid`) in
//!   place of the TOML file; environment variables and overrides still apply.
//!   Keys corral has no use for become [`ZooCfg::warnings`], not errors.
//!
//! Both validate before returning, and every [`ConfigError`] names the key,
//! what is wrong and how to fix it. Environment variables are the TOML key
//! upper-cased behind `CORRAL_` (`client_port` -> `CORRAL_CLIENT_PORT`); keys
//! are flat, so no `__` nesting is needed. Only variables that name a key are
//! read: others under the prefix belong to other tools and are left alone.
//!
//! `docs/configuration.md` has the full key table.

mod config;
mod de;
mod error;
mod load;
mod tenancy;
mod validate;
mod zoo_cfg;

pub use config::{Config, ServerEntry, KEYS};
pub use error::ConfigError;
pub use load::{load, load_with, ENV_PREFIX};
pub use tenancy::{
    TenantBindingEntry, TenantEntry, TenantQuotasEntry, AUDIT_FORMATS, TENANT_UNBOUND_POLICIES,
};
pub use validate::{FOUR_LETTER_WORDS, LOG_LEVELS, TLS_CLIENT_AUTH_MODES, TXN_LOG_ENGINES};
pub use zoo_cfg::{load_zoo_cfg, load_zoo_cfg_with, ZooCfg, ZOO_CFG_KEYS};
