//! An error with its causes as one line of text, for messages and logs.

/// An error with its causes, for messages and logs: hyper's own Display is terse ("client
/// error (Connect)"), and an `io::Error` hides the error it wraps from `source()`. Socket
/// and protocol errors only, never key material.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
    }
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn names_every_cause_once_including_the_one_an_io_error_wraps() {
        let inner = std::io::Error::other("connection reset");
        assert_eq!(error_chain(&Outer(inner)), "outer: connection reset");
        let plain = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(error_chain(&plain), "gone");
    }
}
