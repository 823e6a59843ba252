//! The real `bars-receiver` binary: `serve --dev` and its printed curl, `inbox`, `check`,
//! `dev-pki`, exit codes, SIGTERM and a SIGKILL that must lose no acknowledged message.

#![cfg(all(feature = "cli", feature = "dev-tools"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bin;
use common::pki::{LeafSpec, TestPki, ca, leaf};
use rcgen::ExtendedKeyUsagePurpose;

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = bin(dir).args(args).output().expect("run binary");
    let text = crate::common::output_text(&out);
    (out.status.code().unwrap_or(-1), text)
}

/// A running `serve --dev`.
struct Dev {
    child: Child,
    /// The curl command it printed.
    curl: String,
    /// Where its admin listener is.
    admin: std::net::SocketAddr,
    /// Its JSON log lines so far.
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Dev {
    fn logs_contain(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits (bounded) for a log line containing `needle`.
    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.logs_contain(needle) {
            assert!(Instant::now() < deadline, "no log line with {needle:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `serve --dev` on ephemeral ports (TLS and admin), with extra `BARS_` overrides.
fn serve_dev_with(dir: &Path, env: &[(&str, &str)]) -> Dev {
    let mut child = bin(dir)
        .args(["serve", "--dev"])
        .env("BARS_LISTEN__ADDRESS", "127.0.0.1:0")
        .env("BARS_ADMIN__ADDRESS", "127.0.0.1:0")
        .env("BARS_LOG__FORMAT", "json")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve --dev");
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut curl = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("curl ") || (!curl.is_empty() && !sent) {
                curl.push_str(line.trim_end_matches('\\'));
                curl.push(' ');
                if line.contains("process-message'") && !sent {
                    let _ = tx.send(curl.clone());
                    sent = true;
                }
            }
        }
    });
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (admin_tx, admin_rx) = std::sync::mpsc::channel();
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(admin) = v["admin"].as_str().filter(|a| !a.is_empty()) {
                    let _ = admin_tx.send(admin.parse::<std::net::SocketAddr>().unwrap());
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    let curl = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve --dev prints a curl command");
    let admin = admin_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve --dev logs its admin address");
    Dev {
        child,
        curl,
        admin,
        logs,
    }
}

fn serve_dev(dir: &Path) -> (Child, String) {
    let dev = serve_dev_with(dir, &[]);
    (dev.child, dev.curl)
}

fn sh(dir: &Path, command: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "serve did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_dev_prints_a_curl_that_lands_a_message_in_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, curl) = serve_dev(dir.path());
    assert!(
        dir.path().join("certs/dev/client.pem").exists(),
        "serve --dev creates the dev PKI"
    );

    let first = sh(dir.path(), &format!("{curl} -sS -w '\\n%{{http_code}}'"));
    assert!(first.trim_end().ends_with("200"), "{first}");
    assert!(
        first
            .replace([' ', '\n'], "")
            .contains("\"resourceType\":\"Bundle\""),
        "the 200 echoes the bundle as sent: {first}"
    );
    // The printed command reuses its X-Request-Id: the retry is a duplicate.
    let again = sh(dir.path(), &format!("{curl} -sS -w '\\n%{{http_code}}'"));
    assert!(again.trim_end().ends_with("409"), "{again}");
    assert!(
        again.contains("REC_CONFLICT") && again.contains("Reference ID"),
        "{again}"
    );

    let request_id = curl
        .split("X-Request-Id: ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    let (code, list) = run(dir.path(), &["inbox", "--db", "data/inbox.db", "list"]);
    assert_eq!(code, 0, "{list}");
    assert!(list.contains(&request_id), "{list}");
    assert!(list.contains("servicerequest-request"), "{list}");
    assert!(list.contains("1 of 1 message(s)"), "{list}");

    let (code, show) = run(
        dir.path(),
        &["inbox", "--db", "data/inbox.db", "show", &request_id],
    );
    assert_eq!(code, 0, "{show}");
    let record: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(record["bundle"]["id"], "3f2a6c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b");
    assert_eq!(record["peer"]["common_name"], "int.api.service.nhs.uk");
    assert_eq!(record["peer"]["source_ip"], "127.0.0.1");
    assert_eq!(
        record["headers"]["nhsd-end-user-organisation"]["identifier"][0]["value"],
        "A1001"
    );
    assert!(record["received_at"].as_str().unwrap().ends_with('Z'));

    let (code, export) = run(dir.path(), &["inbox", "--db", "data/inbox.db", "export"]);
    assert_eq!(code, 0);
    assert_eq!(export.lines().count(), 1);
    let (code, out) = run(
        dir.path(),
        &[
            "inbox",
            "--db",
            "data/inbox.db",
            "export",
            "--out",
            "export.ndjson",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("export.ndjson"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "an export holds patient data");
    let (code, _) = run(
        dir.path(),
        &[
            "inbox",
            "--db",
            "data/inbox.db",
            "export",
            "--out",
            "export.ndjson",
        ],
    );
    assert_eq!(code, 1, "an existing export is never overwritten");
    let (code, missing) = run(dir.path(), &["inbox", "--db", "data/inbox.db", "show", "nope"]);
    assert_eq!(code, 1, "{missing}");

    assert!(terminate(&mut child).success(), "SIGTERM is a clean stop");
}

#[test]
fn a_sigkill_after_the_200_loses_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, curl) = serve_dev(dir.path());
    let mut accepted = 0;
    for _ in 0..20 {
        let fresh = curl.replacen(
            &curl.split("X-Request-Id: ").nth(1).unwrap()[..36],
            &uuid::Uuid::new_v4().to_string(),
            1,
        );
        let out = sh(
            dir.path(),
            &format!("{fresh} -sS -o /dev/null -w '%{{http_code}}'"),
        );
        if out.trim() == "200" {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 20);
    child.kill().unwrap();
    child.wait().unwrap();
    let store = bars_receiver::Store::open_read_only(&dir.path().join("data/inbox.db")).unwrap();
    assert_eq!(
        common::blocking(async move { store.count().await }).unwrap(),
        20,
        "every acknowledged message survived the kill"
    );
}

#[test]
fn dev_pki_writes_the_documented_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = run(dir.path(), &["dev-pki", "--out", "pki"]);
    assert_eq!(code, 0, "{out}");
    for f in bars_receiver::pki::DEV_PKI_FILES {
        assert!(dir.path().join("pki").join(f).is_file(), "{f}");
    }
    let (code, out) = run(dir.path(), &["dev-pki", "--out", "pki"]);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("--force"), "{out}");
    let (code, _) = run(dir.path(), &["dev-pki", "--out", "pki", "--force"]);
    assert_eq!(code, 0);
}

#[test]
fn check_passes_the_development_setup() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), &["dev-pki"]).0, 0);
    let (code, out) = run(dir.path(), &["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ready"), "{out}");
    assert!(out.contains("matches the server certificate"), "{out}");
}

