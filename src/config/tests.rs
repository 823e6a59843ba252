use super::*;

fn files(dir: &std::path::Path) -> Vec<(String, String)> {
    for f in ["chain.pem", "key.pem", "root.pem", "subca.pem", "subca.crl"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    let p = |f: &str| dir.join(f).display().to_string();
    vec![
        ("BARS_TLS__CERT_CHAIN".into(), p("chain.pem")),
        ("BARS_TLS__PRIVATE_KEY".into(), p("key.pem")),
        (
            "BARS_TLS__CLIENT_CA".into(),
            format!("{},{}", p("root.pem"), p("subca.pem")),
        ),
        ("BARS_TLS__CRL".into(), p("subca.crl")),
        ("BARS_INBOX__PATH".into(), p("inbox.db")),
    ]
}

/// The shipped configs' `[sender]` needs its API key (from the environment) and key file.
fn with_sender(dir: &std::path::Path, mut vars: Vec<(String, String)>) -> Vec<(String, String)> {
    std::fs::write(dir.join("apim.pem"), "x").unwrap();
    vars.push(("BARS_SENDER__API_KEY".into(), "app-key-123".into()));
    vars.push((
        "BARS_SENDER__PRIVATE_KEY".into(),
        dir.join("apim.pem").display().to_string(),
    ));
    vars
}

fn shipped(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_shipped_example_config_parses() {
    let dir = tempfile::tempdir().unwrap();
    let int = Settings::from_toml(
        &shipped("int.toml"),
        "int.toml",
        with_sender(dir.path(), files(dir.path())),
    )
    .unwrap();
    assert_eq!(int.environment, Environment::Int);
    assert!(int.allowlist.allows("35.197.254.55".parse().unwrap()));
    assert!(int.allowlist.allows("35.246.55.143".parse().unwrap()));
    assert!(!int.allowlist.allows("34.89.0.111".parse().unwrap()));
    assert_eq!(int.listen.address.to_string(), "0.0.0.0:8443");
    assert_eq!(int.receiver.services.len(), 1);

    let prod = Settings::from_toml(
        &shipped("prod.toml"),
        "prod.toml",
        with_sender(dir.path(), files(dir.path())),
    )
    .unwrap();
    assert_eq!(prod.environment, Environment::Prod);
    assert!(prod.allowlist.allows("34.89.0.111".parse().unwrap()));
    assert!(prod.allowlist.allows("34.89.69.6".parse().unwrap()));
    assert!(
        !prod.allowlist.allows("35.197.254.55".parse().unwrap()),
        "PROD must not admit the INT proxy"
    );

    let dev = Settings::from_toml(&shipped("dev.toml"), "dev.toml", files(dir.path())).unwrap();
    assert_eq!(dev.environment, Environment::Dev);
    assert_eq!(dev.listen.address.to_string(), "127.0.0.1:8443");
    assert!(dev.allowlist.allows("127.0.0.2".parse().unwrap()));
    assert!(!dev.allowlist.allows("10.0.0.1".parse().unwrap()));
    assert_eq!(
        DEV_CONFIG,
        shipped("dev.toml"),
        "serve --dev embeds config/dev.toml"
    );

    for (settings, token_url, base_url) in [
        (
            &int,
            "https://int.api.service.nhs.uk/oauth2/token",
            "https://int.api.service.nhs.uk/booking-and-referral/FHIR/R4",
        ),
        (
            &prod,
            "https://api.service.nhs.uk/oauth2/token",
            "https://api.service.nhs.uk/booking-and-referral/FHIR/R4",
        ),
    ] {
        let sender = settings.sender.as_ref().expect("[sender]");
        assert_eq!(sender.base_url, base_url);
        assert_eq!(sender.ods_code, "X26");
        let SenderAuth::SignedJwt(apim) = &sender.auth else {
            panic!("signed-jwt expected");
        };
        assert_eq!(apim.token_url, token_url);
        assert_eq!(apim.api_key.expose(), "app-key-123");
        assert_eq!(apim.assertion_lifetime, std::time::Duration::from_secs(240));
        assert!(crate::sender::kid_convention(&apim.kid).is_ok(), "{}", apim.kid);
        assert!(
            !format!("{settings:?}").contains("app-key-123"),
            "the API key is redacted"
        );
    }
    let sender = dev.sender.as_ref().expect("[sender]");
    assert_eq!(sender.auth, SenderAuth::Sandbox);
    assert_eq!(sender.base_url, SANDBOX_BASE_URL);
}

#[test]
fn reports_every_sender_problem_with_its_key() {
    let text = r#"
environment = "int"
[sender]
kid = "bad kid"
assertion_lifetime = "10m"
base_url = "http://api.example.com/FHIR"
bars_version = "latest"
ods_code = "?"
max_attempts = 0
retry_backoff = "forever"
software_identifier = "nobar"
"#;
    let err = Settings::from_toml(text, "t.toml", Vec::new()).unwrap_err();
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("expected Invalid, got {err}");
    };
    let find = |key: &str| {
        problems
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{key} missing from {problems:?}"))
    };
    assert!(find("sender.api_key").message.contains("BARS_SENDER__API_KEY"));
    find("sender.private_key");
    find("sender.kid");
    assert!(find("sender.assertion_lifetime").message.contains("5 minutes"));
    assert!(find("sender.base_url").message.contains("https"));
    find("sender.bars_version");
    find("sender.ods_code");
    find("sender.max_attempts");
    find("sender.retry_backoff");
    find("sender.software_identifier");

    let err = Settings::from_toml(
        "environment = \"int\"\n[sender]\nmode = \"carrier-pigeon\"\n",
        "t.toml",
        Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("sender.mode"), "{err}");
}

#[test]
fn a_dev_sender_needs_its_urls_and_accepts_a_loopback_mock() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pem"), "x").unwrap();
    let key = dir.path().join("k.pem").display().to_string();
    let base = format!(
        "environment = \"dev\"\n[sender]\napi_key = \"k\"\nkid = \"A-INT-1\"\nods_code = \"X26\"\nprivate_key = \"{key}\"\n"
    );
    let err = Settings::from_toml(&base, "t", files(dir.path())).unwrap_err();
    assert!(err.to_string().contains("sender.token_url"), "{err}");
    assert!(err.to_string().contains("sender.base_url"), "{err}");

    let text = format!(
        "{base}token_url = \"http://127.0.0.1:9/oauth2/token\"\nbase_url = \"http://localhost:9/FHIR/R4/\"\nassertion_lifetime = \"90s\"\n"
    );
    let s = Settings::from_toml(&text, "t", files(dir.path())).unwrap();
    let sender = s.sender.unwrap();
    assert_eq!(sender.base_url, "http://localhost:9/FHIR/R4");
    let SenderAuth::SignedJwt(apim) = sender.auth else {
        panic!("signed-jwt expected");
    };
    assert_eq!(apim.assertion_lifetime, std::time::Duration::from_secs(90));
    assert_eq!(sender.max_attempts, 3);
}

