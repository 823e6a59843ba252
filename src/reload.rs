//! Certificate rotation without restarts: admission material (server chain and key, client
//! CAs, CRLs, identity pins, allowlist, trusted proxies) is rebuilt off to the side on SIGHUP,
//! on demand, or when a watched file's content changes (which also catches Kubernetes-style
//! symlink swaps), and swapped in atomically. A reload that fails keeps the old material
//! serving, logs the reason with the path, and counts a failed reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::admin::Metrics;
use crate::config::{ConfigError, Settings};
use crate::net::{AdmissionError, AdmissionHolder, build_admission};
use crate::tls::TlsMaterial;

/// Why a reload failed; the previous material keeps serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The configuration file no longer loads.
    #[error(transparent)]
    Config(ConfigError),
    /// A certificate, key, CA bundle or CRL is unusable, or the server certificate expired.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
}

/// Where a reload reads its settings from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SettingsSource {
    /// A configuration file (with the process's `BARS_` overrides), re-read on every reload:
    /// changes to the allowlist, pins, CRL list and certificate paths take effect.
    File(PathBuf),
    /// The embedded development configuration (with overrides).
    Dev,
    /// Settings given in code: a reload re-reads the files they name.
    Fixed(Box<Settings>),
}

impl SettingsSource {
    fn load(&self) -> Result<Settings, ConfigError> {
        match self {
            Self::File(path) => Settings::load(path),
            Self::Dev => Settings::dev(),
            Self::Fixed(settings) => Ok(*settings.clone()),
        }
    }

    fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Dev | Self::Fixed(_) => None,
        }
    }
}

/// Publishes expiry gauges for the material in force and warns about what expires soon.
pub(crate) fn observe_material(metrics: &Metrics, material: &TlsMaterial) {
    metrics.clear_not_after();
    let now = OffsetDateTime::now_utc();
    let server = &material.server_cert;
    metrics.set_not_after("server", &server.subject, server.not_after);
    if server.not_after - now < time::Duration::days(30) {
        tracing::warn!(subject = %server.subject, not_after = %server.not_after, "the server certificate expires within 30 days: rotate it");
    }
    for ca in &material.client_cas {
        metrics.set_not_after("ca", &ca.subject, ca.not_after);
        if ca.not_after - now < time::Duration::days(30) {
            tracing::warn!(subject = %ca.subject, not_after = %ca.not_after, "a client CA certificate expires within 30 days");
        }
    }
    for crl in &material.crls {
        let Some(next) = crl.next_update else {
            continue;
        };
        metrics.set_not_after("crl", &crl.issuer, next);
        if next <= now {
            tracing::error!(path = %crl.path.display(), issuer = %crl.issuer, next_update = %next,
                "CRL is past its nextUpdate: every client certificate it covers is refused until it is refreshed");
        } else if next - now < time::Duration::hours(24) {
            tracing::warn!(path = %crl.path.display(), issuer = %crl.issuer, next_update = %next,
                "CRL reaches its nextUpdate within 24 hours: refresh it before then or clients will be refused");
        }
    }
}

/// Rebuilds and swaps the admission material.
pub struct Reloader {
    source: SettingsSource,
    holder: Arc<AdmissionHolder>,
    metrics: Arc<Metrics>,
    /// The watched files as they were at the last (attempted) reload.
    seen: Mutex<Fingerprint>,
    /// Held for a whole reload, so that two (SIGHUP and the watcher, say) never interleave
    /// and leave the older material swapped in last.
    reloading: Mutex<()>,
    /// The material in force, for the periodic expiry checks.
    material: Mutex<TlsMaterial>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// `seen` is the [`fingerprint`] taken before `material` was built, so that a change
    /// during the build is not missed.
    pub(crate) fn new(
        source: SettingsSource,
        seen: Fingerprint,
        material: TlsMaterial,
        holder: Arc<AdmissionHolder>,
        metrics: Arc<Metrics>,
    ) -> Self {
        observe_material(&metrics, &material);
        Self {
            source,
            holder,
            metrics,
            seen: Mutex::new(seen),
            reloading: Mutex::new(()),
            material: Mutex::new(material),
        }
    }