#[test]
fn bad_configuration_exits_64_naming_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "environment = \"int\"\n[tls]\ncert_chain = \"missing.pem\"\n[http]\ndeadline = \"forever\"\n",
    )
    .unwrap();
    for command in ["serve", "check"] {
        let (code, out) = run(dir.path(), &[command, "--config", config.to_str().unwrap()]);
        assert_eq!(code, 64, "{command}: {out}");
        for key in [
            "tls.cert_chain",
            "tls.private_key",
            "tls.client_ca",
            "http.deadline",
        ] {
            assert!(out.contains(key), "{command} does not name {key}: {out}");
        }
    }
    let (code, out) = run(dir.path(), &["serve"]);
    assert_eq!(code, 64, "{out}");
    let (code, _) = run(dir.path(), &["no-such-command"]);
    assert_eq!(code, 64);
}

/// Writes a config for `environment` using the given server chain/key and CA files.
fn config(dir: &Path, environment: &str, chain: &str, key: &str, cas: &[&str], crl: &str) -> String {
    let path = dir.join(format!("{environment}.toml"));
    let cas = cas
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let crl = if crl.is_empty() {
        String::new()
    } else {
        format!("crl = [\"{crl}\"]")
    };
    std::fs::write(
        &path,
        format!(
            "environment = \"{environment}\"\n[tls]\ncert_chain = \"{chain}\"\nprivate_key = \"{key}\"\nclient_ca = [{cas}]\n{crl}\n[receiver]\nservices = [\"https://fhir.nhs.uk/Id/dos-service-id|1\"]\n[inbox]\npath = \"data/inbox.db\"\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_owned()
}

#[test]
fn check_reports_key_mismatch_expiry_naming_and_an_int_chain_on_prod() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = TestPki::new();
    let root = write(d, "root.pem", &pki.root.pem);
    let subca = write(d, "subca.pem", &pki.subca.pem);
    let now = time::OffsetDateTime::now_utc();
    let (from, to) = (now - time::Duration::hours(1), now + time::Duration::days(7));
    let crl = write(d, "subca.crl", &common::pki::crl(&pki.subca, &[], from, to));

    // Key of another certificate.
    let chain = write(d, "chain.pem", &format!("{}{}", pki.server.pem, pki.subca.pem));
    let wrong_key = write(d, "wrong.key", &pki.client.key_pem);
    let (code, out) = run(
        d,
        &[
            "check",
            "--config",
            &config(d, "int", &chain, &wrong_key, &[&root, &subca], &crl),
        ],
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("does not match"), "{out}");

    // Expired server certificate.
    let expired = leaf(
        &pki.subca,
        LeafSpec {
            cn: Some("BaRS-INT-X26.test.thirdparty.nhs.uk".into()),
            eku: Some(vec![ExtendedKeyUsagePurpose::ServerAuth]),
            not_before: Some(now - time::Duration::days(400)),
            not_after: Some(now - time::Duration::days(1)),
            ..LeafSpec::default()
        },
    );
    let chain = write(d, "expired.pem", &format!("{}{}", expired.pem, pki.subca.pem));
    let key = write(d, "expired.key", &expired.key_pem);
    let (code, out) = run(
        d,
        &[
            "check",
            "--config",
            &config(d, "int", &chain, &key, &[&root, &subca], &crl),
        ],
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("expired"), "{out}");

    // An INT-named server certificate and a PTL chain on a PROD receiver.
    let ptl_root = ca("NHS PTL Root Authority", None);
    let ptl_subca = ca("NHS INT Level 1C", Some(&ptl_root.issuer));
    let int_server = leaf(
        &ptl_subca,
        LeafSpec {
            cn: Some("BaRS-INT-X26.test.thirdparty.nhs.uk".into()),
            dns: vec!["BaRS-INT-X26.test.thirdparty.nhs.uk".into()],
            eku: Some(vec![ExtendedKeyUsagePurpose::ServerAuth]),
            ..LeafSpec::default()
        },
    );
    let root = write(d, "ptl-root.pem", &ptl_root.pem);
    let subca = write(d, "ptl-subca.pem", &ptl_subca.pem);
    let crl = write(d, "ptl-subca.crl", &common::pki::crl(&ptl_subca, &[], from, to));
    let chain = write(
        d,
        "int-server.pem",
        &format!("{}{}", int_server.pem, ptl_subca.pem),
    );
    let key = write(d, "int-server.key", &int_server.key_pem);
    let (code, out) = run(
        d,
        &[
            "check",
            "--config",
            &config(d, "prod", &chain, &key, &[&root, &subca], &crl),
        ],
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("is named for INT, but environment = prod"), "{out}");
    assert!(
        out.contains("WARNING") && out.contains("must not trust the INT chain"),
        "{out}"
    );

    // The same chain on INT is fine.
    let (code, out) = run(
        d,
        &[
            "check",
            "--config",
            &config(d, "int", &chain, &key, &[&root, &subca], &crl),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("follows the BaRS naming convention"), "{out}");
    assert!(out.contains("0 revoked"), "the CRL is read and reported: {out}");

    // No CRL on INT: revocation checking is required.
    let (code, out) = run(
        d,
        &[
            "check",
            "--config",
            &config(d, "int", &chain, &key, &[&root, &subca], ""),
        ],
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("tls.crl"), "{out}");

    // A chain file in the wrong order.
    let reversed = write(d, "reversed.pem", &format!("{}{}", ptl_subca.pem, int_server.pem));
    let (code, out) = run(
        d,
        &[
            "check",
            "--config",
            &config(d, "int", &reversed, &key, &[&root, &subca], &crl),
        ],
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("leaf") || out.contains("out of order"), "{out}");
}

#[test]
fn serve_refuses_to_start_on_a_key_that_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = TestPki::new();
    let root = write(d, "root.pem", &pki.root.pem);
    let chain = write(d, "chain.pem", &format!("{}{}", pki.server.pem, pki.subca.pem));
    let key = write(d, "wrong.key", &pki.client.key_pem);
    let config = config(d, "dev", &chain, &key, &[&root], "");
    let (code, out) = run(d, &["serve", "--config", &config]);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("wrong.key") && out.contains("does not match"),
        "{out}"
    );
}

