//! Resumable uploads: a file sent in several requests, each continuing where the
//! last acknowledged one ended, from any replica. The HTTP adapter speaks tus 1.0;
//! the rules live here: the limits at creation, the free-space reserve while
//! writing, the per-user cap, the owner-only access, and completion, which records
//! the item through the same path as a one-shot upload (`items::record_file`).
//!
//! Durability: bytes are appended and fsynced before the offset is recorded, and an
//! offset is acknowledged only once recorded. A crash at any moment leaves the
//! recorded offset (and perhaps unacknowledged bytes after it, cut off by the next
//! request), never a shorter or corrupt file. Completion moves the file into the
//! blob store and records the item under the upload's id, so it happens once; a
//! crash half-way is repaired by the next request (see `recover`).

use std::time::Duration;

use futures_util::{Stream, TryStreamExt};

use super::items::{self, ReceivedFile};
use super::{App, Item, SignedIn};
use crate::blobs::UploadError;
use crate::domain::{Checksum, Expiry, Hasher, parse_item_id};
use crate::error::{AppError, Result};
use crate::partials::{Partial, Partials};
use crate::store::{ResumableUpload, now_ms};

/// A request that sends nothing for this long ends; what it sent is kept, and its
/// lock is released for the client's next attempt (a phone that changed networks
/// leaves its old connection hanging rather than closed).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Upload-Metadata beyond this is refused: it is stored and returned with every HEAD.
const MAX_METADATA_BYTES: usize = 4096;
/// How often, in bytes written, the free-space reserve is checked.
const SPACE_CHECK_EVERY: u64 = 16 * 1024 * 1024;

/// What a client asks for when it starts an upload.
pub struct NewUpload {
    pub length: u64,
    pub filename: Option<String>,
    /// The item's expiry, as in a one-shot upload's `expires`.
    pub expires: Option<String>,
    /// The client's metadata as it sent it, to return on request.
    pub metadata: String,
}

/// Where an upload stands after a request appended to it.
pub struct Appended {
    pub offset: u64,
    pub expires_at: Option<i64>,
    /// The item, once the last byte arrived.
    pub item: Option<Item>,
}

fn partials(app: &App) -> Partials {
    Partials::new(&app.settings().data_dir)
}

fn upload_uuid(id: &str) -> Result<uuid::Uuid> {
    parse_item_id(id).ok_or(AppError::NotFound)
}

fn next_expiry(app: &App) -> i64 {
    now_ms().saturating_add(app.settings().upload_expiry.as_millis() as i64)
}

/// Start an upload. Refused past the size limit (413), when the whole file would
/// not fit above the free-space reserve (507), without a file name (400), and when
/// the user already has the most unfinished uploads allowed (403).
pub async fn create(app: &App, user: &SignedIn, new: NewUpload) -> Result<ResumableUpload> {
    let limit = app.settings().max_upload_bytes;
    if new.length > limit {
        return Err(AppError::PayloadTooLarge { limit });
    }
    if new.metadata.len() > MAX_METADATA_BYTES {
        return Err(AppError::BadRequest(format!(
            "Upload-Metadata is longer than {MAX_METADATA_BYTES} bytes"
        )));
    }
    let name = new
        .filename
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| AppError::BadRequest("name the file: Upload-Metadata filename".into()))?;
    let expiry = items::expiry(app, new.expires.as_deref())?;
    if !app
        .blobs()
        .has_room_for(new.length)
        .map_err(anyhow::Error::from)?
    {
        return Err(AppError::InsufficientStorage);
    }
    let unfinished = app.store().count_unfinished_uploads(&user.id).await?;
    if unfinished >= i64::from(app.settings().max_unfinished_uploads) {
        return Err(AppError::Forbidden(
            "too many unfinished uploads: finish or delete one first",
        ));
    }
    let id = uuid::Uuid::now_v7();
    let now = now_ms();
    let upload = ResumableUpload {
        id: id.to_string(),
        user_id: user.id.clone(),
        name,
        item_expiry: expiry.as_str().to_string(),
        length: new.length as i64,
        received: 0,
        metadata: new.metadata,
        created_at: now,
        expires_at: next_expiry(app),
        completed_at: None,
    };
    // The row first: an upload directory without a row is never left behind.
    app.store().insert_upload(&upload).await?;
    if let Err(e) = partials(app).create(&id).await {
        let _ = app.store().delete_upload(&upload.id).await;
        return Err(anyhow::Error::from(e).into());
    }
    tracing::info!(upload = %upload.id, length = upload.length, "resumable upload started");
    Ok(upload)
}

/// The user's own upload. Another user's, a finished-and-expired one or an
/// unknown id is not found; an unfinished one past its expiry is gone.
pub async fn find(app: &App, user: &SignedIn, id: &str) -> Result<ResumableUpload> {
    let uuid = upload_uuid(id)?;
    let upload = app
        .store()
        .upload(&uuid.to_string())
        .await?
        .filter(|u| u.user_id == user.id)
        .ok_or(AppError::NotFound)?;
    if upload.expires_at <= now_ms() {
        return Err(match upload.completed_at {
            Some(_) => AppError::NotFound,
            None => AppError::Gone("the upload expired; start it again"),
        });
    }
    Ok(upload)
}