#[test]
fn an_all_digit_api_key_from_the_environment_stays_a_string() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = with_sender(dir.path(), files(dir.path()));
    vars.retain(|(k, _)| k != "BARS_SENDER__API_KEY");
    vars.push(("BARS_SENDER__API_KEY".into(), "1234567890".into()));
    let s = Settings::from_toml(&shipped("int.toml"), "int.toml", vars).unwrap();
    let Some(SenderAuth::SignedJwt(apim)) = s.sender.map(|s| s.auth) else {
        panic!("signed-jwt expected");
    };
    assert_eq!(apim.api_key.expose(), "1234567890");
}

#[test]
fn defaults_are_the_documented_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings::from_toml("environment = \"int\"", "t", files(dir.path())).unwrap();
    assert_eq!(s.listen.handshake_timeout, std::time::Duration::from_secs(10));
    assert_eq!(s.listen.max_connections, 10_000);
    assert_eq!(s.listen.shutdown_grace, std::time::Duration::from_secs(20));
    assert_eq!(s.listen.first_request_timeout, std::time::Duration::from_secs(10));
    assert_eq!(s.listen.idle_timeout, std::time::Duration::from_secs(75));
    assert_eq!(s.http.max_body, 10 * 1024 * 1024);
    assert_eq!(s.http.max_header_bytes, 16 * 1024);
    assert_eq!(s.http.deadline, std::time::Duration::from_secs(5));
    assert_eq!(s.handler, HandlerKind::Inbox);
    assert!(s.tls.allowed_client_names.is_empty());
}

