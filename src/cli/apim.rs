//! `bars-receiver jwt` and `bars-receiver token`: debugging an API-M key. `jwt` prints a
//! signed client assertion and what it says; `token` exchanges one for an access token.

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use bars_receiver::config::SenderSettings;
use bars_receiver::sender::{BarsClient, SetupError, TokenError};
use serde_json::json;

use super::{EXIT_CONFIG, EXIT_RUNTIME, logging};

/// `[sender]` of `config`, or of the embedded development configuration.
pub(crate) fn load_sender(config: Option<&Path>) -> Result<SenderSettings, ExitCode> {
    let loaded = match config {
        Some(path) => SenderSettings::load(path),
        None => SenderSettings::dev(),
    };
    loaded.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Loads the settings, starts a runtime and builds the client, reporting failures.
pub(crate) fn with_client(config: Option<&Path>, work: impl AsyncFnOnce(BarsClient) -> ExitCode) -> ExitCode {
    logging::init_stderr();
    let settings = match load_sender(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(runtime) = super::runtime(false) else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    runtime.block_on(async {
        match BarsClient::new(&settings) {
            Ok(client) => work(client).await,
            Err(e @ (SetupError::Key(_) | SetupError::Tls(_) | SetupError::Assertion(_))) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

pub(crate) fn jwt(config: Option<&Path>) -> ExitCode {
    with_client(config, async |client| {
        let Some(signer) = client.signer() else {
            eprintln!("error: sender.mode is sandbox: there is no client assertion to show");
            return ExitCode::from(EXIT_CONFIG);
        };
        let assertion = match signer.sign() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let (header, claims) = assertion.decoded();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        outln!("{}", assertion.jwt().expose());
        outln!();
        outln!("header: {header:#}");
        outln!("claims: {claims:#}");
        outln!(
            "expires in {} s (API-M accepts at most 300)",
            assertion.exp().saturating_sub(now)
        );
        outln!();
        outln!(
            "It verifies only with this public key ({} bits, from {}); the JWKS registered for kid {} must hold it:",
            signer.key().bits(),
            signer.key().origin().display(),
            signer.key().kid()
        );
        outln!("{:#}", signer.key().jwk());
        ExitCode::SUCCESS
    })
}

pub(crate) fn token(config: Option<&Path>) -> ExitCode {
    with_client(config, async |client| {
        let Some(signer) = client.signer() else {
            eprintln!("error: sender.mode is sandbox: the sandbox needs no token");
            return ExitCode::from(EXIT_CONFIG);
        };
        let url = signer.token_url().to_owned();
        let kid = signer.key().kid().to_owned();
        match client.tokens().fetch().await {
            Ok(token) => {
                eprintln!("token obtained from {url} with kid {kid}");
                outln!(
                    "{:#}",
                    json!({
                        "access_token": token.token.expose(),
                        "token_type": token.token_type,
                        "expires_in": token.expires_in.as_secs(),
                        "issued_at": token.issued_at,
                    })
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                if matches!(e, TokenError::Refused { .. }) {
                    eprintln!(
                        "hint: `bars-receiver jwt` shows the assertion sent and the public key it needs; \
                         compare kid {kid} and that key with what is registered for your API-M application"
                    );
                }
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}
