//! `BARS_<SECTION>__<KEY>` environment overrides, layered over the file before parsing.

use toml::{Table, Value};

/// The prefix of every override.
pub const ENV_PREFIX: &str = "BARS_";

/// One applied override, remembered so that a bad value can be blamed on its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    pub(crate) variable: String,
    pub(crate) key: String,
}

/// Applies every `BARS_` variable in `vars` to `table`. `BARS_LISTEN__ADDRESS=x` sets
/// `listen.address`; `BARS_ENVIRONMENT=int` sets `environment`. Values that read as a TOML
/// array, boolean or integer take that type; everything else is a string.
pub(crate) fn apply(
    table: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Override>, String> {
    let mut applied = Vec::new();
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (variable, raw) in vars {
        let key = variable[ENV_PREFIX.len()..].to_ascii_lowercase();
        let path: Vec<&str> = key.split("__").collect();
        let malformed =
            || format!("environment variable {variable}: expected BARS_<KEY> or BARS_<SECTION>__<KEY>");
        if path.iter().any(|p| p.is_empty()) {
            return Err(malformed());
        }
        // An empty value (an unfilled template variable, say) must not silently clear a
        // setting such as the identity pins: unset the variable to keep the file's value.
        if raw.trim().is_empty() {
            return Err(format!(
                "environment variable {variable} is set but empty; unset it to keep the file's value"
            ));
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
                    return Err(format!(
                        "environment variable {variable}: {section} is not a section"
                    ));
                };
                section_table.insert((*key).to_owned(), value);
            }
            _ => return Err(malformed()),
        }
        applied.push(Override {
            variable,
            key: path.join("."),
        });
    }
    Ok(applied)
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
        assert_eq!(applied.len(), 6);
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
        assert!(err.contains("BARS_TLS__ALLOWED_CLIENT_NAMES"), "{err}");
    }

    #[test]
    fn refuses_malformed_names() {
        assert!(apply(&mut Table::new(), vars(&[("BARS_A__B__C", "x")])).is_err());
        assert!(apply(&mut Table::new(), vars(&[("BARS___X", "x")])).is_err());
    }
}
