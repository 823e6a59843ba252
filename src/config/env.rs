//! `BARS_<SECTION>__<KEY>` environment overrides, layered over the file before parsing.
//!
//! Not every `BARS_` variable is meant for us: Kubernetes gives every pod service-link
//! variables for each Service in its namespace (`BARS_RECEIVER_PORT=tcp://10.0.0.1:8443` for a
//! Service named `bars-receiver`), and Docker links do the same. So only the two shapes of an
//! override are configuration: `BARS_<SECTION>__<KEY>` (refused when the section or key is
//! unknown) and `BARS_<KEY>` for the file's top-level keys (`BARS_ENVIRONMENT`). Any other
//! `BARS_` name is ignored, unless it reads as an override with one underscore where two
//! belong (`BARS_LISTEN_ADDRESS`): that typo would silently drop a setting, so it is refused.

use toml::{Table, Value};

/// The prefix of every override.
pub const ENV_PREFIX: &str = "BARS_";

/// One applied override, remembered so that a bad value can be blamed on its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    pub(crate) variable: String,
    pub(crate) key: String,
}

/// The keys the file accepts (from the file's own types, which use this module).
#[derive(Debug)]
pub(crate) struct Schema {
    /// Keys of the top level that are not sections (`environment`).
    pub(crate) top_level: Vec<&'static str>,
    /// Each section and its keys.
    pub(crate) sections: Vec<(&'static str, &'static [&'static str])>,
}

impl Schema {
    /// The keys `[section]` accepts; `None` when `section` is not a section.
    fn section_keys(&self, section: &str) -> Option<&'static [&'static str]> {
        self.sections
            .iter()
            .find(|(name, _)| *name == section)
            .map(|(_, keys)| *keys)
    }
}

/// A `BARS_` variable that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvError {
    pub(crate) variable: String,
    pub(crate) message: String,
}

/// What [`apply`] did with the `BARS_` variables.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The overrides, in the order applied.
    pub(crate) overrides: Vec<Override>,
    /// `BARS_` variables that are not configuration, by name (their values may be anything,
    /// so they are never kept).
    pub(crate) ignored: Vec<String>,
}

/// Applies every configuration variable in `vars` to `table`. `BARS_LISTEN__ADDRESS=x` sets
/// `listen.address`; `BARS_ENVIRONMENT=int` sets `environment`. Values that read as a TOML
/// array, boolean or integer take that type; everything else is a string.
pub(crate) fn apply(
    table: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
    schema: &Schema,
) -> Result<Applied, EnvError> {
    let mut applied = Applied::default();
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (variable, raw) in vars {
        let key = variable[ENV_PREFIX.len()..].to_ascii_lowercase();
        let fail = |message: String| EnvError {
            variable: variable.clone(),
            message,
        };
        if !key.contains("__") && !schema.top_level.contains(&key.as_str()) {
            if let Some(meant) = one_underscore_short(schema, &key) {
                return Err(fail(format!(
                    "not a setting; did you mean {meant} (two underscores between section and key)?"
                )));
            }
            applied.ignored.push(variable);
            continue;
        }
        let path: Vec<&str> = key.split("__").collect();
        let malformed = || fail("expected BARS_<KEY> or BARS_<SECTION>__<KEY>".into());
        if path.iter().any(|p| p.is_empty()) {
            return Err(malformed());
        }
        // An empty value (an unfilled template variable, say) must not silently clear a
        // setting such as the identity pins: unset the variable to keep the file's value.
        if raw.trim().is_empty() {
            return Err(fail("set but empty; unset it to keep the file's value".into()));
        }
        let value = typed(&raw);
        match path.as_slice() {
            [key] => {
                table.insert((*key).to_owned(), value);
            }
            [section, key] => {
                let entry = table
                    .entry((*section).to_owned())
                    .or_insert_with(|| Value::Table(Table::new()));
                let Value::Table(section_table) = entry else {
                    return Err(fail(format!("{section} is not a section")));
                };
                section_table.insert((*key).to_owned(), value);
            }
            _ => return Err(malformed()),
        }
        applied.overrides.push(Override {
            variable,
            key: path.join("."),
        });
    }
    Ok(applied)
}

/// `listen_address` (from `BARS_LISTEN_ADDRESS`) is `listen.address` with one underscore
/// too few: the variable it was meant to be.
fn one_underscore_short(schema: &Schema, key: &str) -> Option<String> {
    key.match_indices('_').find_map(|(at, _)| {
        let (section, rest) = (&key[..at], &key[at + 1..]);
        schema
            .section_keys(section)
            .filter(|keys| keys.contains(&rest))
            .map(|_| {
                format!(
                    "{ENV_PREFIX}{}__{}",
                    section.to_ascii_uppercase(),
                    rest.to_ascii_uppercase()
                )
            })
    })
}

