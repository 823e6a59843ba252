//! `bars-receiver send`: posts a message bundle to `$process-message` through the BaRS API
//! and prints the answer, or the decoded OperationOutcome.

use std::path::Path;
use std::process::ExitCode;

use bars_receiver::sender::{BarsRequest, SendError};
use bars_receiver::{MessageBundle, TargetIdentifier};
use uuid::Uuid;

use super::apim::with_client;
use super::{EXIT_CONFIG, EXIT_RUNTIME};

pub(crate) struct SendArgs<'a> {
    pub(crate) config: Option<&'a Path>,
    pub(crate) target: &'a str,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) request_id: Option<Uuid>,
    pub(crate) use_context: Option<String>,
    pub(crate) file: &'a Path,
}

pub(crate) fn run(args: SendArgs<'_>) -> ExitCode {
    let Some(target) = TargetIdentifier::parse_token(args.target) else {
        eprintln!(
            "error: --target '{}' is not system|value, e.g. https://fhir.nhs.uk/Id/dos-service-id|2000072489",
            args.target
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let text = match std::fs::read_to_string(args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.file.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let bundle: serde_json::Value = match serde_json::from_str(&text) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: not JSON: {e}", args.file.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // A receiver would refuse it; say why now, but send anyway (testing a receiver's
    // refusals is a legitimate use).
    if let Err(e) = MessageBundle::parse(bundle.clone()) {
        eprintln!("warning: {}: {}", args.file.display(), e.diagnostics());
    }
    // A resend of a message whose outcome is unknown must reuse its X-Request-Id, so that the
    // receiver can answer it as the duplicate it may be.
    let request_id = args.request_id.unwrap_or_else(Uuid::new_v4);
    let correlation_id = args.correlation_id.unwrap_or_else(Uuid::new_v4);
    let mut request = BarsRequest::process_message(target, bundle)
        .with_request_id(request_id)
        .with_correlation_id(correlation_id);
    if let Some(use_context) = args.use_context {
        request = request.with_use_context(use_context);
    }
    with_client(args.config, async move |client| {
        eprintln!("X-Request-Id: {request_id}\nX-Correlation-Id: {correlation_id}");
        match client.send(request).await {
            Ok(response) => {
                eprintln!("HTTP {} after {} attempt(s)", response.status, response.attempts);
                if response.already_received {
                    eprintln!("already received: an earlier attempt got through; do not send it again");
                }
                outln!("{:#}", response.body);
                ExitCode::SUCCESS
            }
            Err(SendError::Refused(outcome)) => {
                eprintln!("error: {outcome}");
                eprintln!("code family: {:?}", outcome.family());
                outln!("{:#}", outcome.outcome);
                ExitCode::from(EXIT_RUNTIME)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}
