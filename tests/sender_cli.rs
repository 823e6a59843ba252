//! The onboarding and sender commands of the real binary: `keygen`, `csr` (checked with
//! `openssl req -verify`), `jwt`, `token` and `send` against the mock API-M and BaRS API.

#![cfg(all(feature = "cli", feature = "dev-tools"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::apim::{ApiReply, MockApim, outcome};
use common::bin;
use serde_json::Value;
use uuid::Uuid;

const API_KEY: &str = "cli-app-key";
const KID: &str = "TestSupplier-INT-1";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn run(dir: &Path, args: &[&str]) -> Out {
    collect(bin(dir).args(args).output().expect("run binary"))
}

fn collect(out: std::process::Output) -> Out {
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary without blocking the mock's runtime, bounded in time.
async fn run_async(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = tokio::process::Command::from(bin(dir));
    cmd.args(args).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the command finished in time")
        .expect("run binary");
    collect(out)
}

fn openssl(dir: &Path, args: &[&str]) -> Option<Out> {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => Some(collect(out)),
        Err(_) => {
            eprintln!("SKIPPED openssl checks: openssl is not installed (.ci/run installs it)");
            None
        }
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn keygen(dir: &Path) -> (String, String) {
    let out = run(dir, &["keygen", "--kid", KID, "--out", "keys"]);
    assert_eq!(out.code, 0, "{}", out.all());
    (format!("keys/{KID}.pem"), format!("keys/{KID}.pem.pub"))
}

#[test]
fn keygen_writes_a_private_key_0600_its_public_key_and_a_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, public) = keygen(d);
    #[cfg(unix)]
    assert_eq!(mode(&d.join(&key)), 0o600);
    let key_text = std::fs::read_to_string(d.join(&key)).unwrap();
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(format!("keys/{KID}.jwks.json"))).unwrap())
            .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["kid"], KID);
    assert_eq!(jwk["alg"], "RS512");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["e"], "AQAB");
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 512, "RSA 4096");

    if let Some(derived) = openssl(d, &["pkey", "-in", &key, "-pubout"]) {
        assert_eq!(
            derived.stdout.trim(),
            std::fs::read_to_string(d.join(&public)).unwrap().trim(),
            "the public key file belongs to the private key"
        );
        let modulus = openssl(d, &["rsa", "-pubin", "-in", &public, "-noout", "-modulus"]).unwrap();
        let hex: String = n.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(
            modulus.stdout.trim(),
            format!("Modulus={hex}"),
            "the JWKS holds that key"
        );
    }

    let again = run(d, &["keygen", "--kid", KID, "--out", "keys"]);
    assert_eq!(again.code, 64, "{}", again.all());
    assert!(again.all().contains("--force"), "{}", again.all());

    let odd = run(d, &["keygen", "--kid", "mykey", "--out", "other"]);
    assert_eq!(odd.code, 0, "{}", odd.all());
    assert!(
        odd.stderr.contains("warning") && odd.stderr.contains("<Supplier>-<Environment>-<rotation>"),
        "{}",
        odd.all()
    );
}