/// Append a request's body at `offset`. The offset must be the acknowledged one
/// (409 otherwise), and one request at a time writes (423). An interrupted body
/// keeps what arrived; a checksum mismatch (460) or a body past the declared
/// length (413) keeps nothing of this request.
pub async fn append<S, B>(
    app: &App,
    user: &SignedIn,
    id: &str,
    offset: u64,
    announced: Option<u64>,
    checksum: Option<Checksum>,
    body: S,
) -> Result<Appended>
where
    S: Stream<Item = std::result::Result<B, UploadError>> + Unpin,
    B: AsRef<[u8]>,
{
    let upload = find(app, user, id).await?;
    check_offset(&upload, offset)?;
    // A body announced larger than what is left is refused before it is read.
    if announced.is_some_and(|len| offset.saturating_add(len) > upload.length as u64) {
        return Err(AppError::PayloadTooLarge {
            limit: upload.length as u64,
        });
    }
    let uuid = upload_uuid(&upload.id)?;
    let partial = lock_partial(app, &uuid).await?;
    // Read again under the lock: a request that held it may have moved the offset.
    let Some(upload) = app.store().upload(&upload.id).await? else {
        let _ = partial.remove().await;
        return Err(AppError::NotFound);
    };
    if recover(app, &upload, &partial).await? {
        // Completed by an earlier request whose answer was lost.
        return Err(offset_conflict(upload.length as u64, offset));
    }
    check_offset(&upload, offset)?;
    let length = upload.length as u64;
    if offset == length {
        return finish_detached(app, user, &upload, partial).await;
    }
    let mut appender = partial
        .append_at(offset)
        .await
        .map_err(anyhow::Error::from)?;
    let mut hasher = checksum.as_ref().map(|c| Hasher::new(c.algorithm));
    let remaining = length - offset;
    let mut next_space_check = 0;
    let mut body = body;
    let outcome: std::result::Result<(), UploadError> = async {
        loop {
            let chunk = match tokio::time::timeout(IDLE_TIMEOUT, body.try_next()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(UploadError::Body("no data for 30 seconds".into())),
            };
            let chunk = chunk.as_ref();
            if appender.written() + chunk.len() as u64 > remaining {
                return Err(UploadError::TooLarge { limit: length });
            }
            if appender.written() >= next_space_check {
                if !app.blobs().has_room_for(SPACE_CHECK_EVERY)? {
                    return Err(UploadError::NoSpace);
                }
                next_space_check = appender.written() + SPACE_CHECK_EVERY;
            }
            if let Some(h) = hasher.as_mut() {
                h.update(chunk);
            }
            appender.write(chunk).await?;
        }
    }
    .await;
    app.metrics()
        .upload_bytes
        .fetch_add(appender.written(), std::sync::atomic::Ordering::Relaxed);
    let had_checksum = checksum.is_some();
    let checksum_ok = match (checksum, hasher) {
        (Some(expected), Some(h)) => h.finalize() == expected.digest,
        _ => true,
    };
    // With a checksum, only a whole body that matches it is kept; without one, an
    // interrupted body keeps what arrived (the client resumes after it).
    let keep = match &outcome {
        Ok(()) => checksum_ok,
        Err(UploadError::Body(_) | UploadError::NoSpace) => !had_checksum,
        Err(_) => false,
    };
    if !keep {
        appender.discard().await.map_err(anyhow::Error::from)?;
        return Err(match outcome {
            Ok(()) => AppError::ChecksumMismatch,
            Err(e) => e.into(),
        });
    }
    let received = appender.sync().await.map_err(anyhow::Error::from)?;
    if received == length {
        return finish_detached(app, user, &upload, partial).await;
    }
    let expires_at = next_expiry(app);
    let recorded = app
        .store()
        .record_received(&upload.id, offset as i64, received as i64, expires_at)
        .await?;
    drop(partial);
    if !recorded {
        return Err(AppError::NotFound);
    }
    outcome?;
    Ok(Appended {
        offset: received,
        expires_at: Some(expires_at),
        item: None,
    })
}

fn check_offset(upload: &ResumableUpload, offset: u64) -> Result<()> {
    let received = upload.received as u64;
    if upload.completed_at.is_some() || offset != received {
        return Err(offset_conflict(received, offset));
    }
    Ok(())
}

fn offset_conflict(received: u64, offset: u64) -> AppError {
    AppError::Conflict(format!(
        "the upload is at offset {received}, not {offset}: ask for the offset (HEAD) and continue from there"
    ))
}