#[test]
fn reports_every_problem_with_its_key() {
    let text = r#"
environment = "int"
[listen]
address = "nowhere"
handshake_timeout = "soon"
max_connections = 0
first_request_timeout = "0s"
idle_timeout = "2h"
[tls]
cert_chain = "/nonexistent/chain.pem"
client_ca = []
allowed_client_names = ["*"]
[http]
max_body = "lots"
deadline = "90s"
max_header_bytes = "1KiB"
[receiver]
services = ["no-bar"]
[log]
format = "xml"
"#;
    let err = Settings::from_toml(text, "bad.toml", Vec::new()).unwrap_err();
    let ConfigError::Invalid { origin, problems } = err else {
        panic!("expected Invalid, got {err}");
    };
    assert_eq!(origin, "bad.toml");
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "listen.address",
        "listen.handshake_timeout",
        "listen.max_connections",
        "tls.cert_chain",
        "tls.private_key",
        "tls.client_ca",
        "tls.allowed_client_names[0]",
        "listen.first_request_timeout",
        "listen.idle_timeout",
        "http.max_body",
        "http.deadline",
        "http.max_header_bytes",
        "receiver.services[0]",
        "log.format",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let chain = problems.iter().find(|p| p.key == "tls.cert_chain").unwrap();
    assert!(chain.message.contains("/nonexistent/chain.pem"));
}

#[test]
fn refuses_unknown_keys_naming_them() {
    let err = Settings::from_toml(
        "environment = \"int\"\n[listen]\nadress = \"x\"\n",
        "t.toml",
        Vec::new(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("listen"), "{text}");
    assert!(text.contains("adress"), "{text}");
}

#[test]
fn blames_the_environment_variable_for_a_bad_override() {
    let vars = vec![("BARS_LISTEN__MAX_CONNECTIONS".to_owned(), "[1]".to_owned())];
    let err = Settings::from_toml("environment = \"int\"", "t.toml", vars).unwrap_err();
    assert!(err.to_string().contains("BARS_LISTEN__MAX_CONNECTIONS"), "{err}");
    // A section only a variable names: the variable is at fault, not the file.
    let vars = vec![("BARS_LISTN__ADDRESS".to_owned(), "x".to_owned())];
    let err = Settings::from_toml("environment = \"int\"", "t.toml", vars).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("environment variable BARS_LISTN__ADDRESS: listn: unknown field"),
        "{err}"
    );
}

#[test]
fn environment_overrides_replace_file_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = files(dir.path());
    vars.push(("BARS_LISTEN__ADDRESS".into(), "127.0.0.1:9443".into()));
    vars.push(("BARS_ALLOWLIST__SOURCES".into(), "10.1.0.0/16, 10.2.0.1".into()));
    let s = Settings::from_toml(
        "environment = \"prod\"\n[listen]\naddress = \"0.0.0.0:8443\"\n",
        "t",
        vars,
    )
    .unwrap();
    assert_eq!(s.listen.address.to_string(), "127.0.0.1:9443");
    assert!(s.allowlist.allows("10.1.2.3".parse().unwrap()));
    assert!(
        !s.allowlist.allows("34.89.0.111".parse().unwrap()),
        "an explicit list replaces the preset"
    );
}

