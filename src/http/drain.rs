//! Delivering every answer to a client that sends its whole body before it reads (Python
//! `requests`, many Java clients). Over HTTP/1.1, hyper closes a connection whose request
//! body was left unread when the answer is sent; the unread bytes then make the kernel
//! reset the connection, and a reset discards the answer the client has not read yet. A
//! refusal made before the body was read (an unknown path, a bad id or target, 501, 413)
//! would reach such a client as a transport failure instead of its OperationOutcome.
//!
//! So the body left unread when the answer is ready is read to its end and thrown away
//! before the answer goes, and the connection stays usable. What that costs is bounded: a
//! body is drained only up to [`DRAIN_FACTOR`] times `http.max_body` in all (counting what
//! the pipeline read), so that a sender a little over the limit still learns it was 413,
//! and only until the request's deadline; nothing drained is kept in memory. A body that
//! declares more, or goes past either bound, is not read further and the answer says
//! `Connection: close`. A client that asked for `100-continue` and was not told to continue
//! (nothing asked for the body) has sent none yet: it is answered at once, without inviting
//! the upload. h2 needs none of this: an early answer
//! is followed by `RST_STREAM(NO_ERROR)`, which clients read as "answered, stop sending",
//! and its flow control bounds what a client can send meanwhile.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Version, header};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

/// A refused body is drained up to this many times `http.max_body`, counting what was read.
pub(crate) const DRAIN_FACTOR: u64 = 2;

/// The part of a request's body that nothing read, once its answer is ready.
pub(crate) struct Unread {
    /// `None` when there is nothing to deliver around (h2, no body).
    shared: Option<Arc<Shared>>,
    declared: Option<u64>,
    expects_continue: bool,
}

#[derive(Default)]
struct Shared {
    /// The body, put back here when the pipeline drops it before its end.
    left: Mutex<Option<Body>>,
    /// Bytes of it the pipeline read.
    read: AtomicU64,
    /// Whether the pipeline asked for it at all (which makes hyper send `100 Continue`).
    polled: AtomicBool,
}

