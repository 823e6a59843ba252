//! `check`: validates a configuration and its certificates without binding anything, and
//! says what a provider should fix before the national proxy tries to connect.

use time::{Duration, OffsetDateTime};

use crate::config::{ConfigError, Environment, SenderAuth, SenderSettings, Settings};
use crate::sender::{RECOMMENDED_RSA_BITS, SigningKey, key_file_warning, kid_convention};
use crate::tls::{CertInfo, build_server_config, load_certs, load_client_cas, load_crls};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Checked and fine.
    Ok,
    /// Works, but should be looked at.
    Warning,
    /// Will not work, or is unsafe.
    Error,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// The key or file concerned.
    pub topic: String,
    /// What was found.
    pub message: String,
}

/// Everything `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// In the order checked.
    pub findings: Vec<Finding>,
}

impl Report {
    fn push(&mut self, level: Level, topic: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            level,
            topic: topic.into(),
            message: message.into(),
        });
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }

    /// Human-readable text, one finding per line, then a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let tag = match f.level {
                Level::Ok => "ok     ",
                Level::Warning => "WARNING",
                Level::Error => "ERROR  ",
            };
            out.push_str(&format!("{tag} {}: {}\n", f.topic, f.message));
        }
        let count = |l| self.findings.iter().filter(|f| f.level == l).count();
        out.push_str(&format!(
            "\n{} error(s), {} warning(s): {}\n",
            count(Level::Error),
            count(Level::Warning),
            if self.has_errors() { "NOT ready" } else { "ready" }
        ));
        out
    }
}

/// Checks a configuration load result: its problems if it failed, everything else if not.
pub fn check(loaded: Result<Settings, ConfigError>) -> Report {
    match loaded {
        Ok(settings) => check_settings(&settings, OffsetDateTime::now_utc()),
        Err(ConfigError::Invalid { origin, problems }) => {
            let mut report = Report::default();
            for p in problems {
                report.push(Level::Error, format!("{origin}: {}", p.key), p.message);
            }
            report
        }
        Err(e) => {
            let mut report = Report::default();
            report.push(Level::Error, "configuration", e.to_string());
            report
        }
    }
}

/// Checks loaded settings as of `now`.
pub fn check_settings(settings: &Settings, now: OffsetDateTime) -> Report {
    let mut r = Report::default();
    r.push(Level::Ok, "environment", settings.environment.as_str());
    server_chain(&mut r, settings, now);
    client_cas(&mut r, settings, now);
    crls(&mut r, settings, now);
    allowlist(&mut r, settings);
    if settings.tls.allowed_client_names.is_empty() {
        r.push(
            Level::Ok,
            "tls.allowed_client_names",
            "empty: any client certificate from the CA bundle is accepted (the allowlist and CA bundle still apply)",
        );
    } else {
        let names: Vec<String> = settings
            .tls
            .allowed_client_names
            .patterns()
            .iter()
            .map(ToString::to_string)
            .collect();
        r.push(Level::Ok, "tls.allowed_client_names", names.join(", "));
    }
    if settings.receiver.services.is_empty() && settings.environment != Environment::Dev {
        r.push(
            Level::Warning,
            "receiver.services",
            "empty: requests for any NHSD-Target-Identifier are accepted; list the services you registered",
        );
    }
    inbox(&mut r, settings);
    if let Some(sender) = &settings.sender {
        sender_settings(&mut r, settings.environment, sender);
    }
    upstream(&mut r, settings);
    r
}

/// `[sender]`: the signing key loads and is private, the kid follows the convention.
fn sender_settings(r: &mut Report, environment: Environment, sender: &SenderSettings) {
    let apim = match &sender.auth {
        SenderAuth::Sandbox => {
            r.push(
                Level::Ok,
                "sender.mode",
                format!("sandbox: no token, sending to {}", sender.base_url),
            );
            return;
        }
        SenderAuth::SignedJwt(apim) => apim,
    };
    r.push(
        Level::Ok,
        "sender.mode",
        format!(
            "signed-jwt: tokens from {}, sending to {}",
            apim.token_url, sender.base_url
        ),
    );
    if let Some(warning) = key_file_warning(&apim.private_key) {
        r.push(Level::Warning, "sender.private_key", warning);
    }
    match SigningKey::load(&apim.private_key, &apim.kid) {
        Ok(key) if key.bits() < RECOMMENDED_RSA_BITS => r.push(
            Level::Warning,
            "sender.private_key",
            format!(
                "RSA {} bits; API-M asks for {RECOMMENDED_RSA_BITS} (bars-receiver keygen)",
                key.bits()
            ),
        ),
        Ok(key) => r.push(
            Level::Ok,
            "sender.private_key",
            format!("RSA {} bits, loads for RS512 signing", key.bits()),
        ),
        Err(e) => r.push(Level::Error, "sender.private_key", e.to_string()),
    }
    match kid_convention(&apim.kid) {
        Err(why) => r.push(Level::Warning, "sender.kid", why.to_string()),
        Ok(()) => {
            let expected = match environment {
                Environment::Int => Some("-INT-"),
                Environment::Prod => Some("-PROD-"),
                Environment::Dev => None,
            };
            match expected {
                Some(part) if !apim.kid.contains(part) => r.push(
                    Level::Warning,
                    "sender.kid",
                    format!(
                        "{} does not name environment {}; API-M keys are per environment",
                        apim.kid,
                        environment.as_str()
                    ),
                ),
                _ => r.push(Level::Ok, "sender.kid", apim.kid.clone()),
            }
        }
    }
}

