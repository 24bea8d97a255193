//! Memory of the two reads nearly every request makes: whom a session or an API
//! token belongs to, and the newest pages of items. Without it `GET /api/items`
//! costs two queries, each a round trip to a SQLite connection's thread.
//!
//! What this process writes through the `Store` is forgotten at once, after the
//! commit. What it cannot hear of (a `ferry user` or `ferry token` command run
//! beside the server, a row changed by hand, a token revoked on another replica)
//! is seen within `FRESH_FOR`. Pages of items are kept only on SQLite, where this
//! process is the only one that writes items; replicas on PostgreSQL read every
//! page from the database, so a note posted on one is listed at once by the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Item, SessionUser, now_ms};

/// How long a remembered answer is used before the database is asked again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Bounds on what is remembered; past them everything is forgotten and refilled.
const MAX_CREDENTIALS: usize = 4096;
const MAX_PAGES: usize = 64;

#[derive(Debug)]
pub struct ReadCache {
    sessions: Credentials,
    api_tokens: Credentials,
    /// `None` where other processes write items too (PostgreSQL replicas).
    pages: Option<Pages>,
}

/// Token hash to user. Only found users are kept: unknown tokens, which anyone can
/// send, always go to the database and take no memory.
#[derive(Debug, Default)]
struct Credentials(Mutex<HashMap<String, (SessionUser, Instant)>>);

/// A page of items is keyed by its cursor and size, and valid while no item was
/// written since it was read (`generation`), for `FRESH_FOR` at most, and not past
/// the expiry of any item on it.
#[derive(Debug, Default)]
struct Pages {
    generation: AtomicU64,
    entries: Mutex<HashMap<PageKey, CachedPage>>,
}

type PageKey = (Option<String>, i64);

#[derive(Debug)]
struct CachedPage {
    generation: u64,
    until: Instant,
    items: Arc<[Item]>,
}

/// A page read from the database, to be remembered if nothing changed meanwhile.
pub struct PageTicket {
    key: PageKey,
    generation: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves only a map of copies: keep using it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Credentials {
    fn get(&self, token_hash: &str) -> Option<SessionUser> {
        let now = Instant::now();
        let map = lock(&self.0);
        map.get(token_hash)
            .filter(|(_, until)| *until > now)
            .map(|(user, _)| user.clone())
    }

    fn put(&self, token_hash: &str, user: &SessionUser) {
        let mut map = lock(&self.0);
        if map.len() >= MAX_CREDENTIALS {
            map.clear();
        }
        map.insert(
            token_hash.to_string(),
            (user.clone(), Instant::now() + FRESH_FOR),
        );
    }

    fn forget_all(&self) {
        lock(&self.0).clear();
    }
}

impl ReadCache {
    pub fn new(keep_pages: bool) -> Self {
        Self {
            sessions: Credentials::default(),
            api_tokens: Credentials::default(),
            pages: keep_pages.then(Pages::default),
        }
    }

    pub fn session(&self, token_hash: &str) -> Option<SessionUser> {
        self.sessions.get(token_hash)
    }

    pub fn remember_session(&self, token_hash: &str, user: &SessionUser) {
        self.sessions.put(token_hash, user);
    }

    pub fn api_token(&self, token_hash: &str) -> Option<SessionUser> {
        self.api_tokens.get(token_hash)
    }

    pub fn remember_api_token(&self, token_hash: &str, user: &SessionUser) {
        self.api_tokens.put(token_hash, user);
    }

    /// After a session, token or user was removed or changed: forget every
    /// credential (these writes are rare; the next request of each client refills).
    pub fn forget_credentials(&self) {
        self.sessions.forget_all();
        self.api_tokens.forget_all();
    }

    /// The remembered page, or a ticket to remember the one about to be read.
    pub fn page(
        &self,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Arc<[Item]>, Option<PageTicket>> {
        let Some(pages) = &self.pages else {
            return Err(None);
        };
        // Read before the database is, so a write that commits in between makes the
        // page it produces stale rather than remembered as current.
        let generation = pages.generation.load(Ordering::Acquire);
        let key = (before.map(str::to_string), limit);
        let now = Instant::now();
        let entries = lock(&pages.entries);
        match entries.get(&key) {
            Some(page) if page.generation == generation && page.until > now => {
                Ok(page.items.clone())
            }
            _ => Err(Some(PageTicket { key, generation })),
        }
    }

    pub fn remember_page(&self, ticket: PageTicket, items: Arc<[Item]>) {
        let Some(pages) = &self.pages else {
            return;
        };
        let now_ms = now_ms();
        let expires_in = items
            .iter()
            .filter_map(|i| i.expires_at)
            .min()
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64));
        let until = Instant::now() + expires_in.map_or(FRESH_FOR, |e| e.min(FRESH_FOR));
        let mut entries = lock(&pages.entries);
        if entries.len() >= MAX_PAGES {
            entries.clear();
        }
        entries.insert(
            ticket.key,
            CachedPage {
                generation: ticket.generation,
                until,
                items,
            },
        );
    }

    /// After an item was created or deleted (and committed): every page may differ.
    pub fn forget_pages(&self) {
        if let Some(pages) = &self.pages {
            pages.generation.fetch_add(1, Ordering::AcqRel);
            lock(&pages.entries).clear();
        }
    }

    /// Forget everything; for a change made to the database behind the store's back.
    pub fn forget_all(&self) {
        self.forget_credentials();
        self.forget_pages();
    }
}
