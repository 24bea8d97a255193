//! Sharing from a phone's share sheet: the installed web app receives a post of
//! title, text, url and files, and it becomes items (one per file, and a note for
//! the words). The post cannot carry a CSRF token, so who sent it is decided from
//! the browser's own `Sec-Fetch-Site` / `Origin` headers, here and nowhere else.
//! Shared while signed out, the post is kept for a few minutes under a random id
//! (the browser holds it in a cookie) and finished after signing in.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::received::{self, KeptFile, ReceivedFile};
use super::{App, Item, SignedIn};
use crate::error::{AppError, Result};
use crate::store::now_ms;

/// How long a post shared while signed out waits for its sender to sign in.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// At most this many signed-out shares wait at once: anyone can send one, so
/// they must not be a way to fill the disk.
const MAX_PENDING: usize = 16;

/// What the browser said about where a post came from.
pub struct Sender<'a> {
    /// `Sec-Fetch-Site`, which every current browser sends with every request.
    pub fetch_site: Option<&'a str>,
    /// `Origin`, which browsers send with every POST.
    pub origin: Option<&'a str>,
    /// The `Host` the request was sent to, for comparing with `Origin` when no
    /// public URL is configured.
    pub host: Option<&'a str>,
}

/// Proof that a share post passed `check_sender`; reading a share form needs
/// one, so no front end can skip the check.
pub struct SameOrigin(());

/// Accept a share post only from Ferry's own pages or from the browser itself
/// (its share sheet: `Sec-Fetch-Site: none`, which no web page can cause).
/// `Sec-Fetch-Site` decides when present; without it, `Origin` must be Ferry's
/// own. With neither the post is refused: every browser that can install a web
/// app sends them, so their absence means a script or tool, which has the API.
pub fn check_sender(app: &App, sender: &Sender<'_>) -> Result<SameOrigin> {
    const REFUSED: &str = "a share must come from this Ferry's own app or the browser's share sheet; \
                           scripts and other tools post to /api/items with a token";
    if let Some(site) = sender.fetch_site {
        return match site.trim().to_ascii_lowercase().as_str() {
            "same-origin" | "none" => Ok(SameOrigin(())),
            _ => Err(AppError::Forbidden(REFUSED)),
        };
    }
    let own = match &app.settings().public_url {
        Some(url) => url.origin().ascii_serialization(),
        None => String::new(),
    };
    let allowed = sender
        .origin
        .and_then(|o| url::Url::parse(o).ok())
        .is_some_and(|o| {
            let origin = o.origin();
            if !own.is_empty() {
                return origin.ascii_serialization() == own;
            }
            // No public URL: the origin's host and port must be the Host the request
            // went to (the scheme may differ behind a TLS-terminating proxy).
            let authority = match (o.host_str(), o.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => return false,
            };
            origin.is_tuple()
                && sender
                    .host
                    .is_some_and(|host| host.eq_ignore_ascii_case(&authority))
        });
    if allowed {
        Ok(SameOrigin(()))
    } else {
        Err(AppError::Forbidden(REFUSED))
    }
}