/// The handler kind, and for forward/relay whether the upstream client can be built (its
/// CA, certificate and key files load). Nothing is sent to the upstream.
fn upstream(r: &mut Report, settings: &Settings) {
    let kind = settings.handler.as_str();
    let Some(upstream) = &settings.upstream else {
        r.push(Level::Ok, "handler.kind", kind);
        return;
    };
    r.push(Level::Ok, "handler.kind", format!("{kind} to {}", upstream.url));
    if let Err(e) = crate::upstream::Upstream::new(upstream) {
        r.push(Level::Error, "upstream", e.to_string());
    }
    if upstream.use_system_roots {
        r.push(
            Level::Warning,
            "upstream.use_system_roots",
            "true: your system's certificate is accepted from any CA in the system root store",
        );
    }
    if upstream.url.starts_with("http://") && !crate::loopback::is_loopback_url(&upstream.url) {
        r.push(
            Level::Warning,
            "upstream.url",
            "plain http to another host: patient data leaves this host unencrypted",
        );
    }
}

fn server_chain(r: &mut Report, settings: &Settings, now: OffsetDateTime) {
    let path = settings.tls.cert_chain.display().to_string();
    let chain = match load_certs(&settings.tls.cert_chain) {
        Ok(chain) => chain,
        Err(e) => return r.push(Level::Error, "tls.cert_chain", e.to_string()),
    };
    let infos: Vec<CertInfo> = match chain.iter().map(CertInfo::parse).collect() {
        Ok(infos) => infos,
        Err(e) => return r.push(Level::Error, "tls.cert_chain", format!("{path}: {e}")),
    };
    let leaf = &infos[0];
    r.push(
        Level::Ok,
        "tls.cert_chain",
        format!("{path}: {} certificate(s), leaf {}", infos.len(), leaf.subject),
    );
    if leaf.is_ca {
        r.push(
            Level::Error,
            "tls.cert_chain",
            format!("{path}: the first certificate is a CA; put the server (leaf) certificate first"),
        );
    }
    if !leaf.server_auth {
        r.push(
            Level::Error,
            "tls.cert_chain",
            format!("{path}: the leaf is not for TLS server authentication (extendedKeyUsage)"),
        );
    }
    for pair in infos.windows(2) {
        if pair[0].issuer != pair[1].subject {
            r.push(
                Level::Error,
                "tls.cert_chain",
                format!(
                    "{path}: out of order: '{}' is not issued by the next certificate '{}'",
                    pair[0].subject, pair[1].subject
                ),
            );
        }
    }
    if infos.len() == 1 && !leaf.self_issued {
        r.push(
            Level::Warning,
            "tls.cert_chain",
            format!(
                "{path}: holds only the leaf; append the SubCA certificate so callers can build the chain"
            ),
        );
    }
    for info in &infos {
        expiry(
            r,
            "tls.cert_chain",
            &info.subject,
            info.not_before,
            info.not_after,
            now,
        );
    }
    naming(r, settings.environment, leaf);
    match build_server_config(&settings.tls) {
        Ok(_) => r.push(Level::Ok, "tls.private_key", "matches the server certificate"),
        Err(e) => r.push(Level::Error, "tls", e.to_string()),
    }
}

