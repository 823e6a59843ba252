//! The operator's view of the real binary: which `BARS_` variables are configuration (the
//! service links Kubernetes injects are not), options before or after a subcommand, a
//! standard output closed by its reader, and what the log lines say.

#![cfg(all(feature = "cli", feature = "dev-tools"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bars_receiver::Store;
use bars_receiver::store::NewMessage;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::bin;

/// What Kubernetes sets in every pod of a namespace holding the Service `bars-receiver`
/// (ports `mtls` 8443/TCP and `admin` 9090/TCP) and the Service `bars-receiver-admin`
/// (`admin` 9090/TCP): `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`,
/// `<NAME>_SERVICE_PORT_<PORT NAME>`, `<NAME>_PORT` and `<NAME>_PORT_<port>_<PROTO>` with
/// its `_PROTO`, `_PORT` and `_ADDR`, the name upper-cased with `-` as `_`.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("BARS_RECEIVER_SERVICE_HOST", "10.96.12.34"),
    ("BARS_RECEIVER_SERVICE_PORT", "8443"),
    ("BARS_RECEIVER_SERVICE_PORT_MTLS", "8443"),
    ("BARS_RECEIVER_SERVICE_PORT_ADMIN", "9090"),
    ("BARS_RECEIVER_PORT", "tcp://10.96.12.34:8443"),
    ("BARS_RECEIVER_PORT_8443_TCP", "tcp://10.96.12.34:8443"),
    ("BARS_RECEIVER_PORT_8443_TCP_PROTO", "tcp"),
    ("BARS_RECEIVER_PORT_8443_TCP_PORT", "8443"),
    ("BARS_RECEIVER_PORT_8443_TCP_ADDR", "10.96.12.34"),
    ("BARS_RECEIVER_PORT_9090_TCP", "tcp://10.96.12.34:9090"),
    ("BARS_RECEIVER_PORT_9090_TCP_PROTO", "tcp"),
    ("BARS_RECEIVER_PORT_9090_TCP_PORT", "9090"),
    ("BARS_RECEIVER_PORT_9090_TCP_ADDR", "10.96.12.34"),
    ("BARS_RECEIVER_ADMIN_SERVICE_HOST", "10.96.56.78"),
    ("BARS_RECEIVER_ADMIN_SERVICE_PORT", "9090"),
    ("BARS_RECEIVER_ADMIN_SERVICE_PORT_ADMIN", "9090"),
    ("BARS_RECEIVER_ADMIN_PORT", "tcp://10.96.56.78:9090"),
    ("BARS_RECEIVER_ADMIN_PORT_9090_TCP", "tcp://10.96.56.78:9090"),
    ("BARS_RECEIVER_ADMIN_PORT_9090_TCP_PROTO", "tcp"),
    ("BARS_RECEIVER_ADMIN_PORT_9090_TCP_PORT", "9090"),
    ("BARS_RECEIVER_ADMIN_PORT_9090_TCP_ADDR", "10.96.56.78"),
];

/// A running `serve --dev` on ephemeral ports, its standard output collected line by line.
struct Serving {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Serving {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = bin(dir)
            .args(["serve", "--dev"])
            .env("BARS_LISTEN__ADDRESS", "127.0.0.1:0")
            .env("BARS_ADMIN__ADDRESS", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve --dev");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines }
    }

