//! Test harness: a PKI generated per run (rcgen), the real server on loopback, and real TLS
//! clients (rustls + hyper) that can bind a chosen loopback source address.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod apim;
#[cfg(feature = "dev-tools")]
pub mod devproxy;
pub mod pki;
pub mod postgres;
pub mod raw;
pub mod senders;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bars_receiver::{Handlers, Server, Settings, Store, admin::Metrics, default_handlers};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Runs `work` to its end on a runtime of its own in another thread, from sync or async code
/// alike (for the store's reads in assertions).
pub fn blocking<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work)
    })
    .join()
    .expect("the blocking work panicked")
}

pub use pki::{Leaf, TestPki};

/// The `bars-receiver` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_bars-receiver");

/// What a finished command wrote, standard output then standard error, for assertions.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The binary, run in `dir`, with no `RUST_LOG` or `BARS_` variable inherited from the
/// environment the tests run in.
pub fn bin(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BARS_")) {
        cmd.env_remove(k);
    }
    cmd
}

/// The vendored NHS fixtures (`tests/fixtures/nhs/`, see its `SOURCES.md`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nhs")
}

/// Options for a test server.
#[derive(Clone)]
pub struct ServerOptions {
    /// `[allowlist] sources`; `None` = the dev preset (loopback).
    pub sources: Option<Vec<String>>,
    pub allowed_client_names: Vec<String>,
    pub handshake_timeout: &'static str,
    pub max_connections: u32,
    pub deadline: &'static str,
    pub max_body: &'static str,
    pub services: Vec<String>,
    pub extra_toml: String,
    /// Extra lines in `[listen]`, `[tls]` and `[http]`.
    pub listen_extra: String,
    pub tls_extra: String,
    pub http_extra: String,
    /// Extra lines in `[receiver]`.
    pub receiver_extra: String,
    /// Serve the admin endpoints on an ephemeral port.
    pub admin: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            sources: None,
            allowed_client_names: Vec::new(),
            handshake_timeout: "10s",
            max_connections: 10_000,
            deadline: "5s",
            max_body: "10MiB",
            services: Vec::new(),
            extra_toml: String::new(),
            listen_extra: String::new(),
            tls_extra: String::new(),
            http_extra: String::new(),
            receiver_extra: String::new(),
            admin: false,
        }
    }
}

