//! The configuration file as written: TOML text with the `BARS_` overrides layered over it,
//! every key optional (defaults fill in), unknown keys refused. The section conversions turn
//! it into typed settings.

use serde::{Deserialize, Deserializer};

use super::ConfigError;
use super::env::{self, Override, Schema};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) environment: Option<String>,
    #[serde(default)]
    pub(crate) listen: RawListen,
    #[serde(default)]
    pub(crate) tls: RawTls,
    #[serde(default)]
    pub(crate) allowlist: RawAllowlist,
    #[serde(default)]
    pub(crate) http: RawHttp,
    #[serde(default)]
    pub(crate) receiver: RawReceiver,
    #[serde(default)]
    pub(crate) handler: RawHandler,
    pub(crate) upstream: Option<RawUpstream>,
    #[serde(default)]
    pub(crate) inbox: RawInbox,
    #[serde(default)]
    pub(crate) store: RawStore,
    #[serde(default)]
    pub(crate) log: RawLog,
    #[serde(default)]
    pub(crate) admin: RawAdmin,
    #[serde(default)]
    pub(crate) reload: RawReload,
    pub(crate) sender: Option<RawSender>,
    pub(crate) messaging: Option<RawMessaging>,
    /// `BARS_` variables that are not configuration (a Kubernetes service link, say), for one
    /// debug line at start.
    #[serde(skip)]
    pub(crate) ignored_variables: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub(crate) address: Option<String>,
    pub(crate) handshake_timeout: Option<String>,
    pub(crate) max_connections: Option<i64>,
    pub(crate) shutdown_grace: Option<String>,
    pub(crate) max_connection_age: Option<String>,
    pub(crate) first_request_timeout: Option<String>,
    pub(crate) idle_timeout: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert_chain: Option<String>,
    pub(crate) private_key: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) client_ca: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) allowed_client_names: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) crl: Option<Vec<String>>,
    pub(crate) allow_unknown_revocation_status_unsafe: Option<bool>,
    pub(crate) allow_expired_crl_unsafe: Option<bool>,
    pub(crate) allow_no_revocation_check_unsafe: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAllowlist {
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) sources: Option<Vec<String>>,
    pub(crate) allow_any_source_unsafe: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    pub(crate) max_body: Option<String>,
    pub(crate) deadline: Option<String>,
    pub(crate) processing_limit: Option<String>,
    pub(crate) base_path: Option<String>,
    pub(crate) rate_limit: Option<i64>,
    pub(crate) max_inflight_body: Option<String>,
    pub(crate) max_header_bytes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReceiver {
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) services: Option<Vec<String>>,
    pub(crate) ods_code: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) publisher: Option<String>,
    pub(crate) software_name: Option<String>,
    pub(crate) software_version: Option<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) requester_headers: Option<String>,
    pub(crate) max_slot_range: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHandler {
    pub(crate) kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub(crate) url: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) ca: Option<Vec<String>>,
    pub(crate) use_system_roots: Option<bool>,
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) http2_only: Option<bool>,
    pub(crate) timeout: Option<String>,
    pub(crate) max_response_body: Option<String>,
    pub(crate) retry_base: Option<String>,
    pub(crate) retry_cap: Option<String>,
    pub(crate) max_attempts: Option<i64>,
    pub(crate) max_in_flight: Option<i64>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) interactions: Option<Vec<String>>,
}

/// `[messaging]`: the message definitions supported.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMessaging {
    pub(crate) definitions: Option<Vec<RawDefinition>>,
}

/// One `[[messaging.definitions]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefinition {
    pub(crate) url: Option<String>,
    pub(crate) version: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) services: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) categories: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInbox {
    pub(crate) path: Option<String>,
    pub(crate) dedup_retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub(crate) kind: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) tls: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) ca_file: Option<Vec<String>>,
    pub(crate) use_system_roots: Option<bool>,
    pub(crate) pool_size: Option<i64>,
    pub(crate) connect_timeout: Option<String>,
    pub(crate) statement_timeout: Option<String>,
    pub(crate) claim_lease: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) format: Option<String>,
    pub(crate) level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) enabled: Option<bool>,
    pub(crate) address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReload {
    pub(crate) watch_interval: Option<String>,
}

