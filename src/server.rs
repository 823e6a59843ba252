//! The assembled receiver: TLS material, handlers and store in; a future that serves a
//! listener until a shutdown future resolves out.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;

use crate::admin::{Metrics, Readiness, serve_admin};
use crate::config::{Environment, HandlerKind, ListenSettings, SenderAuth, Settings};
use crate::fhir::{ClientAuth, Definitions, Describe, capability_statement};
use crate::handler::{ForwardHandler, Handlers, InboxHandler, RelayHandler, RelayJob};
use crate::http::{HttpConfig, router};
use crate::log_value::LogList;
use crate::net::{self, AdmissionError, AdmissionHolder, Frontend, build_admission};
use crate::relay::{RelayPolicy, RelayWorker};
use crate::reload::{Reloader, SettingsSource, fingerprint};
use crate::store::{Store, StoreError};
use crate::tasks::TaskTracker;
use crate::tls::TlsMaterial;
use crate::upstream::{Upstream, UpstreamError};

/// Why the server could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The TLS material is unusable, or the server certificate has expired.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The upstream client could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// The default handlers: the embedded inbox for messages, nothing else registered.
pub fn default_handlers(store: Store) -> Handlers {
    Handlers::new(Arc::new(InboxHandler::new(store)))
}

/// The handlers `[handler] kind` names: the inbox; `forward`, messages and the interactions
/// `upstream.interactions` names forwarded to `[upstream]`; or `relay`, messages committed
/// and delivered by the relay worker (which [`Server`] runs because these handlers carry it)
/// and those interactions forwarded.
pub fn configured_handlers(settings: &Settings, store: Store) -> Result<Handlers, ServerError> {
    let upstream = || {
        settings.upstream.as_ref().ok_or(UpstreamError::Missing {
            kind: settings.handler.as_str(),
        })
    };
    Ok(match settings.handler {
        HandlerKind::Inbox => default_handlers(store),
        HandlerKind::Forward => {
            let upstream = upstream()?;
            ForwardHandler::new(Upstream::new(upstream)?).handlers_for(&upstream.interactions)
        }
        HandlerKind::Relay => RelayHandler::new(store).handlers(upstream()?)?,
    })
}

