//! The load generator of the side-by-side bench (`bench/run.sh`) and the soak run
//! (`bench/soak.sh`); not a test, nothing is asserted. It is a real mutual-TLS client
//! (rustls on aws-lc-rs, hyper) that talks to a server already running, from files on disk:
//!
//! ```text
//! loadgen keepalive URL CA CERT_CHAIN KEY CONNECTIONS SECONDS
//! loadgen durable URL CA CERT_CHAIN KEY BODY TARGET_B64 CONCURRENCY SECONDS h1|h2 [MAX]
//! loadgen soak URL CA CERT_CHAIN KEY BODY TARGET_B64 SECONDS FOREIGN_CERT FOREIGN_KEY REFUSED_SOURCE
//! ```
//!
//! `keepalive`: CONNECTIONS HTTP/1.1 keep-alive connections, each sending `GET` to URL (with
//! BaRS ids) one request after another for SECONDS. It prints requests per second, latency
//! p50 and p99 and the count of each status.
//!
//! `durable`: CONCURRENCY senders post BODY to URL (the `$process-message` endpoint), each
//! request with a fresh `X-Request-Id`, for SECONDS or MAX requests in all, whichever comes
//! first; over h1 each sender has its own keep-alive connection, over h2 they share one. It
//! prints one line: acknowledged (200) messages per second, latency p50 and p99, the count of
//! each status (0: a transport failure).
//!
//! `soak`: mixed load for SECONDS, each kind at a fixed pace: keep-alive `GET /metadata`,
//! a new connection per `GET /metadata`, durable posts, and refusals (a request with a bad
//! `X-Correlation-Id`, a retry of an acknowledged message, a handshake with a certificate of
//! a foreign CA, a connection from REFUSED_SOURCE, which the allowlist must refuse). It
//! prints one line of counts every 10 s and fails (exit 1) if any answer is not the one
//! expected.
//!
//! Run through `cargo bench --bench loadgen -- ARGS`, or build it with
//! `cargo bench --no-run --bench loadgen` and run the executable (as the scripts do).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpSocket, TcpStream};

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

fn main() {
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let code = match args.first().map(String::as_str) {
        Some("keepalive") if args.len() >= 7 => runtime.block_on(keepalive(&args[1..])),
        Some("durable") if args.len() >= 10 => runtime.block_on(durable(&args[1..])),
        Some("soak") if args.len() >= 11 => runtime.block_on(soak(&args[1..])),
        _ => {
            println!(
                "usage: loadgen keepalive URL CA CERT_CHAIN KEY CONNECTIONS SECONDS\n       \
                 loadgen durable URL CA CERT_CHAIN KEY BODY TARGET_B64 CONCURRENCY SECONDS h1|h2 [MAX]\n       \
                 loadgen soak URL CA CERT_CHAIN KEY BODY TARGET_B64 SECONDS FOREIGN_CERT FOREIGN_KEY REFUSED_SOURCE"
            );
            0
        }
    };
    std::process::exit(code);
}

/// Where to connect and how: address, path, TLS client configuration.
#[derive(Clone)]
struct Endpoint {
    addr: SocketAddr,
    path: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Endpoint {
    fn new(url: &str, ca: &str, cert: &str, key: &str, alpn: &[&str]) -> Self {
        let rest = url.strip_prefix("https://").expect("an https:// URL");
        let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr: SocketAddr = hostport.parse().expect("URL host is IP:port");
        Self {
            addr,
            path: if path.is_empty() { "/".into() } else { path.into() },
            tls: Arc::new(client_config(ca, cert, key, alpn)),
        }
    }

    fn with_path(&self, path: &str) -> Self {
        Self {
            path: path.into(),
            ..self.clone()
        }
    }

    fn with_alpn(&self, alpn: &[&str]) -> Self {
        let mut config = (*self.tls).clone();
        config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        Self {
            tls: Arc::new(config),
            ..self.clone()
        }
    }

    async fn connect(&self, local: Option<IpAddr>) -> std::io::Result<Tls> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = local {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let tcp = socket.connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
    }

    async fn h1(&self) -> std::io::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let io = TokioIo::new(self.connect(None).await?);
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(send)
    }

