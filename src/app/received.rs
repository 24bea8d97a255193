//! Files on their way into an item: streamed into the blob store with their
//! SHA-256 and CRC-32 computed on the way, then held until the item that holds
//! them is recorded (`record_post`); dropped unrecorded, their blobs go.

use futures_util::{Stream, TryStreamExt};

use super::{App, SignedIn, archive, items};
use crate::blobs::UploadError;
use crate::domain::{DisplayName, Expiry, ItemKind, content_type_for};
use crate::error::{AppError, Result};
use crate::store::{Item, ItemFile, now_ms};

/// Slack over the upload limit for a multipart body's boundaries and headers.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

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
    /// The blob key; `None` once recorded or kept.
    pub(super) id: Option<uuid::Uuid>,
    pub(super) name: DisplayName,
    pub(super) size: u64,
    pub(super) sha256: String,
    /// Unknown only for a file kept by an older version (then computed later).
    pub(super) crc32: Option<u32>,
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
        (sha256, crc32): (String, u32),
        return_to: std::path::PathBuf,
    ) -> Self {
        Self {
            app: app.clone(),
            id: Some(id),
            name: DisplayName::clean(raw_name),
            size,
            sha256,
            crc32: Some(crc32),
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
    /// Absent in shares kept by versions before several files per item.
    #[serde(default)]
    pub crc32: Option<u32>,
}

impl ReceivedFile {
    /// Set the file aside: its blob is no longer removed when this is dropped.
    pub(super) fn keep(mut self) -> KeptFile {
        KeptFile {
            id: self.id.take().unwrap_or_else(uuid::Uuid::nil),
            name: self.name.as_str().to_string(),
            size: self.size,
            sha256: std::mem::take(&mut self.sha256),
            crc32: self.crc32,
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
            crc32: kept.crc32,
            return_to: None,
        }
    }
}

/// Stream a file into the blob store, hashing it (SHA-256 and CRC-32) on the way,
/// within the upload limit and the free-space reserve. `announced` is the file's length when the
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
        crc32: Some(stored.crc32),
        return_to: None,
    })
}

/// Record one received file as an item and announce it.
pub async fn record_file(
    app: &App,
    user: &SignedIn,
    file: ReceivedFile,
    expiry: Expiry,
) -> Result<Item> {
    record_post(app, user, vec![file], None, expiry).await
}

/// What one post brought (a form, a drop of several files, a share from a phone):
/// its files, already stored, and an optional note, recorded together as ONE item
/// once the whole post is read, so a field such as `expires` applies wherever it
/// stood. Without files the note is a note item. The item's id is its first
/// file's blob key, as it always was for single files.
pub async fn record_post(
    app: &App,
    user: &SignedIn,
    mut files: Vec<ReceivedFile>,
    note: Option<String>,
    expiry: Expiry,
) -> Result<Item> {
    let note = note.filter(|t| !t.trim().is_empty());
    if files.is_empty() {
        return match note {
            Some(text) => items::create_note(app, user, &text, expiry).await,
            None => Err(AppError::BadRequest("the form contained no file".into())),
        };
    }
    let note = note.map(|t| items::clean_note(app, &t)).transpose()?;
    let first = files.first().and_then(|f| f.id);
    let Some(item_id) = first.map(|id| id.to_string()) else {
        return Err(AppError::Internal(anyhow::anyhow!("file recorded twice")));
    };
    let mut rows = Vec::with_capacity(files.len());
    for (position, file) in files.iter().enumerate() {
        let Some(id) = file.id else {
            return Err(AppError::Internal(anyhow::anyhow!("file recorded twice")));
        };
        rows.push(ItemFile {
            item_id: item_id.clone(),
            position: position as i64,
            id: id.to_string(),
            name: file.name.as_str().to_string(),
            content_type: content_type_for(file.name.as_str()).to_string(),
            size: file.size as i64,
            sha256: file.sha256.clone(),
            crc32: file.crc32.map(i64::from),
        });
    }
    let now = now_ms();
    let whole = archive::whole_item(&rows, now);
    let item = Item {
        id: item_id,
        author_id: Some(user.id.clone()),
        author_name: Some(user.name.clone()),
        kind: ItemKind::File,
        name: Some(whole.name),
        content_type: whole.content_type,
        size: whole.size as i64,
        sha256: whole.sha256,
        note,
        created_at: now,
        expires_at: expiry.expires_at(now),
        files: rows,
    };
    // On failure every file drops with its id and removes its blob.
    items::announce_created(app, &item).await?;
    for file in &mut files {
        file.id = None;
    }
    tracing::info!(item = %item.id, files = item.files.len(), size = item.size, "files stored");
    Ok(item)
}
