//! The BaRS API client: every header bars-spec §3 requires, the bearer token, and bounded
//! retries (same `X-Request-Id`) of transport failures and of answers that do not echo the
//! ids. A 4xx is final and never retried.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use serde_json::{Value, json};
use uuid::Uuid;

use super::assertion::AssertionSigner;
use super::cache::TokenProvider;
use super::error::{SendError, SetupError};
use super::key::SigningKey;
use super::outcome::OutcomeError;
use super::request::{BarsRequest, BarsResponse};
use super::token::{TokenError, snippet};
use super::transport::{RawResponse, Transport};
use crate::config::{SenderAuth, SenderSettings};
use crate::fhir::{
    NHSD_END_USER_ORGANISATION, NHSD_REQUESTING_PRACTITIONER, NHSD_REQUESTING_SOFTWARE,
    NHSD_TARGET_IDENTIFIER, X_CORRELATION_ID, X_REQUEST_ID, encode_header_json,
};
use crate::handler::ReplyTo;

/// Sends BaRS requests through the BaRS API. Cheap to clone; clones share the connection
/// pool and the token cache.
#[derive(Clone, Debug)]
pub struct BarsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base_url: String,
    accept: HeaderValue,
    end_user_organisation: HeaderValue,
    requesting_software: HeaderValue,
    max_attempts: u32,
    retry_backoff: Duration,
    transport: Transport,
    tokens: TokenProvider,
}

