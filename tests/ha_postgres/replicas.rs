//! The real `bars-receiver` binary as one replica among several: one PKI for all of them (a
//! client certificate every replica admits), a configuration file per store, `serve --config`
//! on ephemeral ports read from its "listening" log line, and a client that reports a refused
//! or cut connection as an error instead of panicking (replicas are killed mid-request here).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::common::pki::ServerFiles;
use crate::common::{Bars, Reply, TestClient, TestPki, bin};

/// How long a replica may take to start or stop, and a request to be answered.
pub(super) const PATIENCE: Duration = Duration::from_secs(60);

/// `[store]` for PostgreSQL at `url`, plaintext (the machine's server, or a private one
/// without TLS), with a pool small enough for three replicas and the other tests at once;
/// each `key = value` line of `extra` adds a key or replaces a default.
pub(super) fn postgres_store(url: &str, extra: &str) -> String {
    let mut keys: Vec<(String, String)> = [
        ("kind", "\"postgres\"".to_owned()),
        ("url", format!("\"{url}\"")),
        ("tls", "\"insecure-disabled\"".to_owned()),
        ("pool_size", "8".to_owned()),
        ("connect_timeout", "\"2s\"".to_owned()),
        ("statement_timeout", "\"5s\"".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once('=').expect("key = value");
        let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
        match keys.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => keys.push((key, value)),
        }
    }
    let lines: Vec<String> = keys.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("[store]\n{}\n", lines.join("\n"))
}

/// The PKI, its files and configurations of one test's replicas.
pub(super) struct Cluster {
    pub(super) pki: TestPki,
    pub(super) dir: tempfile::TempDir,
    files: ServerFiles,
    client: TestClient,
}

impl Cluster {
    pub(super) fn new() -> Self {
        let pki = TestPki::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let files = pki.write_server_files(dir.path());
        // HTTP/1.1, a connection per request: a killed replica fails only what it held.
        let client = TestClient::with_versions(
            &pki,
            Some(&pki.client),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            &["http/1.1"],
        );
        Self {
            pki,
            dir,
            files,
            client,
        }
    }

    /// Writes `<name>.toml`: a receiver on 127.0.0.1:0 (admin on 127.0.0.1:0, JSON logs)
    /// with the sections in `sections` (`[store]`, `[handler]`, `[upstream]`, `[inbox]`...).
    pub(super) fn config(&self, name: &str, sections: &str) -> PathBuf {
        let q = |p: &Path| format!("\"{}\"", p.display());
        let text = format!(
            r#"environment = "dev"
[listen]
address = "127.0.0.1:0"
shutdown_grace = "5s"
[tls]
cert_chain = {chain}
private_key = {key}
client_ca = [{root}, {subca}]
[http]
deadline = "10s"
[admin]
address = "127.0.0.1:0"
[log]
format = "json"
{sections}
"#,
            chain = q(&self.files.chain),
            key = q(&self.files.key),
            root = q(&self.files.root),
            subca = q(&self.files.subca),
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// `serve --config <config>` in a working directory of its own, once it listens.
    pub(super) fn start(&self, config: &Path) -> Replica {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = bin(dir.path())
            .args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bars-receiver serve");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for stream in streams {
            let (sink, tx) = (logs.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("listening (mutual TLS)") {
                        let _ = tx.send(line.clone());
                    }
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + PATIENCE;
        let line = loop {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                break line;
            }
            if let Some(status) = child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "bars-receiver exited ({status}) before listening:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "bars-receiver not listening after {PATIENCE:?}:\n{}",
                logs.lock().unwrap().join("\n")
            );
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let addr = |field: &str| -> SocketAddr {
            let text = v[field].as_str().unwrap_or_default();
            text.trim_start_matches("Some(")
                .trim_end_matches(')')
                .parse()
                .unwrap_or_else(|e| panic!("{field} in {line}: {e}"))
        };
        Replica {
            addr: addr("address"),
            admin: addr("admin"),
            child,
            logs,
            _dir: dir,
        }
    }

    /// `serve --config <config>` that must exit before listening: its exit code and output.
    pub(super) fn refused_start(&self, config: &Path) -> (Option<i32>, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = bin(dir.path())
            .args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bars-receiver serve");
        let mut readers = Vec::new();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut stream in streams {
            readers.push(std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                text
            }));
        }
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("bars-receiver still running after {PATIENCE:?}: it did not refuse to start");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let text: String = readers
            .into_iter()
            .map(|r| r.join().unwrap_or_default())
            .collect();
        assert!(
            !text.contains("listening (mutual TLS)"),
            "it started serving: {text}"
        );
        (status.code(), text)
    }

