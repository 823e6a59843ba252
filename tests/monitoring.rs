//! Monitoring end to end: `/metrics` in the exposition format the scraper asks for (checked
//! by `promtool check metrics` when it is installed), and the shipped alert rules and Grafana
//! dashboard (`docs/monitoring/`) naming only metrics a real scrape exports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// What Prometheus 2.x and 3.x send when they scrape.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A receiver with its admin listener, after traffic that gives every metric family a
/// series: a refused handshake, an accepted message and an unknown path.
async fn server_after_traffic() -> TestServer {
    let server = TestServer::start(ServerOptions {
        admin: true,
        ..ServerOptions::default()
    })
    .await;
    server.exercise_metric_families().await;
    server
}

/// A scrape with curl: status, headers (lower-cased names) and body.
struct Scrape {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Scrape {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

async fn scrape(admin: SocketAddr, accept: Option<&str>) -> Scrape {
    let mut args = vec!["-sS".to_owned(), "--max-time".into(), "10".into(), "-i".into()];
    if let Some(accept) = accept {
        args.extend(["-H".into(), format!("Accept: {accept}")]);
    }
    args.push(format!("http://{admin}/metrics"));
    let out = tokio::process::Command::new("curl")
        .args(&args)
        .output()
        .await
        .expect("curl must be installed (.ci/run installs it)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Scrape {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `promtool`, when installed; says so when it is not.
fn promtool(what: &str) -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "SKIPPED {what}: promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)"
        );
    }
    found.then_some("promtool")
}

/// Runs promtool with `args` (and `stdin`), asserting it exits 0.
fn promtool_passes(args: &[&str], dir: &Path, stdin: Option<&str>) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} exited {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("promtool {args:?}: ok");
}

/// Families by `# TYPE` line: name and type.
fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// Every sample's metric name.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn metrics_are_served_in_the_format_the_scraper_asks_for() {
    let server = server_after_traffic().await;
    let admin = server.admin.unwrap();

    // The Prometheus text format 0.0.4: asked for, and without an Accept naming a format
    // (curl sends */*).
    for accept in [Some("text/plain;version=0.0.4"), None] {
        let s = scrape(admin, accept).await;
        assert_eq!(s.status, 200);
        assert!(
            s.header("content-type").starts_with("text/plain; version=0.0.4"),
            "{accept:?}: {}",
            s.header("content-type")
        );
        assert!(s.header("vary").to_ascii_lowercase().contains("accept"));
        let text = &s.body;
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        let families = families(text);
        assert!(families.len() >= 14, "{text}");
        for (name, kind) in &families {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no help text:\n{text}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} is named by its samples");
            }
        }
        for sample in sample_names(text) {
            let owner = families.iter().any(|(name, kind)| {
                sample == *name
                    || (kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| sample == format!("{name}{s}")))
            });
            assert!(owner, "{sample} belongs to no # TYPE family:\n{text}");
        }
        for needle in [
            "bars_receiver_connections_refused_total{reason=\"no_client_certificate\"} 1",
            "bars_receiver_requests_total{route=\"process-message\",status=\"200\"} 1",
            "bars_receiver_reloads_total{result=\"failure\"} 0",
            "bars_receiver_ready 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        if promtool("promtool check metrics").is_some() {
            promtool_passes(&["check", "metrics"], Path::new("."), Some(text));
        }
    }

    // OpenMetrics, to an OpenMetrics Accept and to the one Prometheus sends.
    for accept in ["application/openmetrics-text; version=1.0.0", PROMETHEUS_ACCEPT] {
        let s = scrape(admin, Some(accept)).await;
        assert_eq!(s.status, 200);
        assert!(
            s.header("content-type")
                .starts_with("application/openmetrics-text; version=1.0.0"),
            "{accept}: {}",
            s.header("content-type")
        );
        assert!(s.body.ends_with("# EOF\n"), "{}", s.body);
        assert!(
            s.body.contains("# TYPE bars_receiver_requests counter")
                && s.body
                    .contains("bars_receiver_requests_total{route=\"process-message\",status=\"200\"} 1"),
            "{}",
            s.body
        );
    }
}

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/monitoring")
}

/// The `bars_receiver_…` names a text mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.match_indices("bars_receiver_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_shipped_alerts_and_dashboard_name_only_metrics_a_scrape_exports() {
    let dir = monitoring_dir();
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let rule_tests = std::fs::read_to_string(dir.join("alerts.test.yml")).unwrap();
    let dashboard = std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("dashboard panels");
    assert!(panels.len() >= 10, "found the dashboard's panels");
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("bars_receiver_")),
                "{panel}"
            );
        }
    }

    let server = server_after_traffic().await;
    let s = scrape(server.admin.unwrap(), Some("text/plain;version=0.0.4")).await;
    let mut exported = sample_names(&s.body);
    exported.extend(families(&s.body).into_iter().map(|(name, _)| name));
    for (file, text) in [
        ("alerts.yml", &rules),
        ("alerts.test.yml", &rule_tests),
        ("grafana-dashboard.json", &dashboard),
    ] {
        let named = metric_names(text);
        assert!(named.len() >= 5, "{file}: found its metric names: {named:?}");
        for name in &named {
            assert!(
                exported.contains(name),
                "{file} names {name}, which /metrics does not export:\n{}",
                s.body
            );
        }
    }
    // The metrics table of docs/operations.md lists what is exported.
    let operations =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md")).unwrap();
    let table: Vec<String> = operations
        .split("\n## Metrics\n")
        .nth(1)
        .expect("a Metrics section")
        .split("\n## ")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(|name| format!("bars_receiver_{name}"))
        .collect();
    assert!(table.len() >= 14, "found the metrics table: {table:?}");
    for name in &table {
        let histogram = format!("{name}_bucket");
        assert!(
            exported.contains(name) || exported.contains(&histogram),
            "docs/operations.md lists {name}, which /metrics does not export"
        );
    }
    // The alerts cover what the operator is asked to watch.
    for name in [
        "bars_receiver_not_after_timestamp_seconds",
        "bars_receiver_connections_refused_total",
        "bars_receiver_deliveries",
        "bars_receiver_oldest_pending_delivery_age_seconds",
        "bars_receiver_ready",
        "bars_receiver_reloads_total",
    ] {
        assert!(rules.contains(name), "alerts.yml does not use {name}");
    }

    if promtool("promtool check rules / test rules").is_some() {
        promtool_passes(&["check", "rules", "alerts.yml"], &dir, None);
        promtool_passes(&["test", "rules", "alerts.test.yml"], &dir, None);
    }
}
