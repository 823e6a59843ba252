//! The field-level conversions every section shares: reading the file, the list of problems
//! found, and files, durations, sizes and networks checked against their bounds. It knows no section,
//! so that each section's conversion (`convert`, `ops`, `sender`, `upstream`, `devproxy`)
//! can use it without using each other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, Problem};
use crate::net::parse_source;

pub(super) const MIB: u64 = 1024 * 1024;

/// The text of a configuration file, or the error naming it.
pub(super) fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every problem found so far: a conversion carries on past one, so that a single run
/// reports them all.
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// Records the error of a fallible parse and yields the fallback instead.
    pub(super) fn take<T>(&mut self, key: &str, result: Result<T, String>, fallback: T) -> T {
        result.unwrap_or_else(|message| {
            self.add(key, message);
            fallback
        })
    }
}

/// Parses CIDRs or addresses listed under `key`, refusing a catch-all `/0` for `why`.
pub(super) fn networks(p: &mut Problems, key: &str, texts: &[String], why: &str) -> Vec<ipnet::IpNet> {
    let mut nets = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let key = format!("{key}[{i}]");
        match parse_source(text) {
            Ok(net) if net.prefix_len() == 0 => p.add(&key, format!("{net} {why}")),
            Ok(net) => nets.push(net),
            Err(m) => p.add(&key, m),
        }
    }
    nets
}

pub(super) fn file(p: &mut Problems, key: &str, value: String) -> PathBuf {
    let path = PathBuf::from(&value);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => p.add(key, format!("{value} is not a file")),
        Err(e) => p.add(key, format!("{value}: {e}")),
    }
    path
}

pub(super) fn duration(
    p: &mut Problems,
    key: &str,
    value: Option<String>,
    default: &str,
    (min, max): (u64, u64),
) -> Duration {
    let text = value.unwrap_or_else(|| default.to_owned());
    match humantime::parse_duration(&text) {
        Ok(d) if d >= Duration::from_secs(min) && d <= Duration::from_secs(max) => d,
        Ok(_) => {
            p.add(key, format!("'{text}' is outside {min}s..={max}s"));
            Duration::from_secs(min.max(1))
        }
        Err(_) => {
            p.add(key, format!("'{text}' is not a duration such as 10s or 2m"));
            Duration::from_secs(min.max(1))
        }
    }
}

pub(super) fn size(
    p: &mut Problems,
    key: &str,
    value: Option<String>,
    default: u64,
    (min, max): (u64, u64),
) -> usize {
    let Some(text) = value else {
        return default as usize;
    };
    match text.parse::<bytesize::ByteSize>() {
        Ok(b) if (min..=max).contains(&b.as_u64()) => b.as_u64() as usize,
        Ok(b) => {
            p.add(
                key,
                format!("'{text}' ({} bytes) is outside {min}..={max} bytes", b.as_u64()),
            );
            default as usize
        }
        Err(_) => {
            p.add(key, format!("'{text}' is not a size such as 10MiB"));
            default as usize
        }
    }
}