/// How often old de-duplication records are pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Keeps the de-duplication records to `retention`, pruning at start and then hourly.
async fn prune_dedup_records(store: Store, retention: std::time::Duration) {
    loop {
        let cutoff = OffsetDateTime::now_utc() - retention;
        match store.prune_outcomes(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "forgot de-duplication records past their retention"),
            Err(e) => tracing::warn!(error = %e, "could not prune de-duplication records"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// Says at start what an operator should know is weaker than it could be.
fn startup_warnings(settings: &Settings) {
    if let Some(upstream) = &settings.upstream {
        if upstream.use_system_roots {
            tracing::warn!(
                "upstream.use_system_roots = true: the upstream's certificate is accepted from any CA in the system root store"
            );
        }
        if upstream.url.starts_with("http://") && !crate::loopback::is_loopback_url(&upstream.url) {
            tracing::warn!(
                upstream = %upstream.url,
                "upstream.url is plain http to another host: patient data leaves this host unencrypted"
            );
        }
    }
    if settings.message_definitions.is_empty() {
        tracing::warn!(
            "no [[messaging.definitions]]: GET /MessageDefinition answers 404 and the CapabilityStatement lists no supported message, so senders following BaRS find nothing to send here"
        );
    }
    if settings.environment == Environment::Dev {
        tracing::warn!(
            "environment = dev: development settings; never expose this receiver to INT or PROD traffic"
        );
        return;
    }
    if settings.tls.allowed_client_names.is_empty() {
        tracing::warn!(
            "tls.allowed_client_names is empty: any certificate chaining to tls.client_ca is admitted from an allowed source; consider pinning the proxy's name"
        );
    }
    for net in settings.allowlist.nets() {
        if net.max_prefix_len() - net.prefix_len() > 8 {
            tracing::warn!(source = %net, "allowlist entry is broad: the BaRS proxy connects from two fixed addresses");
        }
    }
}

/// A receiver ready to serve.
pub struct Server {
    frontend: Arc<Frontend>,
    listen: ListenSettings,
    material: TlsMaterial,
    store: Store,
    dedup_retention: Duration,
    reloader: Arc<Reloader>,
    watch_interval: Option<Duration>,
    readiness: Arc<Readiness>,
    /// Handler tasks, which the shutdown drain waits for.
    tasks: TaskTracker,
    /// The relay delivery worker, when the handlers given carry one.
    relay: Option<RelayJob>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the TLS material (failing closed with the file at fault) and assembles the
    /// HTTP pipeline around `handlers`. `store` keeps the de-duplication records. A reload
    /// re-reads the files these settings name.
    pub fn new(settings: &Settings, handlers: Handlers, store: Store) -> Result<Self, ServerError> {
        Self::with_source(
            SettingsSource::Fixed(Box::new(settings.clone())),
            settings,
            handlers,
            store,
        )
    }

    /// Like [`Server::new`], with reloads reading their settings from `source` (the
    /// configuration file the process was started with, so that allowlist and pin changes
    /// take effect without a restart).
    pub fn with_source(
        source: SettingsSource,
        settings: &Settings,
        handlers: Handlers,
        store: Store,
    ) -> Result<Self, ServerError> {
        let relay = handlers.relay.clone();
        let seen = fingerprint(&source, settings);
        let (admission, material) = build_admission(
            &settings.tls,
            &settings.allowlist,
            &settings.listen.trusted_proxies,
        )?;
        let receiver = &settings.receiver;
        let capability = capability_statement(
            &Describe {
                name: &receiver.name,
                publisher: receiver.publisher.as_deref(),
                software_name: &receiver.software_name,
                software_version: &receiver.software_version,
                base_url: receiver.base_url.as_deref(),
                messages: &settings.message_definitions,
                client: settings.sender.as_ref().map(|s| match s.auth {
                    SenderAuth::SignedJwt(_) => ClientAuth::SignedJwt,
                    SenderAuth::Sandbox => ClientAuth::Sandbox,
                }),
            },
            &handlers.registered(),
            &OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        );
        let metrics = Arc::new(Metrics::default());
        let tasks = TaskTracker::new();
        let app = router(
            handlers,
            store.clone(),
            HttpConfig {
                max_body: settings.http.max_body,
                deadline: settings.http.deadline,
                processing_limit: settings.http.processing_limit,
                base_path: settings.http.base_path.clone(),
                services: settings.receiver.services.clone(),
                ods_code: settings.receiver.ods_code.clone(),
                definitions: Definitions::bars(),
                rate_limit: settings.http.rate_limit,
                max_inflight_body: settings.http.max_inflight_body,
                requester_headers: settings.receiver.requester_headers,
                max_slot_range: settings.receiver.max_slot_range,
                message_definitions: settings.message_definitions.clone(),
                base_url: settings.receiver.base_url.clone(),
            },
            capability,
            metrics.clone(),
            tasks.clone(),
        );
        let holder = Arc::new(AdmissionHolder::new(admission));
        let frontend = Arc::new(Frontend {
            admission: holder.clone(),
            handshake_timeout: settings.listen.handshake_timeout,
            lifetime: net::Lifetime {
                max_age: settings.listen.max_connection_age,
                first_request: settings.listen.first_request_timeout,
                idle: settings.listen.idle_timeout,
            },
            max_header_bytes: settings.http.max_header_bytes,
            app,
            stats: metrics.clone(),
            log_limit: Default::default(),
        });
        let readiness = Arc::new(Readiness {
            serving: AtomicBool::new(false),
            admission: holder.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
        });
        let reloader = Arc::new(Reloader::new(source, seen, material.clone(), holder, metrics));
        startup_warnings(settings);
        if !settings.ignored_variables.is_empty() {
            // Names only: a service link's value is no secret, but another variable's may be.
            tracing::debug!(
                variables = %LogList::new(&settings.ignored_variables),
                "ignored BARS_ environment variables that are not settings (BARS_<SECTION>__<KEY>), such as Kubernetes service links"
            );
        }
        Ok(Self {
            frontend,
            listen: settings.listen.clone(),
            material,
            store,
            dedup_retention: settings.inbox.dedup_retention,
            reloader,
            watch_interval: settings.reload.watch_interval,
            readiness,
            tasks,
            relay,
        })
    }

    /// The metrics (connection counters included).
    pub fn stats(&self) -> Arc<Metrics> {
        self.frontend.stats.clone()
    }

    /// Reloads the TLS and admission material on demand (the binary calls it on SIGHUP).
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// Serves `listener` until `shutdown` resolves, then drains in-flight requests for up to
    /// the configured grace period.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        self.serve_with_admin(listener, None, shutdown).await;
    }

    /// Like [`Server::serve`], also serving `/healthz`, `/readyz` and `/metrics` on `admin`
    /// (plain HTTP) until the drain is over.
    pub async fn serve_with_admin(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) {
        let addr = listener.local_addr().ok();
        let admission = self.frontend.admission.current();
        if admission.allowlist.is_any_source_unsafe() {
            tracing::warn!(
                "allowlist.allow_any_source_unsafe = true: connections are accepted from ANY source address"
            );
        }
        // Ready, and the admin listener answering, from the moment the log says listening:
        // the listener is bound, so connections wait in its backlog until the accept loop
        // takes them.
        self.readiness.serving.store(true, Ordering::Release);
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        // Addresses as `IP:port` (an unknown one as empty, not `None`), lists as JSON arrays:
        // operators' log queries match these values.
        let address = addr.map(|a| a.to_string()).unwrap_or_default();
        let admin_address = admin
            .as_ref()
            .and_then(|a| a.local_addr().ok())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let admin_task = admin.map(|l| {
            tokio::spawn(serve_admin(l, self.readiness.clone(), async move {
                let _ = admin_stopped.await;
            }))
        });
        tracing::info!(
            address = %address,
            admin = %admin_address,
            server_cert = %self.material.server_cert.subject,
            server_cert_expires = %self.material.server_cert.not_after.format(&Rfc3339).unwrap_or_default(),
            client_cas = %LogList::new(self.material.client_cas.iter().map(|a| &a.subject)),
            crls = self.material.crls.len(),
            allowed_sources = %LogList::new(admission.allowlist.nets()),
            trusted_proxies = %LogList::new(admission.proxy.trusted()),
            "listening (mutual TLS)"
        );
        drop(admission);
        if self.material.crls.is_empty() {
            tracing::warn!("no CRLs configured (tls.crl): revoked client certificates are not detected");
        }
        let pruner = tokio::spawn(prune_dedup_records(self.store.clone(), self.dedup_retention));
        let watcher = tokio::spawn(self.reloader.clone().watch(self.watch_interval));
        if self.relay.is_none() {
            // Messages a relay accepted stay owed to the upstream whatever the kind is now.
            if let Ok(backlog) = self.store.delivery_backlog().await {
                if backlog.pending + backlog.dead > 0 {
                    tracing::warn!(
                        pending = backlog.pending,
                        dead = backlog.dead,
                        "the inbox holds relayed messages not yet delivered, but this server runs no relay handler: they will not be delivered until relay is configured again"
                    );
                }
            }
        }
        let worker = self.relay.map(|job| {
            RelayWorker::spawn(job.store, job.upstream, RelayPolicy::from_settings(&job.settings))
        });
        net::serve(
            listener,
            self.frontend,
            self.listen.max_connections,
            self.listen.shutdown_grace,
            &self.readiness.serving,
            &self.tasks,
            shutdown,
        )
        .await;
        pruner.abort();
        watcher.abort();
        if let Some(worker) = worker {
            worker.stop(self.listen.shutdown_grace).await;
        }
        let _ = stop_admin.send(());
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        tracing::info!("stopped");
    }
}
