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
/// Pages are counted in bytes: a page of 200 notes of 64 kB each is 13 MB, and
/// anyone signed in can ask for many different pages.
const MAX_CREDENTIALS: usize = 4096;
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

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
/// the expiry of any item on it. Together they hold `MAX_PAGE_BYTES` at most.
#[derive(Debug, Default)]
struct Pages {
    generation: AtomicU64,
    entries: Mutex<PageEntries>,
}

#[derive(Debug, Default)]
struct PageEntries {
    pages: HashMap<PageKey, CachedPage>,
    /// The sum of the pages' `bytes`.
    bytes: usize,
}

type PageKey = (Option<String>, i64);

#[derive(Debug)]
struct CachedPage {
    generation: u64,
    until: Instant,
    page: ItemsPage,
    bytes: usize,
}

/// A page of items, and the newest event id read just before it: the page shows
/// every change up to that event, so a live stream that resumes after it misses
/// nothing, however old the page.
#[derive(Clone, Debug)]
pub struct ItemsPage {
    pub items: Arc<[Item]>,
    pub last_event_id: i64,
}

/// About how much memory a page holds: its texts, and a few hundred bytes of ids,
/// names and times per item.
fn page_bytes(items: &[Item]) -> usize {
    items
        .iter()
        .map(|i| {
            300 + i.note.as_ref().map_or(0, String::len) + i.name.as_ref().map_or(0, String::len)
        })
        .sum()
}

/// A page read from the database, to be remembered if nothing changed meanwhile.
#[derive(Debug)]
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

    /// Whether pages are kept at all (not on PostgreSQL).
    pub fn keeps_pages(&self) -> bool {
        self.pages.is_some()
    }

    /// The remembered page, or a ticket to remember the one about to be read.
    pub fn page(&self, before: Option<&str>, limit: i64) -> Result<ItemsPage, Option<PageTicket>> {
        let Some(pages) = &self.pages else {
            return Err(None);
        };
        // Read before the database is, so a write that commits in between makes the
        // page it produces stale rather than remembered as current.
        let generation = pages.generation.load(Ordering::Acquire);
        let key = (before.map(str::to_string), limit);
        let now = Instant::now();
        let entries = lock(&pages.entries);
        match entries.pages.get(&key) {
            Some(cached) if cached.generation == generation && cached.until > now => {
                Ok(cached.page.clone())
            }
            _ => Err(Some(PageTicket { key, generation })),
        }
    }

    pub fn remember_page(&self, ticket: PageTicket, page: ItemsPage) {
        let Some(pages) = &self.pages else {
            return;
        };
        let now_ms = now_ms();
        let expires_in = page
            .items
            .iter()
            .filter_map(|i| i.expires_at)
            .min()
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64));
        let until = Instant::now() + expires_in.map_or(FRESH_FOR, |e| e.min(FRESH_FOR));
        let bytes = page_bytes(&page.items);
        if bytes > MAX_PAGE_BYTES {
            return;
        }
        let mut entries = lock(&pages.entries);
        if entries.bytes + bytes > MAX_PAGE_BYTES {
            entries.pages.clear();
            entries.bytes = 0;
        }
        let cached = CachedPage {
            generation: ticket.generation,
            until,
            page,
            bytes,
        };
        if let Some(old) = entries.pages.insert(ticket.key, cached) {
            entries.bytes -= old.bytes;
        }
        entries.bytes += bytes;
    }

    /// After an item was created or deleted (and committed): every page may differ.
    pub fn forget_pages(&self) {
        if let Some(pages) = &self.pages {
            pages.generation.fetch_add(1, Ordering::AcqRel);
            let mut entries = lock(&pages.entries);
            entries.pages.clear();
            entries.bytes = 0;
        }
    }

    /// Forget everything; for a change made to the database behind the store's back.
    pub fn forget_all(&self) {
        self.forget_credentials();
        self.forget_pages();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: &str, text_bytes: usize) -> Item {
        Item {
            id: id.to_string(),
            author_id: None,
            author_name: None,
            kind: crate::domain::ItemKind::Note,
            name: None,
            content_type: "text/plain".into(),
            size: text_bytes as i64,
            sha256: String::new(),
            note: Some("x".repeat(text_bytes)),
            created_at: 0,
            expires_at: None,
            files: Vec::new(),
        }
    }

    fn remember(cache: &ReadCache, before: Option<&str>, items: Vec<Item>) {
        let Err(Some(ticket)) = cache.page(before, 50) else {
            panic!("expected a miss with a ticket");
        };
        let page = ItemsPage {
            items: items.into(),
            last_event_id: 7,
        };
        cache.remember_page(ticket, page);
    }

    #[test]
    fn a_page_read_before_a_write_is_not_kept() {
        let cache = ReadCache::new(true);
        let Err(Some(ticket)) = cache.page(None, 50) else {
            panic!("expected a miss");
        };
        // A write commits while the page is being read.
        cache.forget_pages();
        let page = ItemsPage {
            items: vec![note("a", 1)].into(),
            last_event_id: 6,
        };
        cache.remember_page(ticket, page);
        assert!(cache.page(None, 50).is_err());
        remember(&cache, None, vec![note("b", 1)]);
        let kept = cache.page(None, 50).expect("kept");
        assert_eq!((kept.items[0].id.as_str(), kept.last_event_id), ("b", 7));
    }

    #[test]
    fn pages_are_kept_within_a_byte_budget() {
        let cache = ReadCache::new(true);
        let big = MAX_PAGE_BYTES / 2;
        remember(&cache, None, vec![note("a", big)]);
        remember(&cache, Some("a"), vec![note("b", 10)]);
        assert!(cache.page(None, 50).is_ok() && cache.page(Some("a"), 50).is_ok());
        // Over the budget: everything is forgotten before the new page is kept.
        remember(&cache, Some("b"), vec![note("c", big)]);
        assert!(cache.page(None, 50).is_err() && cache.page(Some("a"), 50).is_err());
        assert!(cache.page(Some("b"), 50).is_ok());
        // A page larger than the budget is never kept.
        remember(&cache, Some("c"), vec![note("d", MAX_PAGE_BYTES)]);
        assert!(cache.page(Some("c"), 50).is_err());
    }

    #[test]
    fn postgres_keeps_no_pages_but_keeps_credentials() {
        let cache = ReadCache::new(false);
        assert!(matches!(cache.page(None, 50), Err(None)));
        let user = SessionUser {
            id: "u".into(),
            name: "ann".into(),
            is_admin: false,
            csrf_token: String::new(),
        };
        cache.remember_api_token("h", &user);
        assert_eq!(cache.api_token("h").expect("kept").name, "ann");
        assert!(
            cache.session("h").is_none(),
            "sessions and tokens are apart"
        );
        cache.forget_credentials();
        assert!(cache.api_token("h").is_none());
    }
}
