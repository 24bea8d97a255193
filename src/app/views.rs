//! How items and share links look to API clients and in live events: one view
//! struct per model, serialised straight from the row.

use serde::Serialize;

use crate::store::{Item, ItemFile, Share, rfc3339};

/// Where an item's bytes are served; the API, events and pages all link here.
/// For an item of several files, that is all of them as a ZIP.
pub fn content_path(item_id: &str) -> String {
    format!("/items/{item_id}/content")
}

/// Where file `n` (from 0) of an item is served on its own.
pub fn file_path(item_id: &str, n: usize) -> String {
    format!("/items/{item_id}/files/{n}")
}

/// Where every file of an item is served as one ZIP ("Download all").
pub fn zip_path(item_id: &str) -> String {
    format!("/items/{item_id}/zip")
}

/// One file of an item, as the API and live events show it.
#[derive(Serialize)]
pub struct FileJson<'a> {
    pub content_type: &'a str,
    pub name: &'a str,
    pub sha256: &'a str,
    pub size: i64,
    pub url: String,
}

/// An item as the API shows it, also the data of its `item.created` event.
#[derive(Serialize)]
pub struct ItemJson<'a> {
    pub author: Option<&'a str>,
    pub content_type: &'a str,
    pub content_url: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub id: &'a str,
    pub kind: &'static str,
    pub name: Option<&'a str>,
    pub sha256: &'a str,
    pub size: i64,
    pub text: Option<&'a str>,
    /// A file item's files in order (one for a single file); empty for a note.
    pub files: Vec<FileJson<'a>>,
    /// A file item's files as one ZIP; absent for a note.
    pub zip_url: Option<String>,
}

impl<'a> ItemJson<'a> {
    pub fn new(item: &'a Item) -> Self {
        Self {
            author: item.author_name.as_deref(),
            content_type: &item.content_type,
            content_url: content_path(&item.id),
            created_at: rfc3339(item.created_at),
            expires_at: item.expires_at.map(rfc3339),
            id: &item.id,
            kind: item.kind.as_str(),
            name: item.name.as_deref(),
            sha256: &item.sha256,
            size: item.size,
            text: item.note.as_deref(),
            files: item
                .files
                .iter()
                .enumerate()
                .map(|(n, f)| file_json(item, n, f))
                .collect(),
            zip_url: (!item.is_note()).then(|| zip_path(&item.id)),
        }
    }
}

fn file_json<'a>(item: &Item, n: usize, f: &'a ItemFile) -> FileJson<'a> {
    FileJson {
        content_type: &f.content_type,
        name: &f.name,
        sha256: &f.sha256,
        size: f.size,
        url: file_path(&item.id, n),
    }
}

/// The data of an `item.deleted` event.
#[derive(Serialize)]
pub struct DeletedJson<'a> {
    pub id: &'a str,
}

/// A share link as the API shows it. The token is never stored, so it appears only
/// in the answer that created the link (`token`, `url`).
#[derive(Serialize)]
pub struct ShareJson<'a> {
    pub id: &'a str,
    pub item_id: &'a str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub has_password: bool,
    pub revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl<'a> ShareJson<'a> {
    pub fn new(share: &'a Share) -> Self {
        Self {
            id: &share.id,
            item_id: &share.item_id,
            created_at: rfc3339(share.created_at),
            expires_at: share.expires_at.map(rfc3339),
            max_downloads: share.max_downloads,
            downloads: share.downloads,
            has_password: share.password_hash.is_some(),
            revoked: share.revoked_at.is_some(),
            token: None,
            url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ItemKind;

    #[test]
    fn an_item_serialises_with_its_links_and_times() {
        let item = Item {
            id: "0190c0de-0000-7000-8000-000000000001".into(),
            author_id: Some("u".into()),
            author_name: Some("ada".into()),
            kind: ItemKind::File,
            name: Some("a \"b\".txt".into()),
            content_type: "text/plain".into(),
            size: 3,
            sha256: "ab".into(),
            note: None,
            created_at: 1_700_000_000_000,
            expires_at: Some(1_700_000_060_000),
            files: Vec::new(),
        };
        let json = serde_json::to_value(ItemJson::new(&item)).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({
                "author": "ada",
                "content_type": "text/plain",
                "content_url": "/items/0190c0de-0000-7000-8000-000000000001/content",
                "created_at": "2023-11-14T22:13:20Z",
                "expires_at": "2023-11-14T22:14:20Z",
                "id": "0190c0de-0000-7000-8000-000000000001",
                "kind": "file",
                "name": "a \"b\".txt",
                "sha256": "ab",
                "size": 3,
                "text": null,
                "files": [],
                "zip_url": "/items/0190c0de-0000-7000-8000-000000000001/zip",
            })
        );
    }
}