impl BarsClient {
    /// A client for `[sender]`: loads the signing key (warning when the file is readable by
    /// everyone) and prepares the headers. Must be called inside a Tokio runtime.
    pub fn new(settings: &SenderSettings) -> Result<Self, SetupError> {
        let transport = Transport::new(settings.ca_file.as_deref(), settings.timeout)?;
        let tokens = match &settings.auth {
            SenderAuth::Sandbox => TokenProvider::sandbox(),
            SenderAuth::SignedJwt(apim) => {
                let key = SigningKey::load(&apim.private_key, &apim.kid)?;
                let signer = AssertionSigner::new(
                    Arc::new(key),
                    apim.api_key.clone(),
                    apim.token_url.clone(),
                    apim.assertion_lifetime,
                )?;
                TokenProvider::signed(signer, transport.clone())
            }
        };
        let header = |value: &Value| {
            // Standard base64 is always a valid header value.
            HeaderValue::from_str(&encode_header_json(value)).map_err(|source| SetupError::Header {
                key: "sender",
                source,
            })
        };
        let mut organisation = json!({
            "resourceType": "Organization",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": settings.ods_code}],
        });
        if let Some(name) = &settings.organisation_name {
            organisation["name"] = json!(name);
        }
        let mut software = json!({
            "resourceType": "Device",
            "deviceName": {"name": settings.software_name, "type": "manufacturer-name"},
            "version": {"value": settings.software_version},
        });
        if let Some((system, value)) = &settings.software_identifier {
            software["identifier"] = json!([{"system": system, "value": value}]);
        }
        let accept = HeaderValue::from_str(&format!(
            "application/fhir+json; version={}",
            settings.bars_version
        ))
        .map_err(|source| SetupError::Header {
            key: "sender.bars_version",
            source,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                base_url: settings.base_url.trim_end_matches('/').to_owned(),
                accept,
                end_user_organisation: header(&organisation)?,
                requesting_software: header(&software)?,
                max_attempts: settings.max_attempts.max(1),
                retry_backoff: settings.retry_backoff,
                transport,
                tokens,
            }),
        })
    }

    /// The token provider (for `bars-receiver token`, and to share with other clients).
    pub fn tokens(&self) -> &TokenProvider {
        &self.inner.tokens
    }

    /// The assertion signer, unless in sandbox mode.
    pub fn signer(&self) -> Option<&AssertionSigner> {
        self.inner.tokens.signer()
    }

    /// `POST /$process-message` to `reply_to`'s sender: an asynchronous reply in the same
    /// conversation (same `X-Correlation-Id`, new `X-Request-Id`).
    pub async fn reply(&self, reply_to: &ReplyTo, bundle: Value) -> Result<BarsResponse, SendError> {
        self.send(
            BarsRequest::process_message(reply_to.target.clone(), bundle)
                .with_correlation_id(reply_to.correlation_id),
        )
        .await
    }

    /// Sends one request with a new `X-Request-Id` (unless the request carries one), retrying transport failures and answers
    /// missing the echoed ids (same `X-Request-Id`, up to `sender.max_attempts`).
    pub async fn send(&self, request: BarsRequest) -> Result<BarsResponse, SendError> {
        let inner = &self.inner;
        let request_id = request.request_id.unwrap_or_else(Uuid::new_v4);
        let correlation_id = request.correlation_id.unwrap_or_else(Uuid::new_v4);
        let body = match &request.body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| SendError::Request(e.to_string()))?),
            None => Bytes::new(),
        };
        let url = format!("{}{}", inner.base_url, request.path_and_query());
        let mut backoff = inner.retry_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let bearer = inner.tokens.bearer().await?;
            let http_request =
                self.build(&request, &url, request_id, correlation_id, bearer.as_ref(), &body)?;
            let outcome = inner.transport.send(http_request).await;
            let span = (request_id, correlation_id, attempt);
            let retry_reason = match outcome {
                Err(e) => {
                    log_attempt(span, &request, None, &e.0);
                    if attempt >= inner.max_attempts {
                        return Err(SendError::Transport {
                            attempts: attempt,
                            message: e.0,
                        });
                    }
                    e.0
                }
                Ok(response) => {
                    let ids_echoed = echoed(&response, X_REQUEST_ID, request_id)
                        && echoed(&response, X_CORRELATION_ID, correlation_id);
                    let status = response.status;
                    log_attempt(
                        span,
                        &request,
                        Some(status),
                        if ids_echoed { "" } else { "ids not echoed" },
                    );
                    // A retry of an attempt whose answer was lost: "already processed"
                    // means it got through the first time.
                    if attempt > 1 && status == 409 && ids_echoed && is_duplicate(&response) {
                        return Ok(BarsResponse {
                            status,
                            request_id,
                            correlation_id,
                            body: parse_body(&response.body).unwrap_or(Value::Null),
                            location: None,
                            attempts: attempt,
                            already_received: true,
                        });
                    }
                    if (400..500).contains(&status) {
                        if status == 401 {
                            if let Some(token) = &bearer {
                                inner.tokens.invalidate(token).await;
                            }
                        }
                        return Err(refusal(&response));
                    }
                    let body_json = parse_body(&response.body);
                    let no_outcome = status >= 500
                        && body_json
                            .as_ref()
                            .is_none_or(|b| OutcomeError::parse(status, b).is_none());
                    let reason = if !ids_echoed {
                        "the response did not echo X-Request-Id and X-Correlation-Id".to_owned()
                    } else if no_outcome {
                        format!("HTTP {status} without an OperationOutcome")
                    } else if (200..300).contains(&status) {
                        return Ok(BarsResponse {
                            status,
                            request_id,
                            correlation_id,
                            body: body_json.unwrap_or(Value::Null),
                            location: header(&response, http::header::LOCATION.as_str()),
                            attempts: attempt,
                            already_received: false,
                        });
                    } else {
                        return Err(refusal(&response));
                    };
                    if attempt >= inner.max_attempts {
                        return Err(if ids_echoed {
                            refusal(&response)
                        } else {
                            SendError::MissingIds {
                                attempts: attempt,
                                status,
                            }
                        });
                    }
                    reason
                }
            };
            tracing::info!(%request_id, attempt, reason = %retry_reason, delay = ?backoff, "retrying with the same X-Request-Id");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    fn build(
        &self,
        request: &BarsRequest,
        url: &str,
        request_id: Uuid,
        correlation_id: Uuid,
        bearer: Option<&super::Secret<String>>,
        body: &Bytes,
    ) -> Result<http::Request<Full<Bytes>>, SendError> {
        let inner = &self.inner;
        let mut builder = http::Request::builder()
            .method(request.method.as_http())
            .uri(url)
            .header(X_REQUEST_ID, request_id.to_string())
            .header(X_CORRELATION_ID, correlation_id.to_string())
            .header(http::header::ACCEPT, inner.accept.clone())
            .header(NHSD_END_USER_ORGANISATION, inner.end_user_organisation.clone())
            .header(NHSD_REQUESTING_SOFTWARE, inner.requesting_software.clone());
        if let Some(target) = &request.target {
            builder = builder.header(
                NHSD_TARGET_IDENTIFIER,
                encode_header_json(&json!({"system": target.system, "value": target.value})),
            );
        }
        if let Some(practitioner) = &request.practitioner {
            builder = builder.header(NHSD_REQUESTING_PRACTITIONER, encode_header_json(practitioner));
        }
        if let Some(use_context) = &request.use_context {
            builder = builder.header("use-context", use_context);
        }
        if let Some(token) = bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                SendError::Token(TokenError::Malformed {
                    status: 200,
                    detail: "access_token is not a valid header value".into(),
                })
            })?;
            value.set_sensitive(true);
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        if request.body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, request.content_type());
        }
        builder
            .body(Full::new(body.clone()))
            .map_err(|e| SendError::Request(e.to_string()))
    }
}

fn log_attempt(
    (request_id, correlation_id, attempt): (Uuid, Uuid, u32),
    request: &BarsRequest,
    status: Option<u16>,
    note: &str,
) {
    tracing::info!(
        %request_id,
        %correlation_id,
        attempt,
        method = %request.method.as_http(),
        path = %request.path,
        status,
        note,
        "BaRS API request"
    );
}

fn echoed(response: &RawResponse, name: &str, id: Uuid) -> bool {
    header(response, name).is_some_and(|v| Uuid::try_parse(v.trim()).is_ok_and(|v| v == id))
}

fn header(response: &RawResponse, name: &str) -> Option<String> {
    response
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn parse_body(body: &[u8]) -> Option<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// An error answer: the OperationOutcome when there is one.
/// Whether a 409 says the message was already processed (issue type `duplicate`).
fn is_duplicate(response: &RawResponse) -> bool {
    parse_body(&response.body)
        .and_then(|b| OutcomeError::parse(response.status, &b))
        .is_some_and(|o| o.issue.as_deref() == Some("duplicate"))
}

fn refusal(response: &RawResponse) -> SendError {
    match parse_body(&response.body).and_then(|b| OutcomeError::parse(response.status, &b)) {
        Some(outcome) => SendError::Refused(Box::new(outcome)),
        None => SendError::Status {
            status: response.status,
            body: snippet(&response.body),
        },
    }
}
