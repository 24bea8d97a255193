//! Items: finding and listing them, posting a note, receiving a file, deleting.
//! An item is recorded, and announced, only once its bytes are safely stored; a
//! deletion removes the row, then the file, then tells every device.

use futures_util::{Stream, TryStreamExt};

use super::pagination::{self, Page};
use super::views::{DeletedJson, ItemJson};
use super::{App, SignedIn};
use crate::blobs::{UploadError, sha256_hex};
use crate::domain::{
    DisplayName, Expiry, ItemKind, NOTE_CONTENT_TYPE, content_type_for, is_inline_safe,
    parse_cursor, parse_item_id,
};
use crate::error::{AppError, Result};
use crate::store::{Item, ItemsPage, now_ms};

/// Slack over the upload limit for a multipart body's boundaries and headers.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

pub async fn find(app: &App, id: &str) -> Result<Item> {
    let id = parse_item_id(id).ok_or(AppError::NotFound)?;
    app.store()
        .item(&id.to_string())
        .await?
        .ok_or(AppError::NotFound)
}

fn cursor(raw: Option<&str>) -> Result<Option<String>> {
    raw.filter(|s| !s.is_empty())
        .map(|c| parse_cursor(c).map(|id| id.to_string()))
        .transpose()
        .map_err(AppError::BadRequest)
}

/// A page of items, newest first, older than `cursor`.
pub async fn list(app: &App, cursor_raw: Option<&str>, limit: Option<i64>) -> Result<Page<Item>> {
    let limit = pagination::limit(limit)?;
    let before = cursor(cursor_raw)?;
    let rows = app.store().list_items(before.as_deref(), limit + 1).await?;
    Ok(Page::new(rows, limit, |i| i.id.clone()))
}

/// The feed's page of items and the newest event id read before them: the page's
/// live stream resumes after that id, so an item created in between is replayed
/// rather than missed.
pub async fn feed(app: &App, cursor_raw: Option<&str>) -> Result<(Page<Item>, i64)> {
    let before = cursor(cursor_raw)?;
    let limit = pagination::DEFAULT_LIMIT;
    let ItemsPage {
        items,
        last_event_id,
    } = app.store().items_page(before.as_deref(), limit + 1).await?;
    Ok((Page::new(items, limit, |i| i.id.clone()), last_event_id))
}

/// The expiry a client asked for, or the instance's default.
pub fn expiry(app: &App, raw: Option<&str>) -> Result<Expiry> {
    match raw {
        None => Ok(app.settings().default_expiry),
        Some(s) => Expiry::parse(s).map_err(AppError::BadRequest),
    }
}

pub async fn create_note(app: &App, user: &SignedIn, text: &str, expiry: Expiry) -> Result<Item> {
    let text = text.replace("\r\n", "\n");
    if text.trim().is_empty() {
        return Err(AppError::BadRequest("the note is empty".into()));
    }
    let max = app.settings().max_note_bytes;
    if text.len() > max {
        return Err(AppError::BadRequest(format!(
            "the note is larger than {max} bytes"
        )));
    }
    let now = now_ms();
    let item = Item {
        id: uuid::Uuid::now_v7().to_string(),
        author_id: Some(user.id.clone()),
        author_name: Some(user.name.clone()),
        kind: ItemKind::Note,
        name: None,
        content_type: NOTE_CONTENT_TYPE.into(),
        size: text.len() as i64,
        sha256: sha256_hex(text.as_bytes()),
        note: Some(text),
        created_at: now,
        expires_at: expiry.expires_at(now),
    };
    announce_created(app, &item).await?;
    Ok(item)
}

async fn announce_created(app: &App, item: &Item) -> Result<()> {
    let payload = serde_json::to_string(&ItemJson::new(item)).map_err(anyhow::Error::from)?;
    app.store().insert_item(item, &payload).await?;
    app.events().published();
    Ok(())
}

/// Refuse an upload early when the size its request announces cannot fit: past
/// the limit (413) or into the free-space reserve (507).
fn check_room(app: &App, announced: Option<u64>) -> Result<()> {
    let limit = app.settings().max_upload_bytes;
    if announced.is_some_and(|len| len > limit.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(AppError::PayloadTooLarge { limit });
    }
    let room = app
        .blobs()
        .has_room_for(announced.unwrap_or(0))
        .map_err(anyhow::Error::from)?;
    if !room {
        return Err(AppError::InsufficientStorage);
    }
    Ok(())
}

/// A file moved into the blob store but not yet recorded. Dropped unrecorded (an
/// error later in the same request), its blob is removed, or moved back to where
/// it came from (a resumable upload, which the client may then finish again).
pub struct ReceivedFile {
    app: App,
    id: Option<uuid::Uuid>,
    name: DisplayName,
    size: u64,
    sha256: String,
    return_to: Option<std::path::PathBuf>,
}