#[test]
fn an_empty_allowlist_refuses_to_start_unless_explicitly_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    let err = Settings::from_toml(
        "environment = \"int\"\n[allowlist]\nsources = []\n",
        "t",
        files(dir.path()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("allowlist.sources"), "{err}");

    let s = Settings::from_toml(
        "environment = \"int\"\n[allowlist]\nallow_any_source_unsafe = true\n",
        "t",
        files(dir.path()),
    )
    .unwrap();
    assert!(s.allowlist.is_any_source_unsafe());

    let both = Settings::from_toml(
        "environment = \"int\"\n[allowlist]\nsources = [\"1.2.3.4\"]\nallow_any_source_unsafe = true\n",
        "t",
        files(dir.path()),
    )
    .unwrap_err();
    assert!(both.to_string().contains("allow_any_source_unsafe"), "{both}");
}

#[test]
fn the_environment_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let err = Settings::from_toml("", "t", files(dir.path())).unwrap_err();
    assert!(err.to_string().contains("environment"), "{err}");
}

#[test]
fn refuses_a_catch_all_allowlist_entry() {
    let dir = tempfile::tempdir().unwrap();
    for all in ["0.0.0.0/0", "::/0"] {
        let text = format!("environment = \"int\"\n[allowlist]\nsources = [\"{all}\"]\n");
        let err = Settings::from_toml(&text, "t", files(dir.path())).unwrap_err();
        assert!(err.to_string().contains("allow_any_source_unsafe"), "{err}");
    }
}

/// The shipped file with its commented `[upstream]` example switched on and `kind` set.
fn with_upstream_example(text: &str, kind: &str) -> String {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line == "# [upstream]" {
            in_block = true;
        }
        match line.strip_prefix("# ") {
            Some(rest) if in_block => out.push(rest.to_owned()),
            _ => {
                if !line.starts_with('#') {
                    in_block = false;
                }
                out.push(line.replace("kind = \"inbox\"", &format!("kind = \"{kind}\"")));
            }
        }
    }
    out.join("\n")
}

#[test]
fn every_shipped_upstream_example_parses_for_forward_and_relay() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("upstream-ca.pem"), "x").unwrap();
    let mut vars = with_sender(dir.path(), files(dir.path()));
    vars.push((
        "BARS_UPSTREAM__CA".into(),
        dir.path().join("upstream-ca.pem").display().to_string(),
    ));
    for name in ["int.toml", "prod.toml", "dev.toml"] {
        for (kind, expected) in [("forward", HandlerKind::Forward), ("relay", HandlerKind::Relay)] {
            let text = with_upstream_example(&shipped(name), kind);
            assert!(
                text.contains("\n[upstream]\n"),
                "{name} has an [upstream] example"
            );
            let vars = if name == "dev.toml" {
                files(dir.path())
            } else {
                vars.clone()
            };
            let s = Settings::from_toml(&text, name, vars).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.handler, expected);
            let up = s.upstream.expect("upstream");
            assert!(up.url.starts_with("http"), "{}", up.url);
            assert_eq!(up.timeout, std::time::Duration::from_secs(5));
            assert_eq!(up.max_attempts, 100);
        }
        // As shipped: the inbox, no upstream.
        let vars = with_sender(dir.path(), files(dir.path()));
        let s = Settings::from_toml(&shipped(name), name, vars).unwrap();
        assert_eq!(s.handler, HandlerKind::Inbox);
        assert!(s.upstream.is_none());
    }
}

