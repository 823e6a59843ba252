//! The accept loop the receiver and the dev proxy share: a cap on open connections, a pause
//! rather than a spin (and never an end) when accepting fails, and on shutdown a graceful
//! drain bounded by a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::activity::{Activity, Idle};

/// A connection that can be told to finish: requests in flight complete, no new ones start.
pub(crate) trait Graceful: Future<Output = Result<(), Self::Error>> {
    type Error;

    fn graceful_shutdown(self: Pin<&mut Self>);
}

/// hyper's connections (the dev proxy's, protocol detected by hyper-util).
impl<C: hyper_util::server::graceful::GracefulConnection> Graceful for C {
    type Error = <C as hyper_util::server::graceful::GracefulConnection>::Error;

    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::graceful::GracefulConnection::graceful_shutdown(self);
    }
}

/// The connections of one listener: the cap on how many are open at once, and the signal
/// that tells them to finish.
pub(crate) struct Connections {
    slots: Arc<Semaphore>,
    max: u32,
    drain: watch::Sender<bool>,
}

/// An accepted connection's place under the cap, held until its task ends.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    draining: watch::Receiver<bool>,
}

impl Connections {
    /// At most `max_connections` open at once (the drain counts them in a `u32`).
    pub(crate) fn new(max_connections: usize) -> Self {
        let max = u32::try_from(max_connections).unwrap_or(u32::MAX);
        Self {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
            drain: watch::Sender::new(false),
        }
    }

    /// Accepts from `listener` until `shutdown` resolves, then closes it. Each connection is
    /// handed to `admit` with its slot; `admit` returns the connection's task, which is
    /// spawned, or `None` when it refused the connection (which then closes, freeing its
    /// slot). At the cap, accepting waits for a slot.
    pub(crate) async fn accept<F, T>(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        mut admit: F,
    ) where
        F: FnMut(TcpStream, SocketAddr, Slot) -> Option<T>,
        T: Future<Output = ()> + Send + 'static,
    {
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off rather than spin; never end the loop.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let slot = Slot {
                _permit: permit,
                draining: self.drain.subscribe(),
            };
            if let Some(task) = admit(stream, addr, slot) {
                tokio::spawn(task);
            }
        }
    }

    /// Tells every open connection to finish what is in flight, and waits up to `grace` for
    /// them all to end.
    pub(crate) async fn drain(self, grace: Duration) {
        self.drain.send_replace(true);
        // Every connection task holds a slot until it ends: all slots back means all drained.
        if tokio::time::timeout(grace, self.slots.acquire_many(self.max))
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "grace period over; closing remaining connections"
            );
        }
    }
}

/// How long an admitted connection may live and idle (the receiver's connections; the dev
/// proxy has none of these).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetime {
    /// Closed gracefully after this long, whatever it is doing.
    pub(crate) max_age: Duration,
    /// Closed when no request has started this long after admission.
    pub(crate) first_request: Duration,
    /// Closed gracefully when no request has been in flight for this long.
    pub(crate) idle: Duration,
}

impl Slot {
    /// Serves `conn` until it ends. When the listener drains it is closed gracefully:
    /// requests in flight finish, no new ones start. An admitted connection of the receiver
    /// ([`Slot::serve_admitted`], with its lifetime and activity) is also closed once it
    /// reaches its age or its idle timeout; and when the drain finds it has not started its
    /// first request yet, that request (on its way, or held up by a slow handshake) is still
    /// served, within the first-request timeout. (Only the dev proxy serves connections
    /// without a receiver's lifetime.)
    #[cfg(feature = "dev-tools")]
    pub(crate) async fn serve<C: Graceful>(self, conn: Pin<&mut C>) -> Result<(), C::Error> {
        self.run(conn, None).await
    }

    /// Serves an admitted connection of the receiver: see [`Slot::serve`].
    pub(super) async fn serve_admitted<C: Graceful>(
        self,
        conn: Pin<&mut C>,
        lifetime: Lifetime,
        activity: &Activity,
    ) -> Result<(), C::Error> {
        self.run(conn, Some((lifetime, activity))).await
    }

    /// `conn` is pinned by the caller (on the heap, for the receiver): taken by value, each
    /// layer of futures between the connection's task and here would hold its own copy of
    /// the connection's few kilobytes for as long as the connection lives.
    async fn run<C: Graceful>(
        mut self,
        mut conn: Pin<&mut C>,
        lifetime: Option<(Lifetime, &Activity)>,
    ) -> Result<(), C::Error> {
        let age = async {
            match lifetime {
                Some((l, _)) => tokio::time::sleep(l.max_age).await,
                None => std::future::pending().await,
            }
        };
        let idle = async {
            match lifetime {
                Some((l, activity)) => activity.idle(l.first_request, l.idle).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(age, idle);
        tokio::select! {
            result = conn.as_mut() => return result,
            () = async {
                // The guard wait_for returns must not live across the select.
                let _ = self.draining.wait_for(|d| *d).await;
            } => {}
            () = &mut age => {
                tracing::debug!("connection reached listen.max_connection_age; closing it gracefully");
                conn.as_mut().graceful_shutdown();
                return conn.await;
            }
            why = &mut idle => return close_idle(conn, why, lifetime).await,
        }
        // Draining. A connection told to finish before its first request would be closed
        // unanswered (hyper closes a fresh HTTP/1 connection at once, and the protocol
        // detection gives up without a reply): wait for that request to start, then finish.
        if let Some((_, activity)) = lifetime {
            tokio::select! {
                result = conn.as_mut() => return result,
                () = activity.first_request() => {}
                why = &mut idle => return close_idle(conn, why, lifetime).await,
            }
        }
        conn.as_mut().graceful_shutdown();
        conn.await
    }
}

/// Closes a connection whose idle timer ran out: at once when it never started a request
/// (there is nothing to finish, and whatever it sent of a head is not a request yet),
/// gracefully between requests, waiting at most one more idle period for the peer.
async fn close_idle<C: Graceful>(
    mut conn: std::pin::Pin<&mut C>,
    why: Idle,
    lifetime: Option<(Lifetime, &Activity)>,
) -> Result<(), C::Error> {
    match why {
        Idle::BeforeFirstRequest => {
            tracing::debug!("no request within listen.first_request_timeout; closing the connection");
            Ok(())
        }
        Idle::BetweenRequests => {
            tracing::debug!("no request within listen.idle_timeout; closing the connection gracefully");
            conn.as_mut().graceful_shutdown();
            let bound = lifetime.map_or(Duration::ZERO, |(l, _)| l.idle);
            tokio::time::timeout(bound, conn).await.unwrap_or(Ok(()))
        }
    }
}