    /// Reloads now. On failure the old material keeps serving and the error (naming the
    /// file or key at fault) is returned, logged and counted.
    pub fn reload(&self, why: &str) -> Result<(), ReloadError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = match self.source.load() {
            Ok(settings) => {
                *self.seen_lock() = fingerprint(&self.source, &settings);
                build_admission(
                    &settings.tls,
                    &settings.allowlist,
                    &settings.listen.trusted_proxies,
                )
                .map_err(ReloadError::from)
            }
            Err(e) => {
                // Remember the broken file as seen: it is reloaded when it changes again,
                // not on every watch tick.
                if let Some(file) = self.source.file() {
                    let now = digest(file);
                    for (path, d) in self.seen_lock().iter_mut() {
                        if path == file {
                            *d = now;
                        }
                    }
                }
                Err(ReloadError::Config(e))
            }
        };
        match result {
            Ok((admission, material)) => {
                self.holder.replace(admission);
                observe_material(&self.metrics, &material);
                self.count("success");
                tracing::info!(why, server_cert = %material.server_cert.subject, not_after = %material.server_cert.not_after, "reloaded TLS and admission material");
                *self
                    .material
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = material;
                Ok(())
            }
            Err(e) => {
                self.count("failure");
                tracing::error!(why, error = %e, "reload failed; the previous material keeps serving");
                Err(e)
            }
        }
    }

    /// Whether any watched file changed since the last reload.
    fn changed(&self) -> bool {
        let current = match self.source.load() {
            Ok(settings) => fingerprint(&self.source, &settings),
            // A config file that no longer parses is a change; reload() will say why.
            Err(_) => return self.source.file().is_some_and(|f| self.file_changed(f)),
        };
        *self.seen_lock() != current
    }

    fn file_changed(&self, file: &Path) -> bool {
        let now = digest(file);
        !self.seen_lock().iter().any(|(p, d)| p == file && *d == now)
    }

    /// Polls the watched files every `interval` (when set) and checks expiries every ten
    /// minutes, until dropped.
    pub(crate) async fn watch(self: Arc<Self>, interval: Option<Duration>) {
        const EXPIRY_CHECK: Duration = Duration::from_secs(600);
        let tick = interval.unwrap_or(EXPIRY_CHECK).min(EXPIRY_CHECK);
        let mut since_expiry_check = Duration::ZERO;
        loop {
            tokio::time::sleep(tick).await;
            since_expiry_check += tick;
            if interval.is_some() {
                let me = self.clone();
                let changed = tokio::task::spawn_blocking(move || me.changed())
                    .await
                    .unwrap_or(false);
                if changed {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.reload("a watched file changed")).await;
                }
            }
            if since_expiry_check >= EXPIRY_CHECK {
                since_expiry_check = Duration::ZERO;
                let material = self
                    .material
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                observe_material(&self.metrics, &material);
            }
        }
    }

    fn count(&self, result: &'static str) {
        self.metrics
            .reloads
            .get_or_create(&crate::admin::ResultLabel { result })
            .inc();
    }

    fn seen_lock(&self) -> std::sync::MutexGuard<'_, Fingerprint> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The content of every watched file (the configuration file, certificates, key, CA bundle,
/// CRLs), to tell when a reload is due.
pub(crate) type Fingerprint = Vec<(PathBuf, Option<[u8; 32]>)>;

/// Takes the [`Fingerprint`] of what `settings` (read from `source`) name.
pub(crate) fn fingerprint(source: &SettingsSource, settings: &Settings) -> Fingerprint {
    let tls = &settings.tls;
    let mut files: Vec<PathBuf> = source.file().map(Path::to_owned).into_iter().collect();
    files.push(tls.cert_chain.clone());
    files.push(tls.private_key.clone());
    files.extend(tls.client_ca.iter().cloned());
    files.extend(tls.crl.iter().cloned());
    files
        .into_iter()
        .map(|f| {
            let d = digest(&f);
            (f, d)
        })
        .collect()
}

/// SHA-256 of a file's content, following symlinks; `None` when unreadable.
fn digest(path: &Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    d.as_ref().try_into().ok()
}