#[test]
fn upstream_defaults_follow_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings::from_toml(
        "environment = \"int\"\n[http]\ndeadline = \"7s\"\n[handler]\nkind = \"forward\"\n[upstream]\nurl = \"http://127.0.0.1:8080/bars/\"\n",
        "t",
        files(dir.path()),
    )
    .unwrap();
    let up = s.upstream.unwrap();
    assert_eq!(up.url, "http://127.0.0.1:8080/bars", "trailing / trimmed");
    assert_eq!(up.timeout, std::time::Duration::from_secs(7));
    assert_eq!(up.max_response_body, 10 * 1024 * 1024);
    assert_eq!(up.retry_base, std::time::Duration::from_secs(2));
    assert_eq!(up.retry_cap, std::time::Duration::from_secs(900));
    assert_eq!(up.max_in_flight, 8);
    assert!(!up.use_system_roots);
    assert!(!up.http2_only);
}

#[test]
fn reports_every_upstream_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let problems = |text: &str| -> Vec<Problem> {
        match Settings::from_toml(text, "t", files(dir.path())).unwrap_err() {
            ConfigError::Invalid { problems, .. } => problems,
            other => panic!("expected Invalid, got {other}"),
        }
    };
    let keys = |text: &str| -> Vec<String> { problems(text).into_iter().map(|p| p.key).collect() };

    let missing = keys("environment = \"int\"\n[handler]\nkind = \"relay\"\n");
    assert_eq!(missing, ["upstream.url"]);

    let https = keys(
        "environment = \"int\"\n[handler]\nkind = \"forward\"\n[upstream]\nurl = \"https://sys.internal/bars\"\ncert = \"/nonexistent/c.pem\"\nserver_name = \"not a name\"\ntimeout = \"0s\"\nmax_response_body = \"1\"\nretry_base = \"10m\"\nretry_cap = \"1m\"\nmax_attempts = 0\nmax_in_flight = 0\n",
    );
    for key in [
        "upstream.cert",
        "upstream.key",
        "upstream.server_name",
        "upstream.ca",
        "upstream.timeout",
        "upstream.max_response_body",
        "upstream.retry_cap",
        "upstream.max_attempts",
        "upstream.max_in_flight",
    ] {
        assert!(https.contains(&key.to_owned()), "{key} missing from {https:?}");
    }
    let cert = problems(
        "environment = \"int\"\n[handler]\nkind = \"forward\"\n[upstream]\nurl = \"https://s/\"\ncert = \"/nonexistent/c.pem\"\n",
    );
    assert!(
        cert.iter()
            .any(|p| p.key == "upstream.cert" && p.message.contains("/nonexistent/c.pem"))
    );

    let plain = keys(
        "environment = \"int\"\n[handler]\nkind = \"forward\"\n[upstream]\nurl = \"http://sys.internal\"\nuse_system_roots = true\n",
    );
    assert_eq!(plain, ["upstream.use_system_roots"]);

    for url in [
        "ftp://x",
        "http://",
        "http://x/?a=1",
        "not a url",
        "http://u:p@x/",
    ] {
        let text =
            format!("environment = \"int\"\n[handler]\nkind = \"forward\"\n[upstream]\nurl = \"{url}\"\n");
        assert_eq!(keys(&text), ["upstream.url"], "{url}");
    }

    let unused = keys("environment = \"int\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n");
    assert_eq!(unused, ["upstream"]);

    let kind = problems("environment = \"int\"\n[handler]\nkind = \"proxy\"\n");
    assert!(kind[0].message.contains("forward") && kind[0].message.contains("relay"));

    let unknown = Settings::from_toml(
        "environment = \"int\"\n[handler]\nkind = \"forward\"\n[upstream]\nurl = \"http://x\"\nretries = 3\n",
        "t",
        files(dir.path()),
    )
    .unwrap_err();
    assert!(unknown.to_string().contains("retries"), "{unknown}");
}

