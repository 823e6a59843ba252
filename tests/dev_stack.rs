//! `bars-receiver dev-stack`, the real binary: the whole BaRS path on real sockets and real
//! mutual TLS. A sends a validation request to B through the dev proxy with `bars-receiver
//! send`; B commits it and later replies to A through the proxy; both inboxes, read with
//! `bars-receiver inbox`, show the conversation. Then SIGTERM stops everything cleanly, and
//! a second start reuses what the first generated.

#![cfg(all(feature = "cli", feature = "dev-tools"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::bin;

const REFERRER: &str = "https://fhir.nhs.uk/Id/dos-service-id|2000000001";
const SERVICE: &str = "https://fhir.nhs.uk/Id/dos-service-id|2000000002";

/// Runs a printed `bars-receiver ...` command line with the binary under test.
fn run_printed(dir: &Path, line: &str) -> (i32, String, String) {
    let args = split(
        line.trim()
            .strip_prefix("bars-receiver ")
            .expect("a bars-receiver command"),
    );
    let out = bin(dir).args(&args).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Splits a command line on spaces, honouring single quotes (as the guide prints them).
fn split(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

/// A running `dev-stack` with everything on ephemeral ports.
struct Stack {
    child: Child,
    guide: Vec<String>,
}

impl Stack {
    fn start(dir: &Path) -> Self {
        let mut child = bin(dir)
            .args([
                "dev-stack",
                "--dir",
                "stack",
                "--proxy-address",
                "127.0.0.1:0",
                "--referrer-address",
                "127.0.0.1:0",
                "--service-address",
                "127.0.0.1:0",
                "--reply-delay",
                "1s",
                "--log-format",
                "json",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dev-stack");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let ready = line.starts_with("Ready.");
                lines.push(line);
                if ready {
                    let _ = tx.send(lines.clone());
                }
            }
            let _ = tx.send(lines);
        });
        // Key generation (RSA 4096, twice) is the slow part of a first start.
        let guide = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("dev-stack prints its guide");
        assert!(
            guide.iter().any(|l| l.starts_with("Ready.")),
            "dev-stack did not start: {guide:#?}"
        );
        Self { child, guide }
    }

    /// The printed command that starts with `prefix`.
    fn command(&self, prefix: &str) -> String {
        self.guide
            .iter()
            .map(|l| l.trim())
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' command in {:#?}", self.guide))
            .to_owned()
    }

    fn text(&self) -> String {
        self.guide.join("\n")
    }

    /// SIGTERM, then the exit status (bounded).
    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "dev-stack did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages of an inbox (`inbox export`), oldest first.
fn export(dir: &Path, db: &str) -> Vec<Value> {
    let out = bin(dir)
        .args(["inbox", "--db", db, "export"])
        .output()
        .expect("inbox export");
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Polls an inbox until it holds `count` messages (generous bound; never asserts speed).
fn wait_for(dir: &Path, db: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let messages = export(dir, db);
        if messages.len() >= count {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "{db} has {} message(s), expected {count}",
            messages.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_validation_request_and_its_response_travel_through_the_proxy_into_both_inboxes() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path());
    let guide = stack.text();
    assert!(guide.contains("Generated development PKI"), "{guide}");
    assert!(
        guide.contains("kid DevReferrer-INT-1") && guide.contains("kid DevService-INT-1"),
        "{guide}"
    );
    assert!(guide.contains("forwarding from 127.0.0.2"), "{guide}");

    // 1. A's application gets an API-M token from the proxy.
    let (code, out, err) = run_printed(dir.path(), &stack.command("bars-receiver token"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"token_type\": \"Bearer\""), "{out}");

    // 2. A sends the validation request to B through the proxy.
    let send = stack.command("bars-receiver send");
    assert!(send.contains(&format!("--target '{SERVICE}'")), "{send}");
    let (code, out, err) = run_printed(dir.path(), &send);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("HTTP 200"), "{err}");
    let correlation_id = err
        .lines()
        .find_map(|l| l.strip_prefix("X-Correlation-Id: "))
        .expect("send prints the correlation id")
        .to_owned();
    let request_id = err
        .lines()
        .find_map(|l| l.strip_prefix("X-Request-Id: "))
        .unwrap()
        .to_owned();
    let sent: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("stack/validation-request.json")).unwrap(),
    )
    .unwrap();

    // 3. B committed it: from the proxy's address, with the proxy's client certificate.
    let at_b = wait_for(dir.path(), "stack/service/inbox.db", 1);
    assert_eq!(at_b.len(), 1);
    let request = &at_b[0];
    assert_eq!(request["event"], "servicerequest-request");
    assert_eq!(request["request_id"], request_id.as_str());
    assert_eq!(request["correlation_id"], correlation_id.as_str());
    assert_eq!(request["target"], SERVICE);
    assert_eq!(request["bundle_id"], sent["id"]);
    assert_eq!(request["peer"]["source_ip"], "127.0.0.2");
    assert_eq!(request["peer"]["common_name"], "int.api.service.nhs.uk");

    // 4. B's reply reached A through the proxy: a new message in the same conversation.
    let at_a = wait_for(dir.path(), "stack/referrer/inbox.db", 1);
    assert_eq!(at_a.len(), 1);
    let reply = &at_a[0];
    assert_eq!(reply["event"], "servicerequest-response");
    assert_eq!(
        reply["correlation_id"],
        correlation_id.as_str(),
        "same X-Correlation-Id"
    );
    assert_ne!(reply["request_id"], request_id.as_str(), "a new X-Request-Id");
    assert_eq!(reply["target"], REFERRER, "addressed to A's source.endpoint");
    assert_eq!(reply["peer"]["source_ip"], "127.0.0.2");
    let header = &reply["bundle"]["entry"][0]["resource"];
    assert_eq!(
        header["response"]["identifier"], sent["id"],
        "answers A's Bundle.id"
    );
    assert_eq!(header["source"]["endpoint"], SERVICE, "from B");
    assert_eq!(
        reply["headers"]["nhsd-end-user-organisation"]["identifier"][0]["value"], "X26",
        "B's organisation sent it"
    );

    // The inbox commands the guide prints read the same inboxes.
    let (code, out, _) = run_printed(
        dir.path(),
        &stack.command("bars-receiver inbox --db stack/referrer"),
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("servicerequest-response") && out.contains("1 of 1 message(s)"),
        "{out}"
    );

    let status = stack.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM stops dev-stack cleanly");

    // A second start generates nothing new (same keys, so the same JWKS) and works again.
    let jwks = std::fs::read(dir.path().join("stack/keys/DevReferrer-INT-1.jwks.json")).unwrap();
    let again = Stack::start(dir.path());
    assert!(!again.text().contains("Generated"), "{}", again.text());
    assert_eq!(
        std::fs::read(dir.path().join("stack/keys/DevReferrer-INT-1.jwks.json")).unwrap(),
        jwks
    );
    let (code, out, err) = run_printed(dir.path(), &again.command("bars-receiver send"));
    assert_eq!(code, 0, "{out}{err}");
    wait_for(dir.path(), "stack/referrer/inbox.db", 2);
    assert_eq!(again.terminate().code(), Some(0));
}