impl Drop for ReceivedFile {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.app.blobs().discard(&id, self.return_to.as_deref());
        }
    }
}

impl ReceivedFile {
    /// A completed resumable upload, already moved to the blob of item `id`, from
    /// `return_to` (where its blob goes back if recording fails).
    pub(super) fn resumed(
        app: &App,
        id: uuid::Uuid,
        raw_name: &str,
        size: u64,
        sha256: String,
        return_to: std::path::PathBuf,
    ) -> Self {
        Self {
            app: app.clone(),
            id: Some(id),
            name: DisplayName::clean(raw_name),
            size,
            sha256,
            return_to: Some(return_to),
        }
    }
}

/// A received file set aside unrecorded (a share waiting for its sender to sign
/// in): its blob stays in the store until it is rebuilt and recorded or dropped.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct KeptFile {
    pub id: uuid::Uuid,
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

impl ReceivedFile {
    /// Set the file aside: its blob is no longer removed when this is dropped.
    pub(super) fn keep(mut self) -> KeptFile {
        KeptFile {
            id: self.id.take().unwrap_or_else(uuid::Uuid::nil),
            name: self.name.as_str().to_string(),
            size: self.size,
            sha256: std::mem::take(&mut self.sha256),
        }
    }

    /// A file set aside by `keep`, ready to record (or, dropped, to remove).
    pub(super) fn from_kept(app: &App, kept: KeptFile) -> Self {
        Self {
            app: app.clone(),
            id: Some(kept.id),
            name: DisplayName::clean(&kept.name),
            size: kept.size,
            sha256: kept.sha256,
            return_to: None,
        }
    }
}

/// Stream a file into the blob store, hashing it on the way, within the upload
/// limit and the free-space reserve. `announced` is the file's length when the
/// request states it; the space checks count what the file can still bring, so
/// a small one is taken until the reserve itself is reached. On any error nothing
/// is left behind.
pub async fn receive_file<S, B>(
    app: &App,
    raw_name: &str,
    announced: Option<u64>,
    mut body: S,
) -> Result<ReceivedFile>
where
    S: Stream<Item = std::result::Result<B, UploadError>> + Unpin,
    B: AsRef<[u8]>,
{
    check_room(app, announced)?;
    let mut upload = app
        .blobs()
        .start_upload(app.settings().max_upload_bytes, announced)
        .await?;
    let outcome = async {
        while let Some(chunk) = body.try_next().await? {
            upload.write(chunk.as_ref()).await?;
        }
        Ok::<_, UploadError>(())
    }
    .await;
    app.metrics()
        .upload_bytes
        .fetch_add(upload.size(), std::sync::atomic::Ordering::Relaxed);
    outcome?;
    let stored = upload.commit().await?;
    Ok(ReceivedFile {
        app: app.clone(),
        id: Some(stored.id),
        name: DisplayName::clean(raw_name),
        size: stored.size,
        sha256: stored.sha256,
        return_to: None,
    })
}

/// Record a received file as an item and announce it.
pub async fn record_file(
    app: &App,
    user: &SignedIn,
    mut file: ReceivedFile,
    expiry: Expiry,
) -> Result<Item> {
    let Some(id) = file.id else {
        return Err(AppError::Internal(anyhow::anyhow!("file recorded twice")));
    };
    let now = now_ms();
    let item = Item {
        id: id.to_string(),
        author_id: Some(user.id.clone()),
        author_name: Some(user.name.clone()),
        kind: ItemKind::File,
        content_type: content_type_for(file.name.as_str()).to_string(),
        name: Some(file.name.as_str().to_string()),
        size: file.size as i64,
        sha256: std::mem::take(&mut file.sha256),
        note: None,
        created_at: now,
        expires_at: expiry.expires_at(now),
    };
    // On failure `file` drops with its id and removes the blob.
    announce_created(app, &item).await?;
    file.id = None;
    tracing::info!(item = %item.id, size = item.size, "file stored");
    Ok(item)
}

/// What one form post brought: its files (already stored) and an optional note.
/// Recorded together once the whole form is read, so a field such as `expires`
/// applies wherever it stood.
pub async fn record_post(
    app: &App,
    user: &SignedIn,
    files: Vec<ReceivedFile>,
    note: Option<String>,
    expiry: Expiry,
) -> Result<Vec<Item>> {
    let note = note.filter(|t| !t.trim().is_empty());
    if files.is_empty() && note.is_none() {
        return Err(AppError::BadRequest("the form contained no file".into()));
    }
    let mut items = Vec::with_capacity(files.len() + 1);
    for file in files {
        items.push(record_file(app, user, file, expiry).await?);
    }
    if let Some(text) = note {
        items.push(create_note(app, user, &text, expiry).await?);
    }
    Ok(items)
}

