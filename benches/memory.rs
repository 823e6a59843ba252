//! Memory figures (not a test: nothing is asserted). Run with `cargo bench --bench memory`.
//!
//! Starts the real binary (`bars-receiver serve`, inbox handler) with a PKI generated here,
//! posts one and then eight concurrent valid 9 MB `$process-message` bundles over mutual TLS,
//! and samples the server process's resident memory (`/proc/<pid>/status`: `VmRSS` every few
//! milliseconds, and `VmHWM`, reset between phases through `/proc/<pid>/clear_refs`). It
//! prints, for each phase, the peak and the resident memory a little after the peak, and the
//! ratio of the growth over the idle baseline to the bytes in flight. Only the server is
//! measured: the client runs in this process.
//!
//! Bounded in count; figures vary with the machine and the allocator's state, so compare
//! runs on the same machine only.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Bars, Reply, TestClient, TestPki, bin};
use serde_json::{Value, json};
use uuid::Uuid;

/// The size of each bundle posted.
const BUNDLE_BYTES: usize = 9 * 1000 * 1000;
/// When, after the peak, the server's resident memory is read again (it is left idle).
const LATER: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(12)];
const MIB: f64 = 1024.0 * 1024.0;

/// A valid referral whose size comes from what real ones carry: many clinical entries
/// (observations with codings, decimals and references) after the MessageHeader, the
/// ServiceRequest and the Patient.
fn bundle(target_bytes: usize) -> String {
    let mut message = common::minimal_message();
    let entries = message["entry"].as_array_mut().unwrap();
    entries.push(json!({
        "fullUrl": "urn:uuid:33333333-3333-4333-8333-333333333333",
        "resource": {"resourceType": "Patient", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000000"}]}
    }));
    let observation = |i: usize| -> Value {
        let id = Uuid::new_v4();
        json!({
            "fullUrl": format!("urn:uuid:{id}"),
            "resource": {
                "resourceType": "Observation",
                "id": id.to_string(),
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "364075005", "display": "Heart rate"}], "text": format!("Heart rate reading {i}")},
                "subject": {"reference": "urn:uuid:33333333-3333-4333-8333-333333333333"},
                "effectiveDateTime": "2026-01-01T09:30:00+00:00",
                "valueQuantity": {"value": 72.50, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
                "note": [{"text": "Taken at rest, seated, after five minutes."}]
            }
        })
    };
    let one = observation(0).to_string().len() + 1;
    let base = message.to_string().len();
    let entries = message["entry"].as_array_mut().unwrap();
    for i in 0..(target_bytes.saturating_sub(base) / one) {
        entries.push(observation(i));
    }
    message.to_string()
}

struct Server {
    child: Child,
    addr: SocketAddr,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(pki: &TestPki) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = pki.write_server_files(dir.path());
        let q = |p: &std::path::Path| format!("{:?}", p.display().to_string());
        let config = format!(
            r#"
environment = "dev"
[listen]
address = "127.0.0.1:0"
[tls]
cert_chain = {chain}
private_key = {key}
client_ca = [{root}, {subca}]
[http]
deadline = "30s"
max_body = "10MiB"
[inbox]
path = {inbox}
[admin]
enabled = false
[log]
format = "json"
"#,
            chain = q(&files.chain),
            key = q(&files.key),
            root = q(&files.root),
            subca = q(&files.subca),
            inbox = q(&dir.path().join("data/inbox.db")),
        );
        std::fs::write(dir.path().join("receiver.toml"), config).unwrap();
        let mut child = bin(dir.path())
            .args(["serve", "--config", "receiver.toml"])
            .env("RUST_LOG", "warn,bars_receiver=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bars-receiver serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening (mutual TLS)") {
                    let v: Value = serde_json::from_str(&line).unwrap();
                    let address = v["address"].as_str().unwrap().to_owned();
                    let _ = tx.send(address);
                }
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server says where it listens");
        let address = address.trim_start_matches("Some(").trim_end_matches(')');
        Self {
            pid: child.id(),
            child,
            addr: address.parse().unwrap(),
            _dir: dir,
        }
    }

    fn rss(&self) -> u64 {
        vm_bytes(self.pid, "VmRSS:")
    }

    fn hwm(&self) -> u64 {
        vm_bytes(self.pid, "VmHWM:")
    }

    /// Resets VmHWM to the current RSS.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples VmRSS until stopped, keeping the highest reading.
fn sampler(server: &Server) -> (Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let pid = server.pid;
    let (s, p) = (stop.clone(), peak.clone());
    let handle = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            p.fetch_max(vm_bytes(pid, "VmRSS:"), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    (stop, peak, handle)
}

/// A `/proc/<pid>/status` memory field, in bytes (0 once the process is gone).
fn vm_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

async fn post_all(client: &Arc<TestClient>, addr: SocketAddr, body: &bytes::Bytes, n: usize) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let reply: Reply = client.send(addr, Bars::default().message(body)).await;
                assert_eq!(
                    reply.status,
                    200,
                    "{}",
                    String::from_utf8_lossy(&reply.body[..200.min(reply.body.len())])
                );
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

async fn phase(server: &Server, client: &Arc<TestClient>, body: &bytes::Bytes, n: usize, baseline: u64) {
    server.reset_peak();
    let (stop, peak, handle) = sampler(server);
    let took = post_all(client, server.addr, body, n).await;
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    let peak = peak.load(Ordering::Relaxed).max(server.hwm());
    let mut later = Vec::new();
    let mut waited = Duration::ZERO;
    for at in LATER {
        tokio::time::sleep(at - waited).await;
        waited = at;
        later.push(format!("{at:.0?} later {:.1} MiB", server.rss() as f64 / MIB));
    }
    let in_flight = (n * body.len()) as u64;
    println!(
        "{n} x {:.1} MiB ({:.1} MiB in flight, {:.2} s): peak RSS {:.1} MiB (+{:.1} MiB over idle: {:.2}x the bytes in flight; {:.2}x counting the idle baseline); {}",
        body.len() as f64 / MIB,
        in_flight as f64 / MIB,
        took.as_secs_f64(),
        peak as f64 / MIB,
        peak.saturating_sub(baseline) as f64 / MIB,
        peak.saturating_sub(baseline) as f64 / in_flight as f64,
        peak as f64 / in_flight as f64,
        later.join(", "),
    );
}

#[tokio::main]
async fn main() {
    let pki = TestPki::new();
    let server = Server::start(&pki);
    let client = Arc::new(TestClient::new(&pki, Some(&pki.client)));
    let body = bytes::Bytes::from(bundle(BUNDLE_BYTES));

    // One small message first, so that the baseline includes a warm connection path and an
    // open store.
    let small = bytes::Bytes::from(common::minimal_message().to_string());
    post_all(&client, server.addr, &small, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.rss();
    println!(
        "idle RSS after one small message: {:.1} MiB",
        baseline as f64 / MIB
    );

    phase(&server, &client, &body, 1, baseline).await;
    phase(&server, &client, &body, 8, baseline).await;
    phase(&server, &client, &body, 8, baseline).await;
}