/// `[sender]`: API-M credentials and what outgoing requests say about the sender.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSender {
    pub(crate) mode: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub(crate) api_key: Option<String>,
    pub(crate) private_key: Option<String>,
    pub(crate) kid: Option<String>,
    pub(crate) token_url: Option<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) assertion_lifetime: Option<String>,
    pub(crate) bars_version: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub(crate) ods_code: Option<String>,
    pub(crate) organisation_name: Option<String>,
    pub(crate) software_name: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub(crate) software_version: Option<String>,
    pub(crate) software_identifier: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) max_attempts: Option<i64>,
    pub(crate) retry_backoff: Option<String>,
    pub(crate) ca_file: Option<String>,
}

/// Parses `text` (named `origin` in errors) with `vars` layered over it, blaming a bad value
/// on the variable it came from.
pub(super) fn parse_raw(
    text: &str,
    origin: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        origin: origin.to_owned(),
        message: e.to_string().trim().to_owned(),
    })?;
    let applied = env::apply(&mut table, vars, &schema()).map_err(|e| ConfigError::Environment {
        variable: e.variable,
        message: e.message,
    })?;
    let mut raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Key {
            origin: blame(origin, &applied.overrides, &key),
            key,
            message: e.inner().to_string(),
        }
    })?;
    raw.ignored_variables = applied.ignored;
    Ok(raw)
}

/// The keys the file accepts, for telling overrides from other `BARS_` variables.
pub(super) fn schema() -> Schema {
    let sections: Vec<(&'static str, &'static [&'static str])> = vec![
        ("listen", fields_of::<RawListen>()),
        ("tls", fields_of::<RawTls>()),
        ("allowlist", fields_of::<RawAllowlist>()),
        ("http", fields_of::<RawHttp>()),
        ("receiver", fields_of::<RawReceiver>()),
        ("handler", fields_of::<RawHandler>()),
        ("upstream", fields_of::<RawUpstream>()),
        ("inbox", fields_of::<RawInbox>()),
        ("store", fields_of::<RawStore>()),
        ("log", fields_of::<RawLog>()),
        ("admin", fields_of::<RawAdmin>()),
        ("reload", fields_of::<RawReload>()),
        ("sender", fields_of::<RawSender>()),
        ("messaging", fields_of::<RawMessaging>()),
    ];
    let top_level = fields_of::<RawConfig>()
        .iter()
        .copied()
        .filter(|name| !sections.iter().any(|(section, _)| section == name))
        .collect();
    Schema { top_level, sections }
}

/// The field names serde's derive gives a struct (what `deny_unknown_fields` accepts), read
/// from the derive itself so that the list cannot drift from the struct.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The capture always ends in its own error, once it has the names.
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only records the field names a struct asks for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

/// The end of a [`FieldNames`] capture.
#[derive(Debug)]
struct Captured;

impl std::fmt::Display for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names captured")
    }
}

impl std::error::Error for Captured {}

impl serde::de::Error for Captured {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Captured;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Captured> {
        *self.0 = fields;
        Err(Captured)
    }

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Captured> {
        Err(Captured)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Names the environment variable when the faulty key came from one.
fn blame(origin: &str, overrides: &[Override], key: &str) -> String {
    overrides
        .iter()
        .find(|o| {
            key == o.key
                || key.starts_with(&format!("{}.", o.key))
                || key.starts_with(&format!("{}[", o.key))
                // An unknown section, which only the override made.
                || o.key.starts_with(&format!("{key}."))
        })
        .map_or_else(
            || origin.to_owned(),
            |o| format!("environment variable {}", o.variable),
        )
}

/// A string that an environment override may have typed as an integer (an all-digit API key
/// or version).
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Text(String),
        Number(i64),
    }
    Ok(Option::<Text>::deserialize(d)?.map(|v| match v {
        Text::Text(s) => s,
        Text::Number(n) => n.to_string(),
    }))
}

/// Lists may be written as TOML arrays or, from environment variables, as one
/// comma-separated string.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    }))
}