/// A running server on 127.0.0.1 with its own PKI and inbox.
pub struct TestServer {
    pub addr: SocketAddr,
    pub pki: Arc<TestPki>,
    pub stats: Arc<Metrics>,
    pub inbox_path: PathBuf,
    pub dir: tempfile::TempDir,
    pub files: pki::ServerFiles,
    pub reloader: Arc<bars_receiver::reload::Reloader>,
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Traffic that gives every metric family a series: a refused handshake (no client
    /// certificate), an accepted message and an unknown path.
    pub async fn exercise_metric_families(&self) {
        let _ = self.client_with(None).handshake(self.addr, None).await;
        let ok = self
            .client()
            .send(self.addr, Bars::default().message(minimal_message().to_string()))
            .await;
        assert_eq!(ok.status, 200, "{:?}", ok.body);
        let missing = self
            .client()
            .send(self.addr, Bars::default().get("/Nowhere"))
            .await;
        assert_eq!(missing.status, 404);
    }

    pub async fn start(options: ServerOptions) -> Self {
        Self::start_with(options, default_handlers).await
    }

    /// A server whose handlers are the ones its configuration names (`[handler] kind`, set
    /// with `extra_toml`), as `serve` builds them.
    pub async fn start_configured(options: ServerOptions) -> Self {
        let pki = Arc::new(TestPki::new());
        Self::start_configured_with_pki(pki, options).await
    }

    pub async fn start_configured_with_pki(pki: Arc<TestPki>, options: ServerOptions) -> Self {
        Self::start_inner(pki, options, None).await
    }

    pub async fn start_with(options: ServerOptions, handlers: impl FnOnce(Store) -> Handlers) -> Self {
        let pki = Arc::new(TestPki::new());
        Self::start_with_pki(pki, options, handlers).await
    }

    pub async fn start_with_pki(
        pki: Arc<TestPki>,
        options: ServerOptions,
        handlers: impl FnOnce(Store) -> Handlers,
    ) -> Self {
        Self::start_inner(pki, options, Some(Box::new(handlers))).await
    }

    async fn start_inner(
        pki: Arc<TestPki>,
        options: ServerOptions,
        handlers: Option<Box<dyn FnOnce(Store) -> Handlers + '_>>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = pki.write_server_files(dir.path());
        let settings = settings_for(&files, dir.path(), &options);
        // `[store]` in `extra_toml` may name a PostgreSQL database; the SQLite file otherwise.
        let store = Store::connect(&settings.store).await.expect("open store");
        let handlers = match handlers {
            Some(handlers) => handlers(store.clone()),
            None => {
                bars_receiver::configured_handlers(&settings, store.clone()).expect("configured handlers")
            }
        };
        let server = Server::new(&settings, handlers, store).expect("server");
        let stats = server.stats();
        let reloader = server.reloader();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let admin_listener = match options.admin {
            true => Some(
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind admin"),
            ),
            false => None,
        };
        let admin = admin_listener
            .as_ref()
            .map(|l| l.local_addr().expect("admin addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve_with_admin(listener, admin_listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            pki,
            stats,
            inbox_path: settings.inbox.path.clone(),
            dir,
            files,
            reloader,
            admin,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Signals shutdown without waiting for the drain.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops accepting and waits for the drain to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// A client with the good client certificate.
    pub fn client(&self) -> TestClient {
        TestClient::new(&self.pki, Some(&self.pki.client))
    }

    pub fn client_with(&self, leaf: Option<&Leaf>) -> TestClient {
        TestClient::new(&self.pki, leaf)
    }

    pub fn inbox_count(&self) -> u64 {
        let store = Store::open_read_only(&self.inbox_path).expect("inbox");
        blocking(async move { store.count().await }).expect("count")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn settings_for(files: &pki::ServerFiles, dir: &Path, o: &ServerOptions) -> Settings {
    let q = |p: &Path| toml_str(&p.display().to_string());
    let list = |items: &[String]| {
        format!(
            "[{}]",
            items.iter().map(|s| toml_str(s)).collect::<Vec<_>>().join(", ")
        )
    };
    let sources = o
        .sources
        .as_ref()
        .map(|s| format!("sources = {}", list(s)))
        .unwrap_or_default();
    let text = format!(
        r#"
environment = "dev"
[listen]
address = "127.0.0.1:0"
handshake_timeout = "{ht}"
max_connections = {max_connections}
shutdown_grace = "5s"
{listen_extra}
[tls]
cert_chain = {chain}
private_key = {key}
client_ca = [{root}, {subca}]
allowed_client_names = {names}
{tls_extra}
[allowlist]
{sources}
[http]
deadline = "{deadline}"
max_body = "{max_body}"
{http_extra}
[receiver]
services = {services}
{receiver_extra}
[inbox]
path = {inbox}
[log]
format = "json"
{extra}
"#,
        ht = o.handshake_timeout,
        max_connections = o.max_connections,
        chain = q(&files.chain),
        key = q(&files.key),
        root = q(&files.root),
        subca = q(&files.subca),
        names = list(&o.allowed_client_names),
        deadline = o.deadline,
        max_body = o.max_body,
        services = list(&o.services),
        inbox = q(&dir.join("data/inbox.db")),
        extra = o.extra_toml,
        listen_extra = o.listen_extra,
        tls_extra = o.tls_extra,
        http_extra = o.http_extra,
        receiver_extra = o.receiver_extra,
    );
    let no_env: Vec<(String, String)> = Vec::new();
    Settings::from_toml(&text, "test", no_env).expect("test settings")
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// How a TLS connection attempt ended.
#[derive(Debug)]
pub enum Handshake {
    /// Admitted: the HTTP status of `GET /metadata`.
    Admitted(u16),
    /// Refused with a TLS alert (its rustls name, e.g. "UnknownCA").
    Alert(String),
    /// Closed without an alert (reset, EOF, timeout).
    Closed(String),
}

/// A real TLS client.
pub struct TestClient {
    config: Arc<rustls::ClientConfig>,
}

impl TestClient {
    pub fn new(pki: &TestPki, leaf: Option<&Leaf>) -> Self {
        Self::with_versions(
            pki,
            leaf,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            &["h2", "http/1.1"],
        )
    }

    pub fn with_versions(
        pki: &TestPki,
        leaf: Option<&Leaf>,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&str],
    ) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.root.der.clone()).expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
        let mut config = match leaf {
            Some(leaf) => builder
                .with_client_auth_cert(leaf.chain.clone(), leaf.key_der())
                .expect("client cert"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        Self {
            config: Arc::new(config),
        }
    }

    pub async fn tcp(addr: SocketAddr, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = local {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(addr).await
    }

    pub async fn tls(
        &self,
        addr: SocketAddr,
        local: Option<IpAddr>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = Self::tcp(addr, local).await?;
        self.tls_over(tcp).await
    }

    /// TLS over a connection already open (e.g. after a PROXY header).
    pub async fn tls_over(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        connect(self.config.clone(), tcp).await
    }

    /// As [`Self::tls_over`], offering only HTTP/1.1 in ALPN (whatever this client offers
    /// otherwise), for a caller that writes HTTP/1.1 itself.
    pub async fn tls_over_http1(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        connect(Arc::new(config), tcp).await
    }

    /// The subject CN of the certificate the server presents to a new connection.
    pub async fn server_cn(&self, addr: SocketAddr) -> String {
        let tls = self.tls(addr, None).await.expect("tls connect");
        let cert = tls.get_ref().1.peer_certificates().expect("server certificate")[0].clone();
        bars_receiver::tls::CertInfo::parse(&cert)
            .expect("parse")
            .common_name
            .unwrap_or_default()
    }

    /// Connects (from `local`, if given) and asks for `/metadata` over HTTP/1.1, reporting
    /// how the handshake ended. TLS 1.3 client-certificate refusals arrive as an alert on the
    /// first read, so the request is needed to see them.
    pub async fn handshake(&self, addr: SocketAddr, local: Option<IpAddr>) -> Handshake {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Only HTTP/1.1 offered: the request below is HTTP/1.1, and the receiver speaks the
        // protocol ALPN settles.
        let connected = match Self::tcp(addr, local).await {
            Ok(tcp) => self.tls_over_http1(tcp).await,
            Err(e) => Err(e),
        };
        let mut tls = match connected {
            Ok(tls) => tls,
            Err(e) => return classify(&e),
        };
        let request = b"GET /metadata HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if let Err(e) = tls.write_all(request).await {
            return classify(&e);
        }
        let mut buf = Vec::new();
        match tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await {
            Err(_) => Handshake::Closed("timeout".into()),
            Ok(Err(e)) if buf.is_empty() => classify(&e),
            Ok(_) if buf.is_empty() => Handshake::Closed("eof".into()),
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let status = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                Handshake::Admitted(status)
            }
        }
    }

    /// An h2 connection to send many requests over (the caller must offer h2).
    pub async fn h2(&self, addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
        let tls = self.tls(addr, None).await.expect("tls connect");
        let (send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        send
    }

    /// Sends one request over a fresh connection (h2 or HTTP/1.1, as ALPN settles).
    pub async fn send<B>(&self, addr: SocketAddr, request: http::Request<B>) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tls = self.tls(addr, None).await.expect("tls connect");
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let response = if h2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
            tokio::spawn(conn);
            send.send_request(request).await.expect("h2 request")
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("h1 handshake");
            tokio::spawn(conn);
            send.send_request(request).await.expect("h1 request")
        };
        Reply::read(response).await
    }
}

async fn connect(
    config: Arc<rustls::ClientConfig>,
    tcp: TcpStream,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
}

fn classify(e: &std::io::Error) -> Handshake {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => Handshake::Alert(format!("{alert:?}")),
        Some(other) => Handshake::Closed(format!("{other:?}")),
        None => Handshake::Closed(format!("{:?}", e.kind())),
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub async fn read(response: http::Response<hyper::body::Incoming>) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a one-issue OperationOutcome with this status, REC_ code and issue type.
    #[track_caller]
    pub fn assert_outcome(&self, status: u16, code: &str, issue: &str) {
        assert_eq!(
            self.status,
            status,
            "status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
        let issues = body["issue"].as_array().expect("issue array");
        assert_eq!(issues.len(), 1, "{body}");
        assert_eq!(issues[0]["severity"], "error");
        assert_eq!(issues[0]["code"], issue, "{body}");
        let coding = &issues[0]["details"]["coding"][0];
        assert_eq!(
            coding["system"],
            "https://fhir.nhs.uk/Codesystem/http-error-codes"
        );
        assert_eq!(coding["code"], code, "{body}");
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/fhir+json")),
            "content-type {:?}",
            self.header("content-type")
        );
    }
}

/// The BaRS headers of a well-formed request, with fresh ids.
pub struct Bars {
    pub request_id: String,
    pub correlation_id: String,
    pub target: Value,
}

impl Default for Bars {
    fn default() -> Self {
        Self {
            request_id: Uuid::new_v4().to_string(),
            correlation_id: Uuid::new_v4().to_string(),
            target: json!({"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "111111111"}),
        }
    }
}

impl Bars {
    /// A request builder with every BaRS header set.
    pub fn request(&self, method: &str, path: &str) -> http::request::Builder {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("x-request-id", &self.request_id)
            .header("x-correlation-id", &self.correlation_id)
            .header("nhsd-target-identifier", bars_receiver::fhir::encode_header_json(&self.target))
            .header(
                "nhsd-end-user-organisation",
                bars_receiver::fhir::encode_header_json(&json!({
                    "resourceType": "Organization",
                    "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A1001"}],
                    "name": "Test sender"
                })),
            )
            .header(
                "nhsd-requesting-software",
                bars_receiver::fhir::encode_header_json(&json!({
                    "resourceType": "Device",
                    "deviceName": [{"name": "tests", "type": "manufacturer-name"}],
                    "version": [{"value": "1"}]
                })),
            )
            .header("accept", "application/fhir+json; version=1.4.0")
    }

    /// `POST /$process-message` with `body`.
    pub fn message(&self, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
        self.request("POST", "/$process-message")
            .header("content-type", "application/fhir+json")
            .body(Full::new(body.into()))
            .expect("request")
    }

    pub fn get(&self, path: &str) -> http::Request<Full<Bytes>> {
        self.request("GET", path)
            .body(Full::new(Bytes::new()))
            .expect("request")
    }
}

/// A minimal valid booking (`booking-request` following `bars-message-booking-request`):
/// [`minimal_message`] with an Appointment at entry 1 and the Slot and Schedule it books.
pub fn minimal_booking() -> Value {
    let mut m = minimal_message();
    let header = &mut m["entry"][0]["resource"];
    header["eventCoding"]["code"] = json!("booking-request");
    header["definition"] = json!("https://fhir.nhs.uk/MessageDefinition/bars-message-booking-request");
    let (slot, schedule) = (
        "urn:uuid:cccccccc-cccc-4ccc-8ccc-cccccccccccc",
        "urn:uuid:dddddddd-dddd-4ddd-8ddd-dddddddddddd",
    );
    m["entry"][1]["resource"] = json!({
        "resourceType": "Appointment", "status": "booked",
        "slot": [{"reference": slot}],
        "participant": [{"actor": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9912003888"}}, "status": "accepted"}]
    });
    let entries = m["entry"].as_array_mut().expect("entries");
    entries.push(
        json!({"fullUrl": slot, "resource": {"resourceType": "Slot", "status": "busy",
        "schedule": {"reference": schedule},
        "start": "2026-01-02T09:00:00+00:00", "end": "2026-01-02T09:10:00+00:00"}}),
    );
    entries.push(
        json!({"fullUrl": schedule, "resource": {"resourceType": "Schedule",
        "actor": [{"reference": "urn:uuid:bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"}]}}),
    );
    m
}

/// The ODS code of the receiving organisation in [`minimal_message`].
pub const RECEIVER_ODS: &str = "R1001";

/// A minimal valid BaRS message bundle: a referral (`servicerequest-request`, reason `new`)
/// following `bars-message-servicerequest-request-referral`, with each focus resource the
/// MessageDefinition requires, once (Organization twice). Entry 1 is the ServiceRequest.
pub fn minimal_message() -> Value {
    let url = |n: u32| {
        format!(
            "urn:uuid:{n}{n}{n}{n}{n}{n}{n}{n}-{n}{n}{n}{n}-4{n}{n}{n}-8{n}{n}{n}-{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}"
        )
    };
    let ods = |code: &str| json!([{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": code}]);
    json!({
        "resourceType": "Bundle", "id": Uuid::new_v4().to_string(), "type": "message",
        "meta": {"versionId": "1.4.0", "profile": ["https://fhir.nhs.uk/StructureDefinition/BARSBundleMessage"]},
        "timestamp": "2026-01-01T00:00:00+00:00",
        "entry": [
            {"fullUrl": url(1), "resource": {
                "resourceType": "MessageHeader",
                "eventCoding": {"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": "servicerequest-request"},
                "reason": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/message-reason-bars", "code": "new"}]},
                "focus": [{"reference": url(2)}],
                "destination": [{"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|111111111", "receiver": {"reference": url(4)}}],
                "sender": {"reference": url(5)},
                "source": {"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|222222222"},
                "definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral"
            }},
            {"fullUrl": url(2), "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "plan",
                "category": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/usecases-categories-bars", "code": "referral"}]}],
                "subject": {"reference": url(3)}, "authoredOn": "2026-01-01T00:00:00+00:00"}},
            {"fullUrl": url(3), "resource": {"resourceType": "Patient",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9999999999"}]}},
            {"fullUrl": url(4), "resource": {"resourceType": "Organization", "identifier": ods(RECEIVER_ODS)}},
            {"fullUrl": url(5), "resource": {"resourceType": "Organization", "identifier": ods("A1001")}},
            {"fullUrl": url(6), "resource": {"resourceType": "Encounter", "status": "triaged",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
                "subject": {"reference": url(3)}}},
            {"fullUrl": url(7), "resource": {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                "subject": {"reference": url(3)}}},
            {"fullUrl": url(8), "resource": {"resourceType": "Practitioner"}},
            {"fullUrl": url(9), "resource": {"resourceType": "PractitionerRole", "practitioner": {"reference": url(8)}}},
            {"fullUrl": "urn:uuid:aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "resource": {"resourceType": "Consent", "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]}},
            {"fullUrl": "urn:uuid:bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "resource": {"resourceType": "HealthcareService"}}
        ]
    })
}