    /// The first line containing `needle`, waiting (bounded) for it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "serve exited ({status}) before logging {needle:?}:\n{}",
                    self.lines.lock().unwrap().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "no line with {needle:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and the exit status (bounded wait).
    fn stop(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
}

#[test]
fn serve_ignores_the_service_link_variables_kubernetes_injects() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = SERVICE_LINKS.to_vec();
    env.extend([
        ("BARS_LOG__FORMAT", "json"),
        ("BARS_LOG__LEVEL", "info,bars_receiver=debug"),
    ]);
    let mut serving = Serving::start(dir.path(), &env);
    serving.wait_for("listening (mutual TLS)");
    let ignored = json_line(&serving.wait_for("ignored BARS_ environment variables"));
    assert_eq!(ignored["level"], "DEBUG");
    let mut expected: Vec<&str> = SERVICE_LINKS.iter().map(|(k, _)| *k).collect();
    expected.sort_unstable();
    assert_eq!(
        ignored["variables"],
        json!(expected),
        "the names, once, as a JSON array"
    );
    let lines = serving.lines.lock().unwrap().clone();
    assert_eq!(
        lines.iter().filter(|l| l.contains("ignored BARS_")).count(),
        1,
        "logged once"
    );
    assert!(
        !lines.iter().any(|l| l.contains("10.96.12.34")),
        "the values are never logged"
    );
    assert!(serving.stop().success());
}

#[test]
fn a_misspelt_setting_still_stops_serve_beside_the_service_links() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, says) in [
        ("BARS_LISTEN__ADRESS", "unknown field `adress`"),
        ("BARS_LISTN__ADDRESS", "unknown field `listn`"),
        (
            "BARS_TLS_ALLOWED_CLIENT_NAMES",
            "did you mean BARS_TLS__ALLOWED_CLIENT_NAMES",
        ),
        ("BARS_LISTEN_ADDRESS", "did you mean BARS_LISTEN__ADDRESS"),
    ] {
        let out = bin(dir.path())
            .args(["serve", "--dev"])
            .envs(SERVICE_LINKS.iter().copied())
            .env(variable, "127.0.0.1:0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{variable}: {stderr}");
        assert!(
            stderr.contains(&format!("environment variable {variable}")) && stderr.contains(says),
            "{variable}: {stderr}"
        );
    }
}

#[test]
fn the_start_up_line_gives_addresses_plainly_and_lists_as_json_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let mut serving = Serving::start(dir.path(), &[("BARS_LOG__FORMAT", "json")]);
    let line = serving.wait_for("listening (mutual TLS)");
    let v = json_line(&line);
    let address: SocketAddr = v["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(address.ip().to_string(), "127.0.0.1");
    let admin: SocketAddr = v["admin"].as_str().unwrap().parse().unwrap();
    assert_ne!(admin.port(), 0);
    let cas = v["client_cas"].as_array().expect("client_cas is a JSON array");
    assert_eq!(cas.len(), 2, "{line}");
    assert!(cas.iter().all(Value::is_string), "{line}");
    assert!(
        cas.iter()
            .any(|ca| ca.as_str().unwrap().contains("CN=BaRS DEV Root Authority")),
        "{line}"
    );
    assert_eq!(v["allowed_sources"], json!(["127.0.0.0/8", "::1/128"]));
    assert_eq!(v["trusted_proxies"], json!([]));
    assert_eq!(v["crls"], 0);
    assert!(!line.contains("Some("), "no Rust Debug forms: {line}");
    assert!(serving.stop().success());
}

#[test]
fn serve_dev_logs_readably_through_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut serving = Serving::start(dir.path(), &[]);
    let line = serving.wait_for("listening (mutual TLS)");
    assert!(!line.starts_with('{'), "not JSON by default with --dev: {line}");
    assert!(!line.contains('\u{1b}'), "no colour codes into a pipe: {line:?}");
    assert!(
        line.contains(r#"client_cas=["CN=BaRS DEV Root Authority,OU=CA,O=nhs"#),
        "{line}"
    );
    assert!(serving.stop().success());
}

/// An inbox at `path` holding one message; its receiver reference.
fn inbox_with_a_message(path: &Path) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(path).unwrap();
        let id = Uuid::new_v4().to_string();
        let request_id = Uuid::new_v4();
        store
            .insert_message(NewMessage {
                id: id.clone(),
                received_at: "2026-01-05T09:30:00.000000Z".into(),
                request_id,
                correlation_id: Uuid::new_v4(),
                bundle_id: "bundle-1".into(),
                event: "servicerequest-request".into(),
                reason: "new".into(),
                target: Some("https://fhir.nhs.uk/Id/dos-service-id|2000072489".into()),
                headers: json!({"x-request-id": request_id.to_string()}),
                peer: json!({"common_name": "int.api.service.nhs.uk"}),
                // Longer than a pipe's buffer, so that no write could pass unnoticed.
                body: json!({"resourceType": "Bundle", "note": "x".repeat(200_000)})
                    .to_string()
                    .into(),
            })
            .await
            .unwrap();
        id
    })
}

/// A pipe's write end whose reader has already gone: what `| head` leaves once it has its
/// lines. Made from a FIFO because Linux opens one read-write without waiting for a peer, so
/// the write end can be opened while that handle is held and outlive it.
fn closed_pipe(dir: &Path, name: &str) -> std::fs::File {
    let fifo = dir.join(name);
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    drop(reader);
    writer
}