#[test]
fn healthcheck_and_sighup_reload_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut dev = serve_dev_with(d, &[("BARS_RELOAD__WATCH_INTERVAL", "0s")]);
    let readyz = format!("http://{}/readyz", dev.admin);
    // The admin address is logged a moment before the accept loop starts (and readiness
    // with it): ask until ready, as a container runtime's health check would.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, out) = loop {
        let (code, out) = run(d, &["healthcheck", "--url", &readyz]);
        if code == 0 || Instant::now() > deadline {
            break (code, out);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"ready\":true"), "{out}");
    let metrics = sh(d, &format!("curl -sS http://{}/metrics", dev.admin));
    assert!(
        metrics.contains("bars_receiver_connections_accepted_total"),
        "{metrics}"
    );
    let status = |curl: &str| {
        let fresh = curl.replacen(
            &curl.split("X-Request-Id: ").nth(1).unwrap()[..36],
            &uuid::Uuid::new_v4().to_string(),
            1,
        );
        sh(d, &format!("{fresh} -sS -o /dev/null -w '%{{http_code}}'"))
    };
    assert_eq!(status(&dev.curl), "200");

    // A broken key file: SIGHUP fails, the old material keeps serving.
    std::fs::write(d.join("certs/dev/server.key"), "").unwrap();
    let hup = |child: &Child| {
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(hup(&dev.child).success());
    dev.wait_for_log("reload failed");
    assert!(dev.logs_contain("server.key"), "the failure names the file");
    assert_eq!(status(&dev.curl), "200");

    // A whole new development PKI: SIGHUP swaps it in; clients of the new chain get in.
    assert_eq!(run(d, &["dev-pki", "--force"]).0, 0);
    assert!(hup(&dev.child).success());
    dev.wait_for_log("reloaded TLS and admission material");
    assert_eq!(
        status(&dev.curl),
        "200",
        "the curl now uses the new client certificate and CA"
    );

    assert!(terminate(&mut dev.child).success());
    let (code, _) = run(d, &["healthcheck", "--url", &readyz]);
    assert_eq!(code, 1, "nothing listens any more");
}