#[test]
fn upstream_settings_come_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = files(dir.path());
    vars.push(("BARS_HANDLER__KIND".into(), "relay".into()));
    vars.push(("BARS_UPSTREAM__URL".into(), "http://127.0.0.1:9/x".into()));
    vars.push(("BARS_UPSTREAM__RETRY_BASE".into(), "50ms".into()));
    vars.push(("BARS_UPSTREAM__MAX_ATTEMPTS".into(), "3".into()));
    let s = Settings::from_toml("environment = \"dev\"\n[handler]\nkind = \"inbox\"\n", "t", vars).unwrap();
    assert_eq!(s.handler, HandlerKind::Relay);
    let up = s.upstream.unwrap();
    assert_eq!(up.retry_base, std::time::Duration::from_millis(50));
    assert_eq!(up.max_attempts, 3);
}

#[test]
fn revocation_checking_is_required_outside_development() {
    let dir = tempfile::tempdir().unwrap();
    let without_crl: Vec<_> = files(dir.path())
        .into_iter()
        .filter(|(k, _)| k != "BARS_TLS__CRL")
        .collect();
    for env in ["int", "prod"] {
        let err =
            Settings::from_toml(&format!("environment = \"{env}\""), "t", without_crl.clone()).unwrap_err();
        assert!(err.to_string().contains("tls.crl"), "{err}");
        let waived = format!("environment = \"{env}\"\n[tls]\nallow_no_revocation_check_unsafe = true\n");
        assert!(Settings::from_toml(&waived, "t", without_crl.clone()).is_ok());
    }
    assert!(Settings::from_toml("environment = \"dev\"", "t", without_crl.clone()).is_ok());
    let both = "environment = \"int\"\n[tls]\nallow_no_revocation_check_unsafe = true\n";
    let err = Settings::from_toml(both, "t", files(dir.path())).unwrap_err();
    assert!(
        err.to_string().contains("allow_no_revocation_check_unsafe"),
        "{err}"
    );
}

#[test]
fn the_shipped_dev_proxy_config_parses() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = shipped("dev-proxy.toml");
    // Every file it names, created under a temporary directory (the parse checks they exist).
    for path in [
        "certs/dev/server-chain.pem",
        "certs/dev/server.key",
        "certs/dev/client.pem",
        "certs/dev/client.key",
        "certs/dev/ca-bundle.pem",
        "keys/DevSupplier-INT-1.jwks.json",
        "config/dev-catalogue.toml",
    ] {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, "x").unwrap();
        let quoted = format!("\"{path}\"");
        assert!(text.contains(&quoted), "config/dev-proxy.toml names {path}");
        text = text.replace(&quoted, &format!("{:?}", full.display().to_string()));
    }
    let s = DevProxySettings::from_toml(&text, "dev-proxy.toml").unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:9443");
    assert_eq!(s.source_address, Some("127.0.0.2".parse().unwrap()));
    assert_eq!(
        s.timeout,
        std::time::Duration::from_secs(32),
        "the national proxy's wait"
    );
    assert_eq!(s.access_token_lifetime, std::time::Duration::from_secs(599));
    assert_eq!(s.token_url, None, "derived from the address bound");
    assert_eq!(s.applications.len(), 1);
    assert_eq!(s.applications[0].api_key.expose(), "dev-api-key-not-a-secret");
    assert_eq!(s.receiver_ca.len(), 1);
    assert!(
        !format!("{s:?}").contains("dev-api-key-not-a-secret"),
        "the API key is redacted"
    );
}

#[test]
fn reports_every_dev_proxy_problem_with_its_key() {
    let text = r#"
[listen]
address = "nowhere"
[token]
url = "http://127.0.0.1/oauth2/token"
access_token_lifetime = "2h"
[[application]]
api_key = "a"
jwks = "/nonexistent/a.json"
[[application]]
api_key = "a"
[forward]
source_address = "not-an-ip"
timeout = "0s"
[log]
format = "xml"
"#;
    let Err(ConfigError::Invalid { problems, .. }) = DevProxySettings::from_toml(text, "t") else {
        panic!("refused expected");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "listen.address",
        "tls.cert_chain",
        "tls.private_key",
        "token.url",
        "token.access_token_lifetime",
        "application[0].jwks",
        "application[1].api_key",
        "application[1].jwks",
        "catalogue.file",
        "forward.source_address",
        "forward.client_cert",
        "forward.client_key",
        "forward.receiver_ca",
        "forward.timeout",
        "log.format",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let err = DevProxySettings::from_toml("[forward]\nsource = \"x\"\n", "t").unwrap_err();
    assert!(err.to_string().contains("forward.source"), "{err}");
}

#[test]
fn the_store_defaults_to_the_sqlite_file_at_inbox_path() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings::from_toml("environment = \"dev\"", "t", files(dir.path())).unwrap();
    match s.store {
        crate::store::StoreSettings::Sqlite { path } => assert_eq!(path, s.inbox.path),
        other => panic!("expected sqlite, got {other:?}"),
    }
}

