//! The access token cache: one token per application, refreshed ahead of its expiry, with
//! concurrent callers waiting on the one refresh in flight instead of each fetching their own
//! (and sharing its failure, so a refused key costs API-M one request, not one per caller).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::assertion::AssertionSigner;
use super::token::{AccessToken, TokenError, exchange};
use super::transport::Transport;
use crate::secret::Secret;

/// A token is refreshed this long before it expires (or halfway, for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Supplies bearer tokens: cached API-M tokens, or none in sandbox mode.
#[derive(Clone, Debug)]
pub struct TokenProvider {
    inner: Arc<Mode>,
}

#[derive(Debug)]
enum Mode {
    Sandbox,
    Signed(Box<Signed>),
}

struct Signed {
    signer: AssertionSigner,
    transport: Transport,
    /// Held across a refresh: that is what makes concurrent callers share it.
    cache: Mutex<Slot>,
    /// Completed refreshes, bumped under the lock. A caller that saw an older value before
    /// waiting for the lock waited on a refresh, and takes its outcome, failure included.
    generation: AtomicU64,
}

#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    last_error: Option<TokenError>,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("signer", &self.signer)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

impl TokenProvider {
    /// Sandbox mode: requests carry no `Authorization`.
    pub fn sandbox() -> Self {
        Self {
            inner: Arc::new(Mode::Sandbox),
        }
    }

    pub(crate) fn signed(signer: AssertionSigner, transport: Transport) -> Self {
        Self {
            inner: Arc::new(Mode::Signed(Box::new(Signed {
                signer,
                transport,
                cache: Mutex::new(Slot::default()),
                generation: AtomicU64::new(0),
            }))),
        }
    }

    /// The assertion signer, unless in sandbox mode.
    pub fn signer(&self) -> Option<&AssertionSigner> {
        match &*self.inner {
            Mode::Sandbox => None,
            Mode::Signed(s) => Some(&s.signer),
        }
    }

    /// A valid bearer token (`None` in sandbox mode): the cached one, or a new one when it is
    /// missing or near expiry.
    pub async fn bearer(&self) -> Result<Option<Secret<String>>, TokenError> {
        let Mode::Signed(signed) = &*self.inner else {
            return Ok(None);
        };
        let seen = signed.generation.load(Ordering::SeqCst);
        let mut slot = signed.cache.lock().await;
        if let Some(cached) = slot.cached.as_ref() {
            if Instant::now() < cached.refresh_at {
                return Ok(Some(cached.token.token.clone()));
            }
        }
        if signed.generation.load(Ordering::SeqCst) != seen {
            if let Some(error) = &slot.last_error {
                return Err(error.clone());
            }
        }
        let token = signed.refresh(&mut slot).await?;
        Ok(Some(token.token))
    }

    /// Fetches a new token now, replacing the cached one.
    pub async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let Mode::Signed(signed) = &*self.inner else {
            return Err(TokenError::Sandbox);
        };
        let mut slot = signed.cache.lock().await;
        signed.refresh(&mut slot).await
    }

    /// Drops `token` from the cache (after the API refused it), unless a newer one already
    /// replaced it.
    pub async fn invalidate(&self, token: &Secret<String>) {
        if let Mode::Signed(signed) = &*self.inner {
            let mut slot = signed.cache.lock().await;
            if slot.cached.as_ref().is_some_and(|c| c.token.token == *token) {
                slot.cached = None;
            }
        }
    }

    /// How many token exchanges this provider has completed, successful or not.
    pub fn fetches(&self) -> u64 {
        match &*self.inner {
            Mode::Sandbox => 0,
            Mode::Signed(s) => s.generation.load(Ordering::SeqCst),
        }
    }
}

impl Signed {
    /// Fetches a token into `slot`. Called with the lock held.
    async fn refresh(&self, slot: &mut Slot) -> Result<AccessToken, TokenError> {
        let started = Instant::now();
        let result = exchange(&self.signer, &self.transport).await;
        match &result {
            Ok(token) => {
                let margin = REFRESH_MARGIN.min(token.expires_in / 2);
                slot.cached = Some(Cached {
                    token: token.clone(),
                    // An absurd expires_in must not overflow the clock: refresh in a day at most.
                    refresh_at: started
                        .checked_add(token.expires_in.saturating_sub(margin))
                        .unwrap_or_else(|| started + std::time::Duration::from_secs(86_400)),
                });
                slot.last_error = None;
            }
            Err(e) => {
                slot.cached = None;
                slot.last_error = Some(e.clone());
            }
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        result
    }
}