fn typed(raw: &str) -> Value {
    let trimmed = raw.trim();
    let looks_typed = trimmed.starts_with('[')
        || trimmed == "true"
        || trimmed == "false"
        || (!trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()));
    if looks_typed {
        if let Ok(table) = format!("v = {trimmed}").parse::<Table>() {
            if let Some(v) = table.get("v") {
                return v.clone();
            }
        }
    }
    Value::String(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(table: &mut Table, vars: Vec<(String, String)>) -> Result<Applied, EnvError> {
        super::apply(table, vars, &crate::config::raw::schema())
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn sets_sections_and_top_level_keys_with_types() {
        let mut t = Table::new();
        let applied = apply(
            &mut t,
            vars(&[
                ("BARS_LISTEN__ADDRESS", "0.0.0.0:8443"),
                ("BARS_LISTEN__MAX_CONNECTIONS", "100"),
                ("BARS_ALLOWLIST__ALLOW_ANY_SOURCE_UNSAFE", "false"),
                ("BARS_TLS__CLIENT_CA", r#"["a.pem", "b.pem"]"#),
                ("BARS_ENVIRONMENT", "prod"),
                ("BARS_RECEIVER__SOFTWARE_VERSION", "1.2"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(applied.overrides.len(), 6);
        assert!(applied.ignored.is_empty(), "{:?}", applied.ignored);
        assert_eq!(t["listen"]["address"].as_str(), Some("0.0.0.0:8443"));
        assert_eq!(t["listen"]["max_connections"].as_integer(), Some(100));
        assert_eq!(t["allowlist"]["allow_any_source_unsafe"].as_bool(), Some(false));
        assert_eq!(t["tls"]["client_ca"].as_array().unwrap().len(), 2);
        assert_eq!(t["environment"].as_str(), Some("prod"));
        assert_eq!(t["receiver"]["software_version"].as_str(), Some("1.2"));
    }

    #[test]
    fn refuses_empty_values() {
        let err = apply(&mut Table::new(), vars(&[("BARS_TLS__ALLOWED_CLIENT_NAMES", "")])).unwrap_err();
        assert_eq!(err.variable, "BARS_TLS__ALLOWED_CLIENT_NAMES");
        assert!(err.message.contains("empty"), "{err:?}");
    }

    /// What Kubernetes sets in every pod of a namespace with a Service named `bars-receiver`
    /// (ports `mtls` 8443/TCP and `admin` 9090/TCP) and one named `bars-receiver-admin`.
    const SERVICE_LINKS: &[(&str, &str)] = &[
        ("BARS_RECEIVER_SERVICE_HOST", "10.0.0.1"),
        ("BARS_RECEIVER_SERVICE_PORT", "8443"),
        ("BARS_RECEIVER_SERVICE_PORT_MTLS", "8443"),
        ("BARS_RECEIVER_SERVICE_PORT_ADMIN", "9090"),
        ("BARS_RECEIVER_PORT", "tcp://10.0.0.1:8443"),
        ("BARS_RECEIVER_PORT_8443_TCP", "tcp://10.0.0.1:8443"),
        ("BARS_RECEIVER_PORT_8443_TCP_PROTO", "tcp"),
        ("BARS_RECEIVER_PORT_8443_TCP_PORT", "8443"),
        ("BARS_RECEIVER_PORT_8443_TCP_ADDR", "10.0.0.1"),
        ("BARS_RECEIVER_PORT_9090_TCP", "tcp://10.0.0.1:9090"),
        ("BARS_RECEIVER_ADMIN_SERVICE_HOST", "10.0.0.2"),
        ("BARS_RECEIVER_ADMIN_PORT", "tcp://10.0.0.2:9090"),
    ];

    #[test]
    fn ignores_kubernetes_service_links_by_name() {
        let mut t = Table::new();
        let mut all = vars(SERVICE_LINKS);
        all.push(("BARS_LISTEN__ADDRESS".into(), "0.0.0.0:8443".into()));
        let applied = apply(&mut t, all).unwrap();
        assert_eq!(applied.overrides.len(), 1);
        assert_eq!(applied.ignored.len(), SERVICE_LINKS.len());
        assert!(!t.contains_key("receiver"), "{t:?}");
        assert_eq!(t["listen"]["address"].as_str(), Some("0.0.0.0:8443"));
    }

    #[test]
    fn refuses_an_override_with_one_underscore_too_few() {
        let err = apply(&mut Table::new(), vars(&[("BARS_TLS_ALLOWED_CLIENT_NAMES", "x")])).unwrap_err();
        assert_eq!(err.variable, "BARS_TLS_ALLOWED_CLIENT_NAMES");
        assert!(
            err.message
                .contains("did you mean BARS_TLS__ALLOWED_CLIENT_NAMES"),
            "{err:?}"
        );
        let err = apply(&mut Table::new(), vars(&[("BARS_LISTEN_ADDRESS", "x")])).unwrap_err();
        assert!(err.message.contains("BARS_LISTEN__ADDRESS"), "{err:?}");
    }

    #[test]
    fn knows_every_section_and_its_keys() {
        let schema = crate::config::raw::schema();
        assert_eq!(schema.top_level, ["environment"]);
        assert_eq!(schema.sections.len(), 14);
        assert!(schema.section_keys("store").unwrap().contains(&"url"));
        assert!(schema.sections.iter().all(|(_, keys)| !keys.is_empty()));
        assert!(
            schema
                .section_keys("listen")
                .unwrap()
                .contains(&"handshake_timeout")
        );
        assert!(schema.section_keys("sender").unwrap().contains(&"api_key"));
        assert_eq!(schema.section_keys("messaging").unwrap(), ["definitions"]);
        assert!(schema.section_keys("receiver_port").is_none());
    }

    #[test]
    fn refuses_malformed_names() {
        assert!(apply(&mut Table::new(), vars(&[("BARS_A__B__C", "x")])).is_err());
        assert!(apply(&mut Table::new(), vars(&[("BARS___X", "x")])).is_err());
    }
}
