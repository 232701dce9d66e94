//! Field deserializers that accept what an environment variable can carry.
//!
//! Environment variables and zoo.cfg are flat strings, so list fields also
//! accept one string (`CORRAL_FOUR_LETTER_WORDS=srvr,ruok`), and ports are read
//! wide so that 70000 gets a port-shaped message rather than "expected u16".

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A TCP port, 1-65535.
pub(crate) fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let wide = i64::deserialize(deserializer)?;
    port_from_i64(wide).map_err(de::Error::custom)
}

/// An optional TCP port, 1-65535.
pub(crate) fn opt_port<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u16>, D::Error> {
    let wide = Option::<i64>::deserialize(deserializer)?;
    wide.map(port_from_i64)
        .transpose()
        .map_err(de::Error::custom)
}

/// The one place the port range is checked, shared with zoo.cfg and `validate`.
pub(crate) fn port_from_i64(wide: i64) -> Result<u16, String> {
    match u16::try_from(wide) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("{wide} is not a valid port (1-65535)")),
    }
}

/// A list, or one string split on commas (four-letter words).
pub(crate) fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(ListVisitor {
        split: |s: &str| s.split(',').map(str::trim).map(String::from).collect(),
    })
}

/// A list, or one string split on whitespace. Argon2 PHC strings contain
/// commas (`m=19456,t=2,p=1`) but never whitespace.
pub(crate) fn space_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(ListVisitor {
        split: |s: &str| s.split_whitespace().map(String::from).collect(),
    })
}

struct ListVisitor {
    split: fn(&str) -> Vec<String>,
}

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings or one string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok((self.split)(s)
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            out.push(item);
        }
        Ok(out)
    }
}
