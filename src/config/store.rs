//! `[store]`: the embedded SQLite file (the default, at `inbox.path`) or a PostgreSQL
//! database shared by several replicas.

use std::path::PathBuf;

use super::Environment;
use super::fields::{Problems, duration, file};
use super::raw::RawStore;
use crate::store::{PostgresSettings, PostgresTls, PostgresUrl, StoreSettings};

/// The keys that only a PostgreSQL store reads.
const POSTGRES_ONLY: &[&str] = &[
    "url",
    "tls",
    "ca_file",
    "use_system_roots",
    "pool_size",
    "connect_timeout",
    "statement_timeout",
    "claim_lease",
];

pub(super) fn convert(
    p: &mut Problems,
    environment: Environment,
    raw: RawStore,
    sqlite_path: PathBuf,
) -> StoreSettings {
    match raw.kind.as_deref().unwrap_or("sqlite") {
        "sqlite" => {
            let set = [
                raw.url.is_some(),
                raw.tls.is_some(),
                raw.ca_file.is_some(),
                raw.use_system_roots.is_some(),
                raw.pool_size.is_some(),
                raw.connect_timeout.is_some(),
                raw.statement_timeout.is_some(),
                raw.claim_lease.is_some(),
            ];
            for (key, _) in POSTGRES_ONLY.iter().zip(set).filter(|(_, set)| *set) {
                p.add(
                    &format!("store.{key}"),
                    "is a PostgreSQL setting, but store.kind is sqlite (the default): set store.kind = \"postgres\" or remove it",
                );
            }
            StoreSettings::Sqlite { path: sqlite_path }
        }
        "postgres" => StoreSettings::Postgres(postgres(p, environment, raw)),
        other => {
            p.add(
                "store.kind",
                format!("'{other}' is not a store this build has (sqlite, postgres)"),
            );
            StoreSettings::Sqlite { path: sqlite_path }
        }
    }
}

fn postgres(p: &mut Problems, environment: Environment, raw: RawStore) -> PostgresSettings {
    let url = match raw.url {
        None => {
            p.add(
                "store.url",
                "required for store.kind = \"postgres\" (postgres://user@host:5432/database; or BARS_STORE__URL)",
            );
            None
        }
        Some(text) => match text.parse::<PostgresUrl>() {
            Ok(url) => Some(url),
            Err(e) => {
                // Never quote the value: it may carry the password.
                p.add("store.url", e);
                None
            }
        },
    };
    let tls = match raw.tls.as_deref().unwrap_or("verify-full") {
        "verify-full" => {
            let ca: Vec<PathBuf> = raw
                .ca_file
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, f)| file(p, &format!("store.ca_file[{i}]"), f))
                .collect();
            let use_system_roots = raw.use_system_roots.unwrap_or(false);
            if ca.is_empty() && !use_system_roots {
                p.add(
                    "store.ca_file",
                    "required with store.tls = \"verify-full\" (the default): the CA that issued the database server's certificate (or store.use_system_roots = true)",
                );
            }
            PostgresTls::VerifyFull { ca, use_system_roots }
        }
        "insecure-disabled" => {
            if raw.ca_file.is_some() || raw.use_system_roots.is_some() {
                p.add(
                    "store.ca_file",
                    "is set while store.tls = \"insecure-disabled\": remove one of them",
                );
            }
            // Plaintext carries patient data and the database password: only to this machine
            // (a socket, loopback, or a local proxy such as a cloud SQL auth proxy), or in dev.
            if environment != Environment::Dev && url.as_ref().is_some_and(|u| !u.is_local()) {
                p.add(
                    "store.tls",
                    "\"insecure-disabled\" is allowed outside dev only for a database on this machine; use \"verify-full\" with store.ca_file",
                );
            }
            PostgresTls::InsecureDisabled
        }
        other => {
            p.add(
                "store.tls",
                format!("'{other}' is not a TLS mode (verify-full, insecure-disabled)"),
            );
            PostgresTls::InsecureDisabled
        }
    };
    let pool_size = match raw.pool_size {
        None => 16,
        Some(n) if (1..=256).contains(&n) => n as usize,
        Some(n) => {
            p.add("store.pool_size", format!("{n} is outside 1..=256"));
            16
        }
    };
    let connect_timeout = duration(p, "store.connect_timeout", raw.connect_timeout, "2s", (1, 60));
    let statement_timeout = duration(
        p,
        "store.statement_timeout",
        raw.statement_timeout,
        "5s",
        (1, 300),
    );
    let claim_lease = duration(p, "store.claim_lease", raw.claim_lease, "30s", (1, 3_600));
    PostgresSettings {
        // A placeholder only when a problem was recorded above: conversion then fails.
        url: url.unwrap_or_else(PostgresUrl::placeholder),
        tls,
        pool_size,
        connect_timeout,
        statement_timeout,
        claim_lease,
    }
}