#[test]
fn csr_follows_the_naming_convention_and_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(
        d,
        &[
            "csr",
            "--environment",
            "int",
            "--ods",
            "X26",
            "--supplier",
            "examplesupplier",
            "--out",
            "req",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let fqdn = "BaRS-INT-X26.examplesupplier.thirdparty.nhs.uk";
    for expected in [
        "35.197.254.55",
        "35.246.55.143",
        "Endpoint Catalogue",
        "DNS",
        "bars-receiver check",
    ] {
        assert!(
            out.stdout.contains(expected),
            "next steps lack {expected}: {}",
            out.stdout
        );
    }
    assert!(
        !out.stdout.contains("34.89.0.111"),
        "INT steps name only INT addresses"
    );
    #[cfg(unix)]
    assert_eq!(mode(&d.join(format!("req/{fqdn}.key"))), 0o600);

    let csr = format!("req/{fqdn}.csr");
    if let Some(text) = openssl(d, &["req", "-in", &csr, "-verify", "-noout", "-text"]) {
        assert_eq!(text.code, 0, "{}", text.all());
        assert!(
            text.all().contains("verify OK"),
            "signature valid: {}",
            text.all()
        );
        assert!(
            text.stdout.contains(&format!("Subject: CN = {fqdn}\n")),
            "{}",
            text.stdout
        );
        assert!(text.stdout.contains(&format!("DNS:{fqdn}")), "{}", text.stdout);
        assert!(text.stdout.contains("Public-Key: (2048 bit)"), "{}", text.stdout);
        assert!(
            !text.stdout.to_ascii_lowercase().contains("email"),
            "{}",
            text.stdout
        );
        // The key written is the one the CSR is for.
        let from_csr = openssl(d, &["req", "-in", &csr, "-noout", "-pubkey"]).unwrap();
        let from_key = openssl(d, &["pkey", "-in", &format!("req/{fqdn}.key"), "-pubout"]).unwrap();
        assert_eq!(from_csr.stdout, from_key.stdout);
    }

    let out = run(
        d,
        &[
            "csr",
            "--environment",
            "prod",
            "--ods",
            "rxx01",
            "--provider",
            "leedsth",
            "--out",
            "req",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("BaRS-PROD-RXX01.leedsth.nhs.uk"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("34.89.0.111") && out.stdout.contains("34.89.69.6"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("35.197.254.55"), "{}", out.stdout);
    if let Some(text) = openssl(
        d,
        &[
            "req",
            "-in",
            "req/BaRS-PROD-RXX01.leedsth.nhs.uk.csr",
            "-verify",
            "-noout",
            "-text",
        ],
    ) {
        assert!(
            text.stdout
                .contains("Subject: CN = BaRS-PROD-RXX01.leedsth.nhs.uk\n"),
            "{}",
            text.stdout
        );
        assert!(
            text.stdout.contains("DNS:BaRS-PROD-RXX01.leedsth.nhs.uk"),
            "{}",
            text.stdout
        );
    }
}

#[test]
fn csr_refuses_bad_name_parts_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, flag) in [
        (vec!["--ods", "X", "--supplier", "s"], "--ods"),
        (
            vec!["--ods", "X26", "--supplier", "evil.example.com"],
            "--supplier",
        ),
        (vec!["--ods", "X26", "--provider", "-x"], "--provider"),
        (
            vec!["--ods", "X26", "--supplier", "s", "--provider", "p"],
            "--provider",
        ),
        (vec!["--ods", "X26"], "--supplier"),
    ] {
        let mut all = vec!["csr", "--environment", "int"];
        all.extend(args.iter());
        let out = run(d, &all);
        assert_eq!(out.code, 64, "{args:?}: {}", out.all());
        assert!(out.all().contains(flag), "{args:?}: {}", out.all());
    }
    let out = run(
        d,
        &["csr", "--environment", "dev", "--ods", "X26", "--supplier", "s"],
    );
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(std::fs::read_dir(d).unwrap().next().is_none(), "nothing written");
}

fn sender_config(d: &Path, token_url: &str, base_url: &str, extra: &str) -> String {
    let path = d.join("sender.toml");
    std::fs::write(
        &path,
        format!(
            "environment = \"dev\"\n[sender]\nprivate_key = \"keys/{KID}.pem\"\nkid = \"{KID}\"\ntoken_url = \"{token_url}\"\nbase_url = \"{base_url}\"\nods_code = \"X26\"\nretry_backoff = \"10ms\"\n{extra}\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn jwt_prints_a_verifiable_assertion_and_what_it_claims() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, public) = keygen(d);
    let token_url = "https://int.api.service.nhs.uk/oauth2/token";
    let config = sender_config(
        d,
        token_url,
        "https://int.api.service.nhs.uk/booking-and-referral/FHIR/R4",
        "",
    );
    let out = collect(
        bin(d)
            .args(["jwt", "--config", &config])
            .env("BARS_SENDER__API_KEY", API_KEY)
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let jwt = out.stdout.lines().next().unwrap().to_owned();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS512");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], KID);
    assert_eq!(claims["iss"], API_KEY);
    assert_eq!(claims["sub"], API_KEY);
    assert_eq!(claims["aud"], token_url);
    assert!(Uuid::try_parse(claims["jti"].as_str().unwrap()).is_ok());
    for shown in [
        r#""alg": "RS512""#,
        r#""aud": "https://int.api.service.nhs.uk/oauth2/token""#,
        "expires in",
    ] {
        assert!(
            out.stdout.contains(shown),
            "decoded output lacks {shown}: {}",
            out.stdout
        );
    }
    if openssl(d, &["version"]).is_some() {
        std::fs::write(d.join("input"), format!("{}.{}", parts[0], parts[1])).unwrap();
        std::fs::write(d.join("sig"), URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let verify = openssl(
            d,
            &[
                "dgst",
                "-sha512",
                "-verify",
                &public,
                "-signature",
                "sig",
                "input",
            ],
        )
        .unwrap();
        assert!(verify.stdout.contains("Verified OK"), "{}", verify.all());
    }

    // More than five minutes is refused, naming the key.
    let config = sender_config(d, token_url, "https://x.nhs.uk/R4", "assertion_lifetime = \"6m\"");
    let out = collect(
        bin(d)
            .args(["jwt", "--config", &config])
            .env("BARS_SENDER__API_KEY", API_KEY)
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(
        out.stderr.contains("sender.assertion_lifetime") && out.stderr.contains("5 minutes"),
        "{}",
        out.all()
    );
}

#[cfg(unix)]
#[test]
fn a_world_readable_key_is_warned_about_and_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, _) = keygen(d);
    std::fs::set_permissions(d.join(&key), std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = sender_config(
        d,
        "https://int.api.service.nhs.uk/oauth2/token",
        "https://x.nhs.uk/R4",
        "",
    );
    let out = collect(
        bin(d)
            .args(["jwt", "--config", &config])
            .env("BARS_SENDER__API_KEY", API_KEY)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("readable by every user") && out.stderr.contains("chmod 600"),
        "{}",
        out.stderr
    );
    let key_text = std::fs::read_to_string(d.join(&key)).unwrap();
    let body_line = key_text.lines().nth(1).unwrap();
    assert!(!out.all().contains(body_line), "key material printed");
}

#[test]
fn sender_commands_need_a_sender_section_and_a_token_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("no-sender.toml"), "environment = \"int\"\n").unwrap();
    for command in ["jwt", "token"] {
        let out = run(d, &[command, "--config", "no-sender.toml"]);
        assert_eq!(out.code, 64, "{}", out.all());
        assert!(out.stderr.contains("[sender]"), "{}", out.all());
        // The embedded development configuration uses the sandbox: no token there.
        let out = run(d, &[command]);
        assert_eq!(out.code, 64, "{}", out.all());
        assert!(out.stderr.contains("sandbox"), "{}", out.all());
    }
    let out = run(d, &["send", "--target", "no-bar", "x.json"]);
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(out.stderr.contains("--target"), "{}", out.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_a_token_or_api_m_s_refusal_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, public) = keygen(d);
    let public_pem = std::fs::read_to_string(d.join(&public)).unwrap();
    let mock = MockApim::start(API_KEY, KID, &public_pem).await;
    let config = sender_config(d, &mock.token_url(), &mock.base_url(), "");
    let env = [("BARS_SENDER__API_KEY", API_KEY)];
    let out = run_async(d, &["token", "--config", &config], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let token: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(token["access_token"], mock.state.issued()[0].as_str());
    assert_eq!(token["expires_in"], 599);
    assert_eq!(token["token_type"], "Bearer");
    assert!(
        mock.state.assertion_errors().is_empty(),
        "{:?}",
        mock.state.assertion_errors()
    );

    // API-M knows another kid: its description reaches the user unchanged.
    let other = MockApim::start(API_KEY, "Other-INT-1", &public_pem).await;
    let config = sender_config(d, &other.token_url(), &other.base_url(), "");
    let out = run_async(d, &["token", "--config", &config], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("Invalid 'kid' header in JWT - no matching public key"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_the_response_or_the_decoded_operation_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, public) = keygen(d);
    let mock = MockApim::start(API_KEY, KID, &std::fs::read_to_string(d.join(&public)).unwrap()).await;
    let config = sender_config(d, &mock.token_url(), &mock.base_url(), "");
    let message = common::minimal_message();
    std::fs::write(d.join("message.json"), message.to_string()).unwrap();
    let env = [("BARS_SENDER__API_KEY", API_KEY)];
    let correlation_id = Uuid::new_v4().to_string();
    let target = "https://fhir.nhs.uk/Id/dos-service-id|2000072489";
    let args = [
        "send",
        "--config",
        &config,
        "--target",
        target,
        "--correlation-id",
        &correlation_id,
        "message.json",
    ];
    let out = run_async(d, &args, &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let echoed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(echoed["id"], message["id"]);
    let requests = mock.state.api_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("x-correlation-id"),
        Some(correlation_id.as_str())
    );
    let request_id = requests[0].header("x-request-id").unwrap().to_owned();
    assert!(
        out.stderr.contains(&request_id),
        "the ids are shown: {}",
        out.stderr
    );
    assert_eq!(
        requests[0].json_header("nhsd-target-identifier")["value"],
        "2000072489"
    );

    mock.state.script([ApiReply::Answer {
        status: 404,
        body: outcome(
            "PROXY_NOT_FOUND",
            "not-found",
            "The target endpoint does not exist in the Endpoint Catalogue.",
        ),
        echo_ids: true,
    }]);
    let out = run_async(d, &args, &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("HTTP 404 PROXY_NOT_FOUND (not-found): The target endpoint does not exist"),
        "{}",
        out.stderr
    );
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["resourceType"], "OperationOutcome");
    assert_eq!(mock.state.api_requests().len(), 2, "a 404 is not retried");

    // A resend of a message whose outcome is unknown keeps its X-Request-Id.
    let mut resend = args.to_vec();
    resend.splice(1..1, ["--request-id", request_id.as_str()]);
    let out = run_async(d, &resend, &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        mock.state.api_requests()[2].header("x-request-id"),
        Some(request_id.as_str())
    );
}

#[test]
fn check_reports_the_sender_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(run(d, &["dev-pki"]).code, 0);
    let (key, _) = keygen(d);
    let check = |kid: &str| {
        collect(
            bin(d)
                .arg("check")
                .env("BARS_SENDER__MODE", "signed-jwt")
                .env("BARS_SENDER__API_KEY", API_KEY)
                .env("BARS_SENDER__PRIVATE_KEY", &key)
                .env("BARS_SENDER__KID", kid)
                .env(
                    "BARS_SENDER__TOKEN_URL",
                    "https://int.api.service.nhs.uk/oauth2/token",
                )
                .env(
                    "BARS_SENDER__BASE_URL",
                    "https://int.api.service.nhs.uk/booking-and-referral/FHIR/R4",
                )
                .output()
                .unwrap(),
        )
    };
    let out = check(KID);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("sender.private_key: RSA 4096 bits"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("ok      sender.kid: {KID}")),
        "{}",
        out.stdout
    );

    let out = check("odd kid");
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(out.stdout.contains("sender.kid"), "{}", out.stdout);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join(&key), std::fs::Permissions::from_mode(0o604)).unwrap();
        let out = check(KID);
        assert_eq!(out.code, 0, "a warning, not an error: {}", out.all());
        assert!(
            out.stdout.contains("WARNING sender.private_key") && out.stdout.contains("chmod 600"),
            "{}",
            out.stdout
        );
    }
}
