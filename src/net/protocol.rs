//! HTTP over an admitted connection: HTTP/1.1 or h2, as ALPN settled in the handshake, with
//! the frontend's limits on request heads.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioTimer;

use super::accept::Graceful;

/// The ALPN protocol id of HTTP/2 over TLS.
const H2: &[u8] = b"h2";
/// hyper refuses an HTTP/1 read buffer smaller than this (configuration keeps
/// `http.max_header_bytes` above it; this keeps a library caller's value from panicking).
const MIN_H1_BUFFER: usize = 8192;
/// Concurrent h2 streams per connection.
const MAX_H2_STREAMS: u32 = 256;

/// The protocol of a connection, from the ALPN protocol its handshake negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    /// h2 when ALPN chose it; otherwise HTTP/1.1, also without ALPN, since h2 over TLS is
    /// always negotiated (RFC 9113, section 3.3). Nothing is read to guess: a guess reads
    /// the first bytes and hands them back in front of the stream, and HTTP/1's read
    /// buffer, then asked for more than its first 8 KiB, doubles to 16 KiB for the
    /// connection's whole life.
    pub(super) fn from_alpn(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(H2) => Self::Http2,
            _ => Self::Http1,
        }
    }
}

/// One connection's HTTP, on the heap: the connection's task keeps only the pointer.
pub(super) enum HttpConnection<I, S: hyper::service::HttpService<hyper::body::Incoming>, E> {
    Http1(Pin<Box<http1::Connection<I, S>>>),
    Http2(Pin<Box<http2::Connection<I, S, E>>>),
}

/// Serves `io` with `service` in `protocol`. A request head (start line and header fields,
/// as hyper counts them for HTTP/1.1; the header list, as h2 counts it) longer than
/// `max_header_bytes` is answered 431.
pub(super) fn serve<I, S, E, B>(
    protocol: Protocol,
    io: I,
    service: S,
    executor: E,
    max_header_bytes: usize,
) -> HttpConnection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    match protocol {
        // The time to a complete request head is bounded by the connection's idle timers
        // (`Slot::serve`), for HTTP/1.1 and h2 alike. hyper's own header timeout (30 s once
        // a timer is set) is off: it also runs while a keep-alive connection waits for its
        // next request, and would close it before `listen.idle_timeout` (75 s by default).
        Protocol::Http1 => HttpConnection::Http1(Box::pin(
            http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .max_header_size(max_header_bytes)
                .max_buf_size(max_header_bytes.max(MIN_H1_BUFFER))
                .keep_alive(true)
                .serve_connection(io, service),
        )),
        Protocol::Http2 => HttpConnection::Http2(Box::pin(
            http2::Builder::new(executor)
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_H2_STREAMS)
                .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(20))
                .serve_connection(io, service),
        )),
    }
}

impl<I, S, E> Future for HttpConnection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    http1::Connection<I, S>: Graceful<Error = hyper::Error>,
    http2::Connection<I, S, E>: Graceful<Error = hyper::Error>,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Http1(conn) => conn.as_mut().poll(cx),
            Self::Http2(conn) => conn.as_mut().poll(cx),
        }
    }
}

impl<I, S, E> Graceful for HttpConnection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    http1::Connection<I, S>: Graceful<Error = hyper::Error>,
    http2::Connection<I, S, E>: Graceful<Error = hyper::Error>,
{
    type Error = hyper::Error;

    fn graceful_shutdown(self: Pin<&mut Self>) {
        match self.get_mut() {
            Self::Http1(conn) => conn.as_mut().graceful_shutdown(),
            Self::Http2(conn) => conn.as_mut().graceful_shutdown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_chooses_h2_only_when_negotiated() {
        assert_eq!(Protocol::from_alpn(Some(b"h2")), Protocol::Http2);
        assert_eq!(Protocol::from_alpn(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(Protocol::from_alpn(None), Protocol::Http1);
    }
}
