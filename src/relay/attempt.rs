//! One delivery attempt and what its answer means: 2xx (or a 409 `duplicate`: the upstream
//! already has it) is delivered; no answer, 408, 425, 429 and 5xx are worth retrying; any
//! other answer is a refusal that retrying will not change, so the message goes to the
//! dead letters for an operator.

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use crate::store::Delivery;
use crate::upstream::{Exchange, Outbound, Upstream};

/// Where the relayed messages go, after the upstream base URL.
const PROCESS_MESSAGE: &str = "/$process-message";

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    Delivered,
    Retry(String),
    Refused(String),
}

pub(super) async fn attempt(upstream: &Upstream, delivery: &Delivery) -> Verdict {
    // The stored headers carry the Idempotency-Key (the original X-Request-Id).
    let headers = &delivery.headers;
    let sent = upstream
        .send(Outbound {
            method: Method::POST,
            path: PROCESS_MESSAGE,
            query: None,
            headers,
            body: Bytes::from(delivery.body.clone()),
        })
        .await;
    match sent {
        Ok(reply) => judge(reply.status, &reply.body),
        Err(Exchange::TooLarge { status, .. }) => judge(status, b""),
        Err(e) => Verdict::Retry(e.to_string()),
    }
}

fn judge(status: u16, body: &[u8]) -> Verdict {
    let outcome: Option<Value> = serde_json::from_slice(body).ok();
    let issue = |key: &str| {
        outcome
            .as_ref()
            .and_then(|o| o["issue"][0][key].as_str().map(str::to_owned))
    };
    let described = || match issue("diagnostics") {
        Some(diagnostics) => format!("HTTP {status}: {diagnostics}"),
        None => format!("HTTP {status}"),
    };
    match status {
        200..=299 => Verdict::Delivered,
        409 if issue("code").as_deref() == Some("duplicate") => Verdict::Delivered,
        408 | 425 | 429 | 500..=599 => Verdict::Retry(described()),
        _ => Verdict::Refused(described()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_answers() {
        assert_eq!(judge(200, b""), Verdict::Delivered);
        assert_eq!(judge(202, b""), Verdict::Delivered);
        let dup =
            br#"{"resourceType":"OperationOutcome","issue":[{"code":"duplicate","diagnostics":"seen"}]}"#;
        assert_eq!(judge(409, dup), Verdict::Delivered);
        let conflict =
            br#"{"resourceType":"OperationOutcome","issue":[{"code":"conflict","diagnostics":"reused"}]}"#;
        assert_eq!(judge(409, conflict), Verdict::Refused("HTTP 409: reused".into()));
        assert_eq!(judge(503, b"down"), Verdict::Retry("HTTP 503".into()));
        assert!(matches!(judge(429, b""), Verdict::Retry(_)));
        assert!(matches!(judge(400, b""), Verdict::Refused(_)));
        assert!(matches!(judge(302, b""), Verdict::Refused(_)));
    }
}