    /// Sends over a fresh HTTP/1.1 connection; a refused or cut connection is an `Err`.
    pub(super) async fn send(
        &self,
        addr: SocketAddr,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Reply, String> {
        let exchange = async {
            let tls = self
                .client
                .tls(addr, None)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("handshake {addr}: {e}"))?;
            tokio::spawn(conn);
            let response = send
                .send_request(request)
                .await
                .map_err(|e| format!("request to {addr}: {e}"))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body from {addr}: {e}"))?
                .to_bytes();
            Ok(Reply {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .map_err(|_| format!("no answer from {addr} within {PATIENCE:?}"))?
    }

    /// Sends a fresh minimal message with `bars`' ids.
    pub(super) async fn send_message(
        &self,
        addr: SocketAddr,
        bars: &Bars,
        body: &str,
    ) -> Result<Reply, String> {
        self.send(addr, bars.message(body.to_owned())).await
    }

    /// The binary with `args` (an `inbox` command, say): exit code, stdout, stderr.
    pub(super) fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = bin(self.dir.path())
            .args(args)
            .output()
            .expect("run bars-receiver");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `inbox <source> export`: every stored message, oldest first (`source` is
    /// `["--config", file]` or `["--db", file]`).
    pub(super) fn export(&self, source: &[&str]) -> Vec<Value> {
        self.json_lines(source, &["export"])
    }

    /// `inbox --config <config> export`.
    pub(super) fn export_config(&self, config: &Path) -> Vec<Value> {
        self.export(&["--config", &config.display().to_string()])
    }

    /// `inbox --config <config> list --json`.
    pub(super) fn list_config(&self, config: &Path) -> Vec<Value> {
        self.list(&["--config", &config.display().to_string()])
    }

    /// `inbox <source> list --json --limit 100000`.
    pub(super) fn list(&self, source: &[&str]) -> Vec<Value> {
        self.json_lines(source, &["list", "--json", "--limit", "100000"])
    }

    fn json_lines(&self, source: &[&str], command: &[&str]) -> Vec<Value> {
        let args: Vec<&str> = ["inbox"].iter().chain(source).chain(command).copied().collect();
        let (code, out, err) = self.cli(&args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {e}: {l}")))
            .collect()
    }
}

/// One running `bars-receiver serve`.
pub(super) struct Replica {
    pub(super) addr: SocketAddr,
    pub(super) admin: SocketAddr,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// SIGKILL, and reaped.
    pub(super) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and its exit status once it has drained (bounded).
    pub(super) fn terminate(&mut self) -> ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log lines so far.
    pub(super) fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The status of `GET /readyz` on its admin listener (0: no answer).
    pub(super) fn readyz(&self) -> u16 {
        let ask = || -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect_timeout(&self.admin, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"GET /readyz HTTP/1.0\r\nHost: admin\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        };
        ask()
            .ok()
            .and_then(|text| text.split_whitespace().nth(1).and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    }

    /// Polls `/readyz` until it answers `status` (bounded).
    pub(super) fn wait_readyz(&self, status: u16, why: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.readyz();
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz still {now}, expected {status} ({why}):\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The `REC_` code of an OperationOutcome reply, if it is one.
pub(super) fn rec_code(reply: &Reply) -> Option<String> {
    let body: Value = serde_json::from_slice(&reply.body).ok()?;
    (body["resourceType"] == "OperationOutcome").then_some(())?;
    body["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .map(str::to_owned)
}

/// How often each X-Request-Id occurs among exported or listed records.
pub(super) fn request_id_counts(records: &[Value]) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for r in records {
        let id = r["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request_id in {r}"));
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// The X-Request-Id of a request the upstream received.
pub(super) fn upstream_request_id(r: &crate::common::upstream::Recorded) -> String {
    r.header("x-request-id").unwrap_or_default().to_owned()
}
