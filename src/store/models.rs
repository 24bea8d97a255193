//! Rows as both backends return them: text ids, unix-millisecond instants.

use crate::domain::ItemKind;
pub use crate::domain::rfc3339;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
}

/// The signed-in user of a request, from a session cookie or an API token.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionUser {
    pub id: String,
    pub name: String,
    pub is_admin: bool,
    /// Empty for API tokens, which are not exposed to cross-site forms.
    pub csrf_token: String,
}

/// A session as the account's device list shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A one-time link that signs another device in.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeviceLink {
    pub user_id: String,
    pub user_name: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Item {
    pub id: String,
    pub author_id: Option<String>,
    pub author_name: Option<String>,
    #[sqlx(try_from = "String")]
    pub kind: ItemKind,
    pub name: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub note: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// A file item's files, in order (from `item_files`); empty for a note.
    #[sqlx(skip)]
    pub files: Vec<ItemFile>,
}

/// One file of an item. `id` is its blob key; the first file's is the item's id.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemFile {
    pub item_id: String,
    pub position: i64,
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    /// Unknown (NULL) for files stored before CRCs were kept, until first needed.
    pub crc32: Option<i64>,
}

impl Item {
    pub fn is_note(&self) -> bool {
        self.kind == ItemKind::Note
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Share {
    pub id: String,
    pub item_id: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub password_hash: Option<String>,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "item.created",
            Self::Deleted => "item.deleted",
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub item_id: String,
    pub payload: String,
    pub created_at: i64,
}