/// Bring a locked upload's files in line with its row after a crash. True when it
/// turns out complete (its item was recorded, the row not yet marked).
async fn recover(app: &App, upload: &ResumableUpload, partial: &Partial) -> Result<bool> {
    let io = |e: std::io::Error| AppError::from(anyhow::Error::from(e));
    let uuid = upload_uuid(&upload.id)?;
    let received = upload.received as u64;
    // Its item recorded, the row not yet marked: the bytes are in the blob store
    // (moved there, or copied there and perhaps still here too).
    if upload.completed_at.is_none() && app.store().item_exists(&upload.id).await? {
        app.store()
            .complete_upload(&upload.id, next_expiry(app))
            .await?;
        partial.remove_data().await.map_err(io)?;
        return Ok(true);
    }
    match partial.len().await.map_err(io)? {
        Some(len) if len >= received => return Ok(false),
        Some(_) => {}
        None => {
            // Moved into the blob store, but its item was never recorded.
            if app
                .blobs()
                .take_back(&uuid, &partial.data_path())
                .await
                .map_err(io)?
            {
                return Ok(false);
            }
            if received == 0 {
                partial.create_data().await.map_err(io)?;
                return Ok(false);
            }
        }
    }
    // Acknowledged bytes are missing (a restore without them, a damaged disk): the
    // upload cannot continue.
    tracing::warn!(upload = %upload.id, "a resumable upload lost its bytes; removing it");
    app.store().delete_upload(&upload.id).await?;
    Err(AppError::Gone("the upload's data is gone; start it again"))
}

/// `finish` in a task of its own: once begun, completion runs to its end even if
/// the request is dropped (the client went away), so the file is never half moved.
async fn finish_detached(
    app: &App,
    user: &SignedIn,
    upload: &ResumableUpload,
    partial: Partial,
) -> Result<Appended> {
    let (app, user, upload) = (app.clone(), user.clone(), upload.clone());
    tokio::spawn(async move { finish(&app, &user, &upload, partial).await })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("completing an upload failed: {e}")))?
}

/// Every byte is here: hash the whole file, hand it to the blob store (the local
/// store moves it; an object store streams a copy) and record the item, as a
/// one-shot upload would. A copy's source is removed only once the item is
/// recorded, so a crash in between leaves the upload to finish again.
async fn finish(
    app: &App,
    user: &SignedIn,
    upload: &ResumableUpload,
    partial: Partial,
) -> Result<Appended> {
    let io = |e: std::io::Error| AppError::from(anyhow::Error::from(e));
    let uuid = upload_uuid(&upload.id)?;
    let expiry = Expiry::parse(&upload.item_expiry).map_err(AppError::BadRequest)?;
    let stored = app.blobs().adopt(&uuid, &partial.data_path()).await?;
    let file = ReceivedFile::resumed(
        app,
        uuid,
        &upload.name,
        stored.size,
        stored.sha256,
        partial.data_path(),
    );
    let item = items::record_file(app, user, file, expiry).await?;
    app.store()
        .complete_upload(&upload.id, next_expiry(app))
        .await?;
    partial.remove_data().await.map_err(io)?;
    drop(partial);
    Ok(Appended {
        offset: upload.length as u64,
        expires_at: None,
        item: Some(item),
    })
}

/// Complete an upload of nothing at once: there is no request to wait for.
pub async fn finish_empty(app: &App, user: &SignedIn, upload: &ResumableUpload) -> Result<Item> {
    let appended = append(
        app,
        user,
        &upload.id,
        0,
        Some(0),
        None,
        futures_util::stream::empty::<std::result::Result<&[u8], UploadError>>(),
    )
    .await?;
    appended
        .item
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("an empty upload did not complete")))
}

/// Delete an unfinished upload and its bytes (423 while a request is sending it).
pub async fn terminate(app: &App, user: &SignedIn, id: &str) -> Result<()> {
    let upload = find(app, user, id).await?;
    let uuid = upload_uuid(&upload.id)?;
    let partial = lock_partial(app, &uuid).await?;
    partial.remove().await.map_err(anyhow::Error::from)?;
    app.store().delete_upload(&upload.id).await?;
    Ok(())
}

/// The sweeper's part: expired uploads with their bytes, and upload directories
/// whose row is gone (its user was deleted). Returns how many went.
pub(super) async fn sweep(app: &App) -> anyhow::Result<usize> {
    let partials = partials(app);
    let mut removed = 0;
    let mut skipped = std::collections::BTreeSet::new();
    loop {
        let ids = app.store().expired_upload_ids(100).await?;
        let fresh: Vec<String> = ids.into_iter().filter(|id| !skipped.contains(id)).collect();
        if fresh.is_empty() {
            break;
        }
        for id in fresh {
            let Some(uuid) = parse_item_id(&id) else {
                app.store().delete_upload(&id).await?;
                continue;
            };
            // A request still writing keeps it until the next pass.
            let Some(partial) = partials.lock(&uuid).await? else {
                skipped.insert(id);
                continue;
            };
            partial.remove().await?;
            app.store().delete_upload(&id).await?;
            removed += 1;
        }
    }
    for uuid in partials.ids()? {
        if app.store().upload(&uuid.to_string()).await?.is_none()
            && let Some(partial) = partials.lock(&uuid).await?
        {
            partial.remove().await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The upload's bytes, held by this request alone (423 while another holds them).
async fn lock_partial(app: &App, uuid: &uuid::Uuid) -> Result<Partial> {
    partials(app)
        .lock(uuid)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or(AppError::Locked(
            "another request is sending this upload; try again shortly",
        ))
}
