//! Items: finding and listing them, posting a note, deleting. An item is
//! recorded, and announced, only once its bytes are safely stored (files arrive
//! through `received`); a deletion removes the rows, then every file, then tells
//! every device.

use super::pagination::{self, Page};
use super::views::{DeletedJson, ItemJson};
use super::{App, SignedIn};
use crate::blobs::sha256_hex;
use crate::domain::{
    DisplayName, Expiry, ItemKind, NOTE_CONTENT_TYPE, is_inline_safe, parse_cursor, parse_item_id,
};
use crate::error::{AppError, Result};
use crate::store::{Item, ItemFile, ItemsPage, now_ms};

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

/// A note's text as it is kept: line ends as "\n", not empty, within the limit.
pub(super) fn clean_note(app: &App, text: &str) -> Result<String> {
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
    Ok(text)
}

pub async fn create_note(app: &App, user: &SignedIn, text: &str, expiry: Expiry) -> Result<Item> {
    let text = clean_note(app, text)?;
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
        files: Vec::new(),
    };
    announce_created(app, &item).await?;
    Ok(item)
}

pub(super) async fn announce_created(app: &App, item: &Item) -> Result<()> {
    let payload = serde_json::to_string(&ItemJson::new(item)).map_err(anyhow::Error::from)?;
    app.store().insert_item(item, &payload).await?;
    app.events().published();
    Ok(())
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

/// Remove an item: its rows (with an `item.deleted` event), then every file's
/// blob, then tell every device. False when it was already gone.
pub(super) async fn remove(app: &App, id: &str) -> Result<bool> {
    let payload = serde_json::to_string(&DeletedJson { id }).map_err(anyhow::Error::from)?;
    let Some((item, _event)) = app.store().delete_item(id, &payload).await? else {
        return Ok(false);
    };
    // Every blob is tried; the first failure is reported once all were. A file
    // item always has file rows (the migration gave old ones theirs); its own id
    // is its first blob's key all the same.
    let mut keys: Vec<&str> = item.files.iter().map(|f| f.id.as_str()).collect();
    if keys.is_empty() && !item.is_note() {
        keys.push(&item.id);
    }
    let mut failed = None;
    for uuid in keys.into_iter().filter_map(parse_item_id) {
        if let Err(e) = app.blobs().remove(&uuid).await {
            tracing::error!(item = %item.id, file = %uuid, error = ?e, "cannot remove a file");
            failed.get_or_insert(e);
        }
    }
    app.events().published();
    if let Some(e) = failed {
        return Err(anyhow::Error::from(e).into());
    }
    Ok(true)
}

/// `count` bytes of one file of an item from `start`.
pub async fn read_file(
    app: &App,
    file: &ItemFile,
    start: u64,
    count: u64,
) -> Result<crate::blobs::ByteStream> {
    let uuid = parse_item_id(&file.id).ok_or(AppError::NotFound)?;
    app.blobs()
        .read(&uuid, start, count)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                tracing::error!(item = %file.item_id, file = %file.id, error = ?e, "blob missing for a recorded file");
                AppError::NotFound
            }
            _ => {
                tracing::error!(item = %file.item_id, file = %file.id, error = ?e, "cannot read a file from the store");
                AppError::Unavailable
            }
        })
}

/// Where nginx fetches one file's bytes from, after FERRY_ACCEL_REDIRECT's
/// prefix (see `Blobs::accel_target`).
pub async fn accel_target(app: &App, file: &ItemFile) -> Result<String> {
    let uuid = parse_item_id(&file.id).ok_or(AppError::NotFound)?;
    app.blobs().accel_target(&uuid).await.map_err(|e| {
        tracing::error!(item = %file.item_id, file = %file.id, error = ?e, "cannot sign a download for nginx");
        AppError::Unavailable
    })
}

/// What an item's own download (`content_url`) sends.
pub enum Content<'a> {
    Note(&'a str),
    File(ItemFile),
    /// Several files: all of them, as one archive (`archive::open`).
    Archive,
}

pub fn content_of(item: &Item) -> Content<'_> {
    match (&item.note, item.is_note(), item.files.as_slice()) {
        (Some(text), true, _) => Content::Note(text),
        (None, true, _) => Content::Note(""),
        (_, false, [one]) => Content::File(one.clone()),
        (_, false, []) => Content::File(ItemFile {
            // A file item without file rows cannot be written; read one as the
            // single file it would have been before several files per item.
            item_id: item.id.clone(),
            position: 0,
            id: item.id.clone(),
            name: download_name(item).as_str().to_string(),
            content_type: item.content_type.clone(),
            size: item.size,
            sha256: item.sha256.clone(),
            crc32: None,
        }),
        (_, false, _) => Content::Archive,
    }
}

/// File `n` (counted from 0) of an item.
pub fn file_of(item: &Item, n: &str) -> Result<ItemFile> {
    n.parse::<usize>()
        .ok()
        .and_then(|n| item.files.get(n))
        .cloned()
        .ok_or(AppError::NotFound)
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
    !item.is_note() && is_previewable(&item.content_type)
}

/// Whether a file of several is shown beside its name, by the same rule.
pub fn shows_file_preview(file: &ItemFile) -> bool {
    is_previewable(&file.content_type)
}

fn is_previewable(content_type: &str) -> bool {
    content_type.starts_with("image/") && is_inline_safe(content_type)
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
            files: Vec::new(),
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