#[test]
fn a_refused_handshake_logs_one_line_naming_the_certificate_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut dev = serve_dev_with(d, &[]);
    let port = dev
        .curl
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let foreign = format!(
        "curl -sS --max-time 10 --cacert certs/dev/ca-bundle.pem --cert certs/dev/foreign-client.pem --key certs/dev/foreign-client.key https://127.0.0.1:{port}/metadata"
    );
    sh(d, &foreign);
    dev.wait_for_log("which is not in the CA bundle");
    let lines: Vec<String> = dev
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("connection refused"))
        .cloned()
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["reason"], "unknown_ca");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("Foreign Test CA (not trusted)"),
        "{line}"
    );
    assert!(
        line["span"]["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    assert!(terminate(&mut dev.child).success());
}

#[test]
fn a_config_file_change_reloads_the_allowlist_and_a_broken_one_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(run(d, &["dev-pki"]).0, 0);
    let dev_toml =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev.toml")).unwrap();
    let config = d.join("receiver.toml");
    std::fs::write(&config, &dev_toml).unwrap();
    let mut child = bin(d)
        .args(["serve", "--config", "receiver.toml"])
        .env("BARS_LISTEN__ADDRESS", "127.0.0.1:0")
        .env("BARS_ADMIN__ENABLED", "false")
        .env("BARS_LOG__FORMAT", "json")
        .env("BARS_RELOAD__WATCH_INTERVAL", "1s")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = logs.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let count = |needle: &str| logs.lock().unwrap().iter().filter(|l| l.contains(needle)).count();
    let wait = |needle: &str, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "waiting for {n} x {needle:?}: {:?}",
                logs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("listening (mutual TLS)", 1);
    let port = {
        let lines = logs.lock().unwrap();
        let line = lines
            .iter()
            .find(|l| l.contains("listening (mutual TLS)"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["address"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned()
    };
    let metadata = format!(
        "curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}' --cacert certs/dev/ca-bundle.pem --cert certs/dev/client.pem --key certs/dev/client.key https://127.0.0.1:{port}/metadata"
    );
    assert_eq!(sh(d, &metadata), "200");

    // Broken TOML: one failure, not one per watch tick.
    std::fs::write(&config, "environment = \"dev\"\n[listen\n").unwrap();
    wait("reload failed", 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count("reload failed"), 1, "reported once while unchanged");
    assert_eq!(sh(d, &metadata), "200", "the old material keeps serving");

    // Fixed, with an allowlist that no longer has 127.0.0.1: new connections are refused.
    std::fs::write(
        &config,
        dev_toml.replace("# sources = [\"127.0.0.2/32\"]", "sources = [\"127.0.0.2/32\"]"),
    )
    .unwrap();
    wait("reloaded TLS and admission material", 1);
    assert_ne!(sh(d, &metadata), "200", "127.0.0.1 is no longer allowed");
    assert!(terminate(&mut child).success());
}