#[test]
fn a_postgres_store_comes_from_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("db-ca.pem");
    std::fs::write(&ca, "x").unwrap();
    let mut vars = files(dir.path());
    vars.push((
        "BARS_STORE__URL".into(),
        "postgres://bars:hunter2@db.internal:5432/bars".into(),
    ));
    vars.push(("BARS_STORE__POOL_SIZE".into(), "4".into()));
    let text = format!(
        "environment = \"int\"\n[store]\nkind = \"postgres\"\nca_file = \"{}\"\nclaim_lease = \"5s\"\n",
        ca.display()
    );
    let s = Settings::from_toml(&text, "t", vars).unwrap();
    let crate::store::StoreSettings::Postgres(pg) = s.store else {
        panic!("expected postgres");
    };
    assert_eq!(pg.url.to_string(), "postgres://bars@db.internal:5432/bars");
    assert!(!format!("{pg:?}").contains("hunter2"), "the password never shows");
    assert_eq!(pg.pool_size, 4);
    assert_eq!(pg.claim_lease, std::time::Duration::from_secs(5));
    assert_eq!(pg.connect_timeout, std::time::Duration::from_secs(2));
    assert_eq!(pg.statement_timeout, std::time::Duration::from_secs(5));
    assert_eq!(
        pg.tls,
        crate::store::PostgresTls::VerifyFull {
            ca: vec![ca],
            use_system_roots: false
        }
    );
}

#[test]
fn reports_every_store_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let vars = files(dir.path());
    let problem = |text: &str| {
        Settings::from_toml(text, "t", vars.clone())
            .unwrap_err()
            .to_string()
    };
    let int = "environment = \"int\"\n[store]\n";
    assert!(problem(&format!("{int}kind = \"postgres\"\n")).contains("store.url"));
    assert!(problem(&format!("{int}kind = \"mysql\"\n")).contains("store.kind"));
    assert!(
        problem(&format!("{int}url = \"postgres://h/db\"\n")).contains("store.url"),
        "a postgres key on sqlite"
    );
    let err = problem(&format!(
        "{int}kind = \"postgres\"\nurl = \"postgres://u:hunter2@db.internal/bars\"\n"
    ));
    assert!(err.contains("store.ca_file"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let plaintext = format!(
        "{int}kind = \"postgres\"\nurl = \"postgres://db.internal/bars\"\ntls = \"insecure-disabled\"\n"
    );
    assert!(
        problem(&plaintext).contains("store.tls"),
        "plaintext to another machine outside dev"
    );
    let local = format!(
        "{int}kind = \"postgres\"\nurl = \"postgres://127.0.0.1/bars\"\ntls = \"insecure-disabled\"\n"
    );
    assert!(
        Settings::from_toml(&local, "t", vars.clone()).is_ok(),
        "plaintext on this machine"
    );
    assert!(problem(&format!("{int}kind = \"postgres\"\nurl = \"postgres://h\"\n")).contains("store.url"));
    assert!(
        problem(&format!("{int}kind = \"postgres\"\nurl = \"postgres://127.0.0.1/b\"\ntls = \"insecure-disabled\"\npool_size = 0\n"))
            .contains("store.pool_size")
    );
}