/// The words of a share: a page's title, the text and the link, in one note.
/// Apps often put the link in the text too; it is then written once.
pub fn note_of(title: &str, text: &str, url: &str) -> Option<String> {
    let (title, text, url) = (title.trim(), text.trim(), url.trim());
    let mut parts = Vec::new();
    for part in [title, text] {
        if !part.is_empty() && !parts.contains(&part) {
            parts.push(part);
        }
    }
    if !url.is_empty() && !text.contains(url) {
        parts.push(url);
    }
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// A read share form: its files already stored, and its words.
pub struct SharedPost {
    pub files: Vec<ReceivedFile>,
    pub note: Option<String>,
}

/// Record a share from a signed-in user.
pub async fn record(
    app: &App,
    user: &SignedIn,
    _checked: SameOrigin,
    post: SharedPost,
) -> Result<Item> {
    let expiry = app.settings().default_expiry;
    received::record_post(app, user, post.files, post.note, expiry).await
}

#[derive(Serialize, Deserialize)]
struct PendingRecord {
    created_at: i64,
    note: Option<String>,
    files: Vec<KeptFile>,
}

/// What a pending share holds, for the page that asks to finish it.
pub struct PendingShare {
    pub note: Option<String>,
    pub file_names: Vec<String>,
    /// Minutes until it is thrown away, at least 1.
    pub minutes_left: i64,
}

fn pending_dir(app: &App) -> PathBuf {
    app.settings().data_dir.join("pending-shares")
}

/// A pending share's record file; the id is a UUID, so never a path.
fn pending_path(app: &App, id: &str) -> Option<PathBuf> {
    let id = uuid::Uuid::parse_str(id).ok()?;
    Some(pending_dir(app).join(format!("{id}.json")))
}

/// Keep a share sent while signed out; returns the id its cookie carries. Its
/// files stay in the blob store, unrecorded, until it is finished or expires.
pub async fn keep(app: &App, _checked: SameOrigin, post: SharedPost) -> Result<String> {
    if post.files.is_empty() && post.note.is_none() {
        return Err(AppError::BadRequest("the share contained nothing".into()));
    }
    let dir = pending_dir(app);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(anyhow::Error::from)?;
    if count_pending(&dir).await >= MAX_PENDING {
        return Err(AppError::BadRequest(
            "too many shares are waiting for sign-in; sign in to Ferry first, then share again"
                .into(),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let record = PendingRecord {
        created_at: now_ms(),
        note: post.note,
        files: post.files.into_iter().map(ReceivedFile::keep).collect(),
    };
    let json = serde_json::to_vec(&record).map_err(anyhow::Error::from)?;
    let path = dir.join(format!("{id}.json"));
    let partial = dir.join(format!("{id}.partial"));
    let written = async {
        tokio::fs::write(&partial, &json).await?;
        tokio::fs::rename(&partial, &path).await
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        discard_files(app, record.files);
        return Err(anyhow::Error::from(e).into());
    }
    Ok(id)
}

async fn count_pending(dir: &std::path::Path) -> usize {
    let mut count = 0;
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.path().extension().is_some_and(|e| e == "json") {
                count += 1;
            }
        }
    }
    count
}

async fn read_record(path: &std::path::Path) -> Option<PendingRecord> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn is_expired(record: &PendingRecord, now: i64) -> bool {
    now - record.created_at > PENDING_TTL.as_millis() as i64
}

/// The pending share with this id, if it is still there and not expired.
pub async fn pending(app: &App, id: &str) -> Option<PendingShare> {
    let record = read_record(&pending_path(app, id)?).await?;
    let now = now_ms();
    if is_expired(&record, now) {
        return None;
    }
    let expires_at = record.created_at + PENDING_TTL.as_millis() as i64;
    Some(PendingShare {
        minutes_left: ((expires_at - now) / 60_000).max(1),
        note: record.note,
        file_names: record.files.iter().map(|f| f.name.clone()).collect(),
    })
}

/// Take a pending share out of the waiting room: removing its record is the
/// claim, so two requests cannot both finish it.
async fn take(app: &App, id: &str) -> Result<Option<PendingRecord>> {
    let Some(path) = pending_path(app, id) else {
        return Ok(None);
    };
    let Some(record) = read_record(&path).await else {
        return Ok(None);
    };
    if tokio::fs::remove_file(&path).await.is_err() {
        return Ok(None);
    }
    if is_expired(&record, now_ms()) {
        discard_files(app, record.files);
        return Ok(None);
    }
    Ok(Some(record))
}

/// Finish a pending share as the user who has now signed in. `None` when it
/// expired or was already finished.
pub async fn finish(app: &App, user: &SignedIn, id: &str) -> Result<Option<Item>> {
    let Some(record) = take(app, id).await? else {
        return Ok(None);
    };
    let files = record
        .files
        .into_iter()
        .map(|kept| ReceivedFile::from_kept(app, kept))
        .collect();
    let expiry = app.settings().default_expiry;
    received::record_post(app, user, files, record.note, expiry)
        .await
        .map(Some)
}

/// Throw a pending share away.
pub async fn discard(app: &App, id: &str) -> Result<()> {
    if let Some(record) = take(app, id).await? {
        discard_files(app, record.files);
    }
    Ok(())
}

fn discard_files(app: &App, files: Vec<KeptFile>) {
    // Rebuilt and dropped unrecorded, each removes its blob.
    for kept in files {
        drop(ReceivedFile::from_kept(app, kept));
    }
}

/// Remove expired pending shares and their files (the sweeper's pass), and
/// records left half-written or unreadable. Returns how many were removed.
pub async fn sweep(app: &App) -> Result<usize> {
    let Ok(mut entries) = tokio::fs::read_dir(pending_dir(app)).await else {
        return Ok(0);
    };
    let now = now_ms();
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let old = entry
            .metadata()
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > PENDING_TTL);
        let is_record = path.extension().is_some_and(|e| e == "json");
        let record = match is_record {
            true => read_record(&path).await,
            false => None,
        };
        match record {
            Some(record) if is_expired(&record, now) => {
                discard(app, &id).await?;
                removed += 1;
            }
            Some(_) => {}
            // Half-written or unreadable, and old: nothing can finish it.
            None if old => {
                let _ = tokio::fs::remove_file(&path).await;
                removed += usize::from(is_record);
            }
            None => {}
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_of_a_share_become_one_note() {
        assert_eq!(
            note_of(
                "A page",
                "Look at this https://x.example/a",
                "https://x.example/a"
            )
            .as_deref(),
            Some("A page\nLook at this https://x.example/a")
        );
        assert_eq!(
            note_of("", "", "https://x.example/a").as_deref(),
            Some("https://x.example/a")
        );
        assert_eq!(note_of("Same", "Same", "").as_deref(), Some("Same"));
        assert_eq!(note_of(" ", "\n", ""), None);
    }
}