fn naming(r: &mut Report, environment: Environment, leaf: &CertInfo) {
    let Some(cn) = leaf.common_name.as_deref() else {
        return r.push(
            Level::Warning,
            "server name",
            "the server certificate has no CN; BaRS expects CN = the FQDN",
        );
    };
    if !leaf.dns_names.is_empty() && !leaf.dns_names.iter().any(|d| d.eq_ignore_ascii_case(cn)) {
        r.push(
            Level::Warning,
            "server name",
            format!("CN {cn} is not among the DNS SANs; clients check the SANs"),
        );
    }
    if environment == Environment::Dev {
        return r.push(
            Level::Ok,
            "server name",
            format!("{cn} (naming convention not enforced for dev)"),
        );
    }
    let expected = environment.as_str().to_ascii_uppercase();
    match bars_name_env(cn) {
        Some(env) if env == expected => r.push(Level::Ok, "server name", format!("{cn} follows the BaRS naming convention")),
        Some(env) => r.push(
            Level::Error,
            "server name",
            format!("{cn} is named for {env}, but environment = {}", environment.as_str()),
        ),
        None => r.push(
            Level::Warning,
            "server name",
            format!(
                "{cn} does not follow BaRS-{expected}-<ODS>.<Supplier>.thirdparty.nhs.uk or BaRS-{expected}-<ODS>.<Provider>.nhs.uk"
            ),
        ),
    }
}

/// `BaRS-<ENV>-<ODS>.<label>[.thirdparty].nhs.uk` → the ENV part.
fn bars_name_env(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    let first = labels.first()?;
    let rest = first.strip_prefix("bars-")?;
    let (env, ods) = rest.split_once('-')?;
    let label_ok = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let shape_ok = match labels.as_slice() {
        [_, supplier, "thirdparty", "nhs", "uk"] | [_, supplier, "nhs", "uk"] => label_ok(supplier),
        _ => false,
    };
    let ods_ok = !ods.is_empty() && ods.bytes().all(|b| b.is_ascii_alphanumeric());
    (shape_ok && ods_ok && matches!(env, "int" | "prod")).then(|| env.to_ascii_uppercase())
}

fn client_cas(r: &mut Report, settings: &Settings, now: OffsetDateTime) {
    // A bundle without the Root of a SubCA fails to load: a SubCA is verified under its Root.
    match load_client_cas(&settings.tls.client_ca) {
        Ok(cas) => {
            r.push(
                Level::Ok,
                "tls.client_ca",
                format!(
                    "{} Root(s) as trust anchors, {} SubCA(s) verified under them; system roots are never used",
                    cas.root_count(),
                    cas.subca_count()
                ),
            );
            for a in cas.certs() {
                expiry(r, "tls.client_ca", &a.subject, a.not_before, a.not_after, now);
                let name = a.subject.to_ascii_uppercase();
                if settings.environment == Environment::Prod && (name.contains("PTL") || name.contains("INT"))
                {
                    r.push(
                        Level::Warning,
                        "tls.client_ca",
                        format!("'{}' looks like an INT/PTL CA, but environment = prod: a PROD receiver must not trust the INT chain", a.subject),
                    );
                }
            }
        }
        Err(e) => r.push(Level::Error, "tls.client_ca", e.to_string()),
    }
}

fn crls(r: &mut Report, settings: &Settings, now: OffsetDateTime) {
    if settings.tls.crl.is_empty() {
        if settings.environment != Environment::Dev {
            r.push(
                Level::Warning,
                "tls.crl",
                "no CRLs: a revoked client certificate would still be admitted",
            );
        }
        return;
    }
    match load_crls(&settings.tls.crl) {
        Ok((_, infos)) => {
            for crl in infos {
                let topic = format!("tls.crl {}", crl.path.display());
                match crl.next_update {
                    Some(next) if next <= now => r.push(
                        Level::Error,
                        topic,
                        format!(
                            "'{}' passed its nextUpdate on {next}: clients it covers would be refused",
                            crl.issuer
                        ),
                    ),
                    Some(next) if next - now < Duration::hours(24) => r.push(
                        Level::Warning,
                        topic,
                        format!("'{}' reaches its nextUpdate at {next}: refresh it", crl.issuer),
                    ),
                    _ => r.push(
                        Level::Ok,
                        topic,
                        format!(
                            "'{}': {} revoked, next update {:?}",
                            crl.issuer,
                            crl.revoked,
                            crl.next_update.map(|n| n.date())
                        ),
                    ),
                }
            }
        }
        Err(e) => r.push(Level::Error, "tls.crl", e.to_string()),
    }
}