    async fn h2(&self) -> std::io::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
        let io = TokioIo::new(self.connect(None).await?);
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(send)
    }
}

fn client_config(ca: &str, cert: &str, key: &str, alpn: &[&str]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots
            .add(c.expect("CA certificate"))
            .expect("CA usable as a root");
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .expect("certificate file")
        .map(|c| c.expect("certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("key file");
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client certificate and key");
    config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    config
}

/// The headers of a BaRS request (no `NHSD-Target-Identifier` when `target` is empty);
/// `request_id` fresh unless a retry is meant.
fn request(
    method: &str,
    path: &str,
    target: &str,
    request_id: &str,
    correlation_id: &str,
    body: Bytes,
) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "localhost")
        .header("Accept", "application/fhir+json; version=1.4.0")
        .header("X-Request-Id", request_id)
        .header("X-Correlation-Id", correlation_id);
    if !target.is_empty() {
        b = b.header("NHSD-Target-Identifier", target);
    }
    if !body.is_empty() {
        b = b.header("Content-Type", "application/fhir+json");
    }
    b.body(Full::new(body)).unwrap()
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Latencies in microseconds and status counts, shared by the senders.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    codes: BTreeMap<u16, u64>,
}

impl Tally {
    fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

async fn status_of<B>(response: Result<http::Response<hyper::body::Incoming>, B>) -> u16 {
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.into_body().collect().await {
                Ok(_) => status,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    }
}

/// One sender's connection, h1 (its own) or h2 (shared).
enum Sender {
    H1(Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(&mut self, endpoint: &Endpoint, req: http::Request<Full<Bytes>>) -> u16 {
        match self {
            Self::H2(send) => status_of(send.send_request(req).await).await,
            Self::H1(slot) => {
                if slot.as_ref().is_none_or(|s| s.is_closed()) {
                    *slot = endpoint.h1().await.ok();
                }
                let Some(send) = slot.as_mut() else { return 0 };
                if send.ready().await.is_err() {
                    *slot = None;
                    return 0;
                }
                status_of(send.send_request(req).await).await
            }
        }
    }
}

async fn keepalive(a: &[String]) -> i32 {
    let (url, ca, cert, key) = (&a[0], &a[1], &a[2], &a[3]);
    let conns: usize = a[4].parse().expect("CONNECTIONS");
    let secs: f64 = a[5].parse().expect("SECONDS");
    let endpoint = Endpoint::new(url, ca, cert, key, &["http/1.1"]);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (endpoint, tally) = (endpoint.clone(), tally.clone());
            tokio::spawn(async move {
                let mut sender = Sender::H1(None);
                let mut local = Tally::default();
                while Instant::now() < end {
                    let req = request("GET", &endpoint.path, "", &uuid(), &uuid(), Bytes::new());
                    let t = Instant::now();
                    let code = sender.send(&endpoint, req).await;
                    local.latencies_us.push(t.elapsed().as_micros() as u64);
                    *local.codes.entry(code).or_default() += 1;
                }
                let mut tally = tally.lock().unwrap();
                tally.latencies_us.extend(local.latencies_us);
                for (code, n) in local.codes {
                    *tally.codes.entry(code).or_default() += n;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut tally = tally.lock().unwrap();
    let n: u64 = tally.codes.values().sum();
    println!(
        "requests_per_s={:.1} p50_ms={:.3} p99_ms={:.3} codes={:?} connections={conns}",
        n as f64 / elapsed,
        tally.quantile_ms(0.5),
        tally.quantile_ms(0.99),
        tally.codes,
    );
    0
}

async fn durable(a: &[String]) -> i32 {
    let (url, ca, cert, key, body, target) = (&a[0], &a[1], &a[2], &a[3], &a[4], a[5].clone());
    let conc: usize = a[6].parse().expect("CONCURRENCY");
    let secs: f64 = a[7].parse().expect("SECONDS");
    let h2 = a[8] == "h2";
    let max: u64 = a.get(9).map_or(u64::MAX, |m| m.parse().expect("MAX"));
    let endpoint = Endpoint::new(url, ca, cert, key, if h2 { &["h2"] } else { &["http/1.1"] });
    let body = Bytes::from(std::fs::read(body).expect("BODY file"));
    let shared = if h2 {
        Some(endpoint.h2().await.expect("h2 connection"))
    } else {
        None
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let mut sender = match &shared {
                Some(s) => Sender::H2(s.clone()),
                None => Sender::H1(None),
            };
            let (endpoint, body, target, tally, sent) = (
                endpoint.clone(),
                body.clone(),
                target.clone(),
                tally.clone(),
                sent.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < end && sent.fetch_add(1, Ordering::Relaxed) < max {
                    let req = request("POST", &endpoint.path, &target, &uuid(), &uuid(), body.clone());
                    let t = Instant::now();
                    let code = sender.send(&endpoint, req).await;
                    let us = t.elapsed().as_micros() as u64;
                    let mut tally = tally.lock().unwrap();
                    tally.latencies_us.push(us);
                    *tally.codes.entry(code).or_default() += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut tally = tally.lock().unwrap();
    let ok = tally.codes.get(&200).copied().unwrap_or(0);
    println!(
        "acked_per_s={:.1} p50_ms={:.2} p99_ms={:.2} codes={:?} conc={conc} proto={}",
        ok as f64 / elapsed,
        tally.quantile_ms(0.5),
        tally.quantile_ms(0.99),
        tally.codes,
        if h2 { "h2" } else { "h1" }
    );
    0
}

/// What the soak counts, by kind of work.
#[derive(Default)]
struct SoakCounts {
    keepalive: AtomicU64,
    newconn: AtomicU64,
    durable: AtomicU64,
    refused: AtomicU64,
    unexpected: AtomicU64,
}

impl SoakCounts {
    fn line(&self, at: Duration) -> String {
        format!(
            "t={:>4}s keepalive={} newconn={} durable={} refusals={} unexpected={}",
            at.as_secs(),
            self.keepalive.load(Ordering::Relaxed),
            self.newconn.load(Ordering::Relaxed),
            self.durable.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.unexpected.load(Ordering::Relaxed),
        )
    }

    fn expect(&self, what: &str, got: u16, want: u16, counter: &AtomicU64) {
        if got == want {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            eprintln!("soak: {what}: got {got}, expected {want}");
        }
    }
}

/// A fixed pace, until the soak stops.
struct Pace {
    tick: tokio::time::Interval,
    stop: Arc<AtomicBool>,
}

impl Pace {
    fn new(every: Duration, stop: &Arc<AtomicBool>) -> Self {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            tick,
            stop: stop.clone(),
        }
    }

    /// Waits for the next turn; false once the soak is over.
    async fn next(&mut self) -> bool {
        self.tick.tick().await;
        !self.stop.load(Ordering::Relaxed)
    }
}

async fn soak(a: &[String]) -> i32 {
    let (url, ca, cert, key, body, target) = (&a[0], &a[1], &a[2], &a[3], &a[4], a[5].clone());
    let secs: u64 = a[6].parse().expect("SECONDS");
    let (foreign_cert, foreign_key) = (&a[7], &a[8]);
    let refused_source: IpAddr = a[9].parse().expect("REFUSED_SOURCE");
    let post = Endpoint::new(url, ca, cert, key, &["h2"]);
    let meta = post.with_path("/metadata").with_alpn(&["http/1.1"]);
    let foreign = Endpoint::new(url, ca, foreign_cert, foreign_key, &["http/1.1"]).with_path("/metadata");
    let body = Bytes::from(std::fs::read(body).expect("BODY file"));
    let counts = Arc::new(SoakCounts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let get = |e: &Endpoint, target: &str| request("GET", &e.path, target, &uuid(), &uuid(), Bytes::new());

    // Keep-alive: 4 connections, each 100 requests a second.
    for _ in 0..4 {
        let (meta, target, counts) = (meta.clone(), target.clone(), counts.clone());
        let mut pace = Pace::new(Duration::from_millis(10), &stop);
        tasks.push(tokio::spawn(async move {
            let mut sender = Sender::H1(None);
            while pace.next().await {
                let code = sender.send(&meta, get(&meta, &target)).await;
                counts.expect("keep-alive GET /metadata", code, 200, &counts.keepalive);
            }
        }));
    }
    // New connections: 20 a second, one request each.
    {
        let (meta, target, counts) = (meta.clone(), target.clone(), counts.clone());
        let mut pace = Pace::new(Duration::from_millis(50), &stop);
        tasks.push(tokio::spawn(async move {
            while pace.next().await {
                let code = Sender::H1(None).send(&meta, get(&meta, &target)).await;
                counts.expect("new-connection GET /metadata", code, 200, &counts.newconn);
            }
        }));
    }
    // Durable posts: 8 senders on one h2 connection, each 25 a second; every 50th message is
    // sent twice (the retry must get 409) and every 50th carries a bad X-Correlation-Id (400).
    let shared = post.h2().await.expect("h2 connection");
    for _ in 0..8 {
        let (post, body, target, counts) = (post.clone(), body.clone(), target.clone(), counts.clone());
        let mut sender = Sender::H2(shared.clone());
        let mut pace = Pace::new(Duration::from_millis(40), &stop);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while pace.next().await {
                n += 1;
                let id = uuid();
                let req = request("POST", &post.path, &target, &id, &uuid(), body.clone());
                let code = sender.send(&post, req).await;
                counts.expect("durable POST", code, 200, &counts.durable);
                if n.is_multiple_of(50) {
                    let retry = request("POST", &post.path, &target, &id, &uuid(), body.clone());
                    let code = sender.send(&post, retry).await;
                    counts.expect("retry of an acknowledged message", code, 409, &counts.refused);
                }
                if n % 50 == 25 {
                    let bad = request("POST", &post.path, &target, &uuid(), "not-a-uuid", body.clone());
                    let code = sender.send(&post, bad).await;
                    counts.expect("bad X-Correlation-Id", code, 400, &counts.refused);
                }
            }
        }));
    }
    // Refused connections, each twice a second: a foreign CA's certificate, and a source off
    // the allowlist. Neither may ever get an HTTP answer.
    {
        let (foreign, target, counts) = (foreign.clone(), target.clone(), counts.clone());
        let mut pace = Pace::new(Duration::from_millis(500), &stop);
        tasks.push(tokio::spawn(async move {
            while pace.next().await {
                let code = Sender::H1(None).send(&foreign, get(&foreign, &target)).await;
                counts.expect("foreign CA handshake", code, 0, &counts.refused);
            }
        }));
    }
    {
        let (meta, counts) = (meta.clone(), counts.clone());
        let mut pace = Pace::new(Duration::from_millis(500), &stop);
        tasks.push(tokio::spawn(async move {
            while pace.next().await {
                let code = match meta.connect(Some(refused_source)).await {
                    Ok(_) => 1,
                    Err(_) => 0,
                };
                counts.expect("source off the allowlist", code, 0, &counts.refused);
            }
        }));
    }

    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        let next = (Instant::now() + Duration::from_secs(10)).min(end);
        tokio::time::sleep_until(next.into()).await;
        println!("{}", counts.line(start.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    println!("{}", counts.line(start.elapsed()));
    i32::from(counts.unexpected.load(Ordering::Relaxed) > 0)
}