/// Replaces the body of an HTTP/1 request with one that gives itself back, if dropped before
/// its end, to the returned [`Unread`].
pub(crate) fn track(req: Request) -> (Request, Unread) {
    let (parts, body) = req.into_parts();
    let http1 = matches!(parts.version, Version::HTTP_10 | Version::HTTP_11);
    if !http1 || body.is_end_stream() {
        let none = Unread {
            shared: None,
            declared: None,
            expects_continue: false,
        };
        return (Request::from_parts(parts, body), none);
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    let shared = Arc::new(Shared::default());
    let tracked = Tracked {
        inner: Some(body),
        shared: shared.clone(),
    };
    let unread = Unread {
        shared: Some(shared),
        declared,
        expects_continue,
    };
    (Request::from_parts(parts, Body::new(tracked)), unread)
}

impl Unread {
    /// Drains what is left of the body (within `max_body` × [`DRAIN_FACTOR`] and `until`),
    /// then gives `response` back, marked `Connection: close` when the body could not be
    /// drained to its end.
    pub(crate) async fn settle(self, mut response: Response, max_body: usize, until: Instant) -> Response {
        let Some(shared) = self.shared else {
            return response;
        };
        let left = shared.left.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(body) = left else {
            return response;
        };
        let cap = (max_body as u64).saturating_mul(DRAIN_FACTOR);
        let read = shared.read.load(Ordering::Relaxed);
        let drained = if self.expects_continue && !shared.polled.load(Ordering::Relaxed) {
            // The client waits for the `100 Continue` that only reading the body sends:
            // answering now spares it the upload.
            Err("the client is waiting for 100-continue")
        } else if self.declared.is_some_and(|length| length > cap) {
            Err("its declared length is over the drain limit")
        } else {
            drain(body, read, cap, until).await
        };
        if let Err(why) = drained {
            tracing::debug!(
                status = response.status().as_u16(),
                "request body not read to its end ({why}): closing the connection after the answer"
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Reads `body` to its end and throws it away, within `cap` bytes in all (`read` already
/// counted) and `until`.
async fn drain(mut body: Body, mut read: u64, cap: u64, until: Instant) -> Result<(), &'static str> {
    loop {
        match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) => return Err("the request deadline passed"),
            Ok(None) => return Ok(()),
            Ok(Some(Err(_))) => return Err("the upload broke off"),
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read = read.saturating_add(data.len() as u64);
                    if read > cap {
                        return Err("it is over the drain limit");
                    }
                }
            }
        }
    }
}

/// A request body that counts what is read of it and, dropped before its end, puts itself
/// back for [`Unread::settle`].
struct Tracked {
    inner: Option<Body>,
    shared: Arc<Shared>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.shared.polled.store(true, Ordering::Relaxed);
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.shared.read.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            // The end, or a broken upload: nothing is left to drain either way.
            Poll::Ready(None | Some(Err(_))) => this.inner = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take().filter(|b| !b.is_end_stream()) {
            *self.shared.left.lock().unwrap_or_else(PoisonError::into_inner) = Some(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(version: Version, headers: &[(&str, &str)], body: Body) -> Request {
        let mut builder = http::Request::builder().version(version).uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body).unwrap()
    }

    /// A body of `left` chunks of `size` bytes, then its end; `None` never sends anything.
    struct Chunks {
        left: Option<usize>,
        size: usize,
        /// Chunks taken from it so far.
        taken: Arc<AtomicU64>,
    }

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            match self.left {
                None => Poll::Pending,
                Some(0) => Poll::Ready(None),
                Some(n) => {
                    self.left = Some(n - 1);
                    self.taken.fetch_add(1, Ordering::Relaxed);
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; self.size])))))
                }
            }
        }
    }

    fn streamed(chunks: usize, size: usize) -> Body {
        counted(chunks, size).0
    }

    fn counted(chunks: usize, size: usize) -> (Body, Arc<AtomicU64>) {
        let taken = Arc::new(AtomicU64::new(0));
        let body = Body::new(Chunks {
            left: Some(chunks),
            size,
            taken: taken.clone(),
        });
        (body, taken)
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn ok() -> Response {
        Response::new(Body::empty())
    }

    fn closes(response: &Response) -> bool {
        response
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v == "close")
    }

    #[tokio::test]
    async fn drains_an_unread_body_and_keeps_the_connection() {
        let (body, taken) = counted(4, 1000);
        let (req, unread) = track(request(Version::HTTP_11, &[], body));
        drop(req);
        assert_eq!(taken.load(Ordering::Relaxed), 0);
        let response = unread.settle(ok(), 4000, later()).await;
        assert_eq!(taken.load(Ordering::Relaxed), 4, "read to its end");
        assert!(!closes(&response));
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_needs_nothing() {
        let (req, unread) = track(request(Version::HTTP_11, &[], streamed(2, 10)));
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 20);
        assert!(unread.shared.as_ref().unwrap().left.lock().unwrap().is_none());
        assert!(!closes(&unread.settle(ok(), 1024, later()).await));
    }

    #[tokio::test]
    async fn counts_what_was_read_against_the_limit() {
        // 10 chunks of 100 bytes with a 400-byte limit: 800 may be drained in all, and the
        // 300 bytes read first count.
        let (req, unread) = track(request(Version::HTTP_11, &[], streamed(10, 100)));
        let mut body = req.into_body();
        for _ in 0..3 {
            body.frame().await.unwrap().unwrap();
        }
        drop(body);
        assert_eq!(unread.shared.as_ref().unwrap().read.load(Ordering::Relaxed), 300);
        assert!(closes(&unread.settle(ok(), 400, later()).await));
        let (req, unread) = track(request(Version::HTTP_11, &[], streamed(8, 100)));
        drop(req);
        assert!(
            !closes(&unread.settle(ok(), 400, later()).await),
            "exactly twice the limit"
        );
    }

    #[tokio::test]
    async fn never_drains_past_the_deadline() {
        let endless = Body::new(Chunks {
            left: None,
            size: 0,
            taken: Arc::default(),
        });
        let (req, unread) = track(request(Version::HTTP_11, &[], endless));
        drop(req);
        let response = unread.settle(ok(), 1024, Instant::now()).await;
        assert!(closes(&response));
    }

    #[tokio::test]
    async fn answers_at_once_what_it_will_not_drain() {
        let continues = request(Version::HTTP_11, &[("expect", "100-continue")], streamed(1, 10));
        let (req, unread) = track(continues);
        drop(req);
        assert!(closes(&unread.settle(ok(), 1024, later()).await));
        // Once the body was asked for, the client got its `100 Continue` and is sending.
        let continues = request(Version::HTTP_11, &[("expect", "100-continue")], streamed(3, 10));
        let (req, unread) = track(continues);
        let mut body = req.into_body();
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert!(!closes(&unread.settle(ok(), 1024, later()).await));
        let too_long = request(Version::HTTP_11, &[("content-length", "2049")], streamed(1, 10));
        let (req, unread) = track(too_long);
        drop(req);
        assert!(closes(&unread.settle(ok(), 1024, later()).await));
    }

    #[tokio::test]
    async fn leaves_h2_bodies_to_h2() {
        let (req, unread) = track(request(Version::HTTP_2, &[], streamed(1, 10)));
        drop(req);
        assert!(unread.shared.is_none());
        assert!(!closes(&unread.settle(ok(), 1024, later()).await));
    }
}
