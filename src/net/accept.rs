//! The accept loop the receiver and the dev proxy share: a cap on open connections, a pause
//! rather than a spin (and never an end) when accepting fails, and on shutdown a graceful
//! drain bounded by a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

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

impl Slot {
    /// Serves `conn` until it ends. When the listener drains, or once `max_age` has passed,
    /// it is closed gracefully: requests in flight finish, no new ones start.
    pub(crate) async fn serve<C: GracefulConnection>(
        mut self,
        conn: C,
        max_age: Option<Duration>,
    ) -> Result<(), C::Error> {
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => result,
            () = async {
                // The guard wait_for returns must not live across the select.
                let _ = self.draining.wait_for(|d| *d).await;
            } => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            () = async {
                match max_age {
                    Some(age) => tokio::time::sleep(age).await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::debug!("connection reached listen.max_connection_age; closing it gracefully");
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }
}