/// Runs the binary with standard output a closed pipe: exit code and standard error.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let name = format!("stdout-{}", Uuid::new_v4());
    let out = bin(dir)
        .args(args)
        .stdout(closed_pipe(dir, &name))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_ends_quietly_when_its_reader_closes_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("inbox.db");
    let id = inbox_with_a_message(&db);
    let db = db.to_str().unwrap();
    assert!(bin(d).arg("dev-pki").output().unwrap().status.success());
    for args in [
        vec!["inbox", "--db", db, "show", &id],
        vec!["inbox", "--db", db, "list"],
        vec!["inbox", "--db", db, "list", "--json"],
        vec!["inbox", "--db", db, "export"],
        vec!["check"],
        vec!["dev-pki", "--out", "second-pki"],
        vec![
            "csr",
            "--environment",
            "int",
            "--ods",
            "X26",
            "--supplier",
            "test",
            "--out",
            "csr",
        ],
        vec!["--help"],
        vec!["--version"],
    ] {
        let (code, stderr) = with_closed_stdout(d, &args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.to_lowercase().contains("broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_failing_standard_output_is_still_an_error() {
    // A full disk behind `> file`: the result is truncated, and the exit code says so.
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("inbox.db");
    let id = inbox_with_a_message(&db);
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = bin(d)
        .args(["inbox", "--db", db.to_str().unwrap(), "show", &id])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to standard output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A configuration file whose inbox is `inbox`: the development one, with its inbox moved.
fn config_with_inbox(dir: &Path, inbox: &Path) -> PathBuf {
    let dev = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev.toml")).unwrap();
    let path = dir.join("receiver.toml");
    let moved = dev.replace(
        "path = \"data/inbox.db\"",
        &format!("path = {:?}", inbox.to_str().unwrap()),
    );
    assert_ne!(moved, dev, "config/dev.toml names its inbox");
    std::fs::write(&path, moved).unwrap();
    path
}

#[test]
fn inbox_options_work_before_and_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Not the default data/inbox.db: only an option that was read finds it.
    let db = d.join("elsewhere/inbox.db");
    let id = inbox_with_a_message(&db);
    assert!(bin(d).arg("dev-pki").output().unwrap().status.success());
    let config = config_with_inbox(d, &db);
    let (db, config) = (db.to_str().unwrap(), config.to_str().unwrap());
    for (option, value) in [("--db", db), ("--config", config), ("-c", config)] {
        for args in [
            vec!["inbox", option, value, "list"],
            vec!["inbox", "list", option, value],
            vec!["inbox", "list", "--json", option, value],
            vec!["inbox", option, value, "show", &id],
            vec!["inbox", "show", &id, option, value],
            vec!["inbox", "show", option, value, &id],
        ] {
            let out = bin(d).args(&args).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{args:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains(&id), "{args:?} read another inbox: {stdout}");
        }
    }
    // Either position, --db and --config still exclude each other.
    for args in [
        vec!["inbox", "--db", db, "list", "--config", config],
        vec!["inbox", "list", "--db", db, "--config", config],
    ] {
        let out = bin(d).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
    }
}

#[test]
fn the_kubernetes_deployment_turns_service_links_off_and_sets_only_settings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kubernetes/deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let pod_spec = text
        .split("  template:")
        .nth(1)
        .expect("a pod template")
        .split("\n    spec:\n")
        .nth(1)
        .expect("its spec");
    assert!(
        pod_spec.lines().any(|l| l == "      enableServiceLinks: false"),
        "the pod spec sets enableServiceLinks: false"
    );
    // `- {name: BARS_…, value: …}` entries: every one is a setting the binary accepts.
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- {name: "))
        .filter_map(|l| l.strip_suffix('}'))
        .filter_map(|l| l.split_once(", value: "))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    assert!(env.len() >= 5, "found the deployment's variables: {env:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path())
        .arg("check")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(SERVICE_LINKS.iter().copied())
        .output()
        .unwrap();
    let text = crate::common::output_text(&out);
    // The files live in the pod's volumes, not here: only their absence may be reported.
    assert!(!text.contains("environment variable"), "{text}");
    assert!(
        text.contains("tls.cert_chain: /etc/bars-receiver/tls/server-chain.pem"),
        "the variables were read: {text}"
    );
}