fn allowlist(r: &mut Report, settings: &Settings) {
    let list = &settings.allowlist;
    if list.is_any_source_unsafe() {
        return r.push(
            Level::Warning,
            "allowlist.allow_any_source_unsafe",
            "true: any source address may connect; only the CA bundle protects this receiver",
        );
    }
    let nets: Vec<String> = list.nets().iter().map(ToString::to_string).collect();
    r.push(Level::Ok, "allowlist.sources", nets.join(", "));
    for net in list.nets() {
        if net.prefix_len() == 0 {
            r.push(
                Level::Error,
                "allowlist.sources",
                format!("{net} allows every address; use allow_any_source_unsafe if that is really meant"),
            );
        } else if settings.environment != Environment::Dev && net.max_prefix_len() - net.prefix_len() > 8 {
            r.push(
                Level::Warning,
                "allowlist.sources",
                format!("{net} is broad; the BaRS proxy uses two fixed addresses"),
            );
        }
    }
    if settings.environment != Environment::Dev {
        for preset in settings.environment.preset_sources() {
            let Ok(addr) = preset.trim_end_matches("/32").parse::<std::net::IpAddr>() else {
                continue;
            };
            if !list.allows(addr) {
                r.push(
                    Level::Warning,
                    "allowlist.sources",
                    format!(
                        "the {} proxy address {addr} is not allowed: the national proxy connects from it",
                        settings.environment.as_str().to_ascii_uppercase()
                    ),
                );
            }
        }
    }
}

fn inbox(r: &mut Report, settings: &Settings) {
    if let crate::store::StoreSettings::Postgres(pg) = &settings.store {
        postgres(r, pg);
        return;
    }
    let path = &settings.inbox.path;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() && !m.permissions().readonly() => {
            r.push(Level::Ok, "inbox.path", path.display().to_string());
        }
        Ok(_) => r.push(
            Level::Error,
            "inbox.path",
            format!("{} is not a writable directory", dir.display()),
        ),
        Err(_) => r.push(
            Level::Warning,
            "inbox.path",
            format!(
                "{} does not exist yet; it will be created (0700) at start",
                dir.display()
            ),
        ),
    }
}

/// A PostgreSQL store: where it is and how it is protected (the database itself is not
/// contacted: `check` runs before go-live, often away from it).
fn postgres(r: &mut Report, pg: &crate::store::PostgresSettings) {
    use crate::store::PostgresTls;
    r.push(
        Level::Ok,
        "store.url",
        format!("PostgreSQL at {} (not contacted)", pg.url),
    );
    match &pg.tls {
        PostgresTls::VerifyFull { ca, use_system_roots } => {
            for file in ca {
                match crate::tls::load_certs(file) {
                    Ok(certs) if !certs.is_empty() => r.push(
                        Level::Ok,
                        "store.ca_file",
                        format!("{}: {} certificate(s)", file.display(), certs.len()),
                    ),
                    Ok(_) => r.push(
                        Level::Error,
                        "store.ca_file",
                        format!("{} holds no certificate", file.display()),
                    ),
                    Err(e) => r.push(Level::Error, "store.ca_file", e.to_string()),
                }
            }
            if *use_system_roots {
                r.push(
                    Level::Warning,
                    "store.use_system_roots",
                    "the database's certificate may be issued by any public CA".to_owned(),
                );
            }
        }
        PostgresTls::InsecureDisabled => r.push(
            Level::Warning,
            "store.tls",
            "insecure-disabled: the connection to the database is plaintext".to_owned(),
        ),
    }
}

fn expiry(
    r: &mut Report,
    topic: &str,
    subject: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) {
    let date = not_after.date();
    if not_after <= now {
        r.push(Level::Error, topic, format!("'{subject}' expired on {date}"));
    } else if not_before > now {
        r.push(
            Level::Error,
            topic,
            format!("'{subject}' is not valid until {}", not_before.date()),
        );
    } else if not_after - now < Duration::days(30) {
        r.push(
            Level::Warning,
            topic,
            format!(
                "'{subject}' expires on {date}, in {} day(s)",
                (not_after - now).whole_days()
            ),
        );
    } else {
        r.push(Level::Ok, topic, format!("'{subject}' valid until {date}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_bars_naming_convention() {
        assert_eq!(
            bars_name_env("BaRS-INT-X26.examplesupplier.thirdparty.nhs.uk").as_deref(),
            Some("INT")
        );
        assert_eq!(
            bars_name_env("BaRS-PROD-RXX.leedsth.nhs.uk").as_deref(),
            Some("PROD")
        );
        assert_eq!(
            bars_name_env("bars-int-x26.examplesupplier.thirdparty.nhs.uk").as_deref(),
            Some("INT")
        );
        for bad in [
            "www.example.nhs.uk",
            "BaRS-DEV-X26.a.nhs.uk",
            "BaRS-INT-.a.nhs.uk",
            "BaRS-INT-X26.a.b.c.nhs.uk",
            "BaRS-INT-X26.a.example.com",
        ] {
            assert_eq!(bars_name_env(bad), None, "{bad}");
        }
    }
}
