//! What the national proxy does to receiver answers (bars-spec §1): a 503's body is replaced
//! by a generic one, a 500 without an OperationOutcome becomes a generic `REC_SERVER_ERROR`,
//! a 504 becomes 408 `REC_TIMEOUT`; everything else reaches the sender unchanged. And what
//! it answers when there is no answer to pass on.

use super::forward::Failure;
use super::outcome::ProxyOutcome;

/// The generic answer that replaces a receiver's, if the proxy replaces it.
pub(crate) fn rewrite(status: u16, body: &[u8]) -> Option<ProxyOutcome> {
    match status {
        503 => Some(ProxyOutcome::Unavailable),
        504 => Some(ProxyOutcome::Timeout),
        500 if !is_operation_outcome(body) => Some(ProxyOutcome::ServerError),
        _ => None,
    }
}

/// The answer when the receiver gave none.
pub(crate) fn on_failure(failure: &Failure) -> ProxyOutcome {
    match failure {
        Failure::TlsMa(_) => ProxyOutcome::TlsMaFailure,
        Failure::Timeout => ProxyOutcome::Timeout,
        Failure::Unreachable(_) | Failure::Broken(_) => ProxyOutcome::Unavailable,
        Failure::TooLarge => ProxyOutcome::ServerError,
    }
}

fn is_operation_outcome(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["resourceType"] == "OperationOutcome")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTCOME: &[u8] = br#"{"resourceType": "OperationOutcome", "issue": []}"#;

    #[test]
    fn rewrites_what_the_national_proxy_rewrites_and_nothing_else() {
        assert_eq!(rewrite(503, OUTCOME), Some(ProxyOutcome::Unavailable));
        assert_eq!(rewrite(503, b""), Some(ProxyOutcome::Unavailable));
        assert_eq!(rewrite(504, b"<html/>"), Some(ProxyOutcome::Timeout));
        assert_eq!(
            rewrite(500, b"<html>oops</html>"),
            Some(ProxyOutcome::ServerError)
        );
        assert_eq!(rewrite(500, b""), Some(ProxyOutcome::ServerError));
        assert_eq!(rewrite(500, OUTCOME), None, "a 500 OperationOutcome passes");
        for status in [200, 400, 403, 404, 408, 409, 422, 501] {
            assert_eq!(rewrite(status, b"anything"), None, "{status}");
        }
    }

    #[test]
    fn answers_for_missing_answers() {
        assert_eq!(on_failure(&Failure::Timeout), ProxyOutcome::Timeout);
        assert_eq!(
            on_failure(&Failure::TlsMa("alert".into())),
            ProxyOutcome::TlsMaFailure
        );
        assert_eq!(
            on_failure(&Failure::Unreachable("refused".into())),
            ProxyOutcome::Unavailable
        );
    }
}