#[test]
fn each_receiver_admits_only_the_proxy_source_address() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path());
    let config = std::fs::read_to_string(dir.path().join("stack/service.toml")).unwrap();
    assert!(config.contains("sources = [\"127.0.0.2/32\"]"), "{config}");
    let address = config
        .lines()
        .find_map(|l| l.strip_prefix("address = "))
        .unwrap()
        .trim_matches('"')
        .parse::<std::net::SocketAddr>()
        .unwrap();
    // Straight to B from 127.0.0.1, bypassing the proxy: closed before any TLS.
    let mut tcp = std::net::TcpStream::connect(address).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 1];
    let read = std::io::Read::read(&mut tcp, &mut buf);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "B closed the connection from a source other than the proxy's: {read:?}"
    );
    assert_eq!(stack.terminate().code(), Some(0));

    // The proxy alone, from the configuration dev-stack wrote, on another port.
    let mut proxy = bin(dir.path())
        .args([
            "dev-proxy",
            "--config",
            "stack/dev-proxy.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dev-proxy");
    let stderr = proxy.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let token_line = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("dev-proxy prints its token URL");
        if line.trim_start().starts_with("token URL:") {
            break line;
        }
    };
    assert!(
        token_line.contains("https://127.0.0.1:") && token_line.ends_with("/oauth2/token"),
        "{token_line}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &proxy.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = proxy.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "dev-proxy did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn dev_proxy_refuses_a_bad_configuration_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("proxy.toml"),
        "[listen]\naddress = \"nowhere\"\n[forward]\ntimeout = \"forever\"\n",
    )
    .unwrap();
    let out = bin(dir.path())
        .args(["dev-proxy", "--config", "proxy.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "listen.address",
        "forward.timeout",
        "tls.cert_chain",
        "catalogue.file",
        "forward.receiver_ca",
    ] {
        assert!(err.contains(key), "{key} in {err}");
    }
    let out = bin(dir.path()).args(["dev-proxy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config/dev-proxy.toml"));
}