/// Authors delete their own items; admins delete any.
pub async fn delete(app: &App, user: &SignedIn, id: &str) -> Result<()> {
    let item = find(app, id).await?;
    if !can_delete(&item, user) {
        return Err(AppError::Forbidden(
            "only the author or an admin can delete this item",
        ));
    }
    remove(app, &item.id).await?;
    Ok(())
}

/// Remove an item: its row (with an `item.deleted` event), then its file, then
/// tell every device. False when it was already gone.
pub(super) async fn remove(app: &App, id: &str) -> Result<bool> {
    let payload = serde_json::to_string(&DeletedJson { id }).map_err(anyhow::Error::from)?;
    let Some((item, _event)) = app.store().delete_item(id, &payload).await? else {
        return Ok(false);
    };
    if let Some(uuid) = parse_item_id(&item.id) {
        app.blobs()
            .remove(&uuid)
            .await
            .map_err(anyhow::Error::from)?;
    }
    app.events().published();
    Ok(true)
}

/// `count` bytes of a file item from `start`.
pub async fn read_file(
    app: &App,
    item: &Item,
    start: u64,
    count: u64,
) -> Result<crate::blobs::ByteStream> {
    let uuid = parse_item_id(&item.id).ok_or(AppError::NotFound)?;
    app.blobs()
        .read(&uuid, start, count)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                tracing::error!(item = %item.id, error = ?e, "blob missing for a recorded item");
                AppError::NotFound
            }
            _ => {
                tracing::error!(item = %item.id, error = ?e, "cannot read a file from the store");
                AppError::Unavailable
            }
        })
}

/// Where nginx fetches a file item's bytes from, after FERRY_ACCEL_REDIRECT's
/// prefix (see `Blobs::accel_target`).
pub async fn accel_target(app: &App, item: &Item) -> Result<String> {
    let uuid = parse_item_id(&item.id).ok_or(AppError::NotFound)?;
    app.blobs().accel_target(&uuid).await.map_err(|e| {
        tracing::error!(item = %item.id, error = ?e, "cannot sign a download for nginx");
        AppError::Unavailable
    })
}

/// The name a download is saved under.
pub fn download_name(item: &Item) -> DisplayName {
    match (&item.name, item.is_note()) {
        (Some(n), _) => DisplayName::clean(n),
        (None, true) => DisplayName::clean("note.txt"),
        (None, false) => DisplayName::clean("file"),
    }
}

/// Whether `viewer` may delete the item: by user id, never by display name, since
/// a later user may take a deleted user's name.
pub fn can_delete(item: &Item, viewer: &SignedIn) -> bool {
    viewer.may_modify(item.author_id.as_deref())
}

/// Whether a card shows the file itself: images that downloads show inline.
pub fn shows_preview(item: &Item) -> bool {
    !item.is_note() && item.content_type.starts_with("image/") && is_inline_safe(&item.content_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::accounts::Credential;

    fn viewer(id: &str, name: &str, is_admin: bool) -> SignedIn {
        SignedIn {
            id: id.into(),
            name: name.into(),
            is_admin,
            csrf_token: String::new(),
            credential: Credential::Session,
            session_hash: None,
        }
    }

    fn file(author_id: Option<&str>, author_name: &str, content_type: &str) -> Item {
        Item {
            id: uuid::Uuid::now_v7().to_string(),
            author_id: author_id.map(str::to_string),
            author_name: Some(author_name.into()),
            kind: ItemKind::File,
            name: Some("x".into()),
            content_type: content_type.into(),
            size: 1,
            sha256: String::new(),
            note: None,
            created_at: 0,
            expires_at: None,
        }
    }

    #[test]
    fn delete_is_decided_by_user_id_and_admin() {
        let item = file(Some("u1"), "sam", "text/plain; charset=utf-8");
        // Two users with the same display name: only the author may delete.
        assert!(can_delete(&item, &viewer("u1", "sam", false)));
        assert!(!can_delete(&item, &viewer("u2", "sam", false)));
        assert!(can_delete(&item, &viewer("u3", "root", true)));
        // An item whose author was deleted: admins only.
        let orphan = file(None, "sam", "text/plain; charset=utf-8");
        assert!(!can_delete(&orphan, &viewer("u2", "sam", false)));
        assert!(can_delete(&orphan, &viewer("u3", "root", true)));
    }

    #[test]
    fn previews_are_images_served_inline() {
        let cases = [
            ("image/png", true),
            ("image/jpeg", true),
            ("image/webp", true),
            ("image/svg+xml", false),
            ("image/bmp", false),
            ("application/pdf", false),
            ("text/plain; charset=utf-8", false),
        ];
        for (content_type, expected) in cases {
            assert_eq!(
                shows_preview(&file(Some("u1"), "sam", content_type)),
                expected,
                "{content_type}"
            );
        }
        let mut note = file(Some("u1"), "sam", "image/png");
        note.kind = ItemKind::Note;
        assert!(!shows_preview(&note));
    }
}
