//! What pages share: the frame every page sits in, rendering, the expiry picker and
//! the item card.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::app::{Item, SignedIn, items, views};
use crate::domain::rfc3339;
use crate::domain::{ByteSize, Expiry};
use crate::error::AppError;

pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => AppError::Internal(e.into()).into_response(),
    }
}

/// What every page's frame needs.
pub struct Layout {
    pub user: Option<String>,
    pub csrf: String,
    pub flash: Option<String>,
    pub version: &'static str,
}

impl Layout {
    pub fn anonymous() -> Self {
        Self {
            user: None,
            csrf: String::new(),
            flash: None,
            version: crate::VERSION,
        }
    }

    pub fn for_user(user: &SignedIn) -> Self {
        Self {
            user: Some(user.name.clone()),
            csrf: user.csrf_token.clone(),
            flash: None,
            version: crate::VERSION,
        }
    }
}

pub struct ExpiryOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

pub fn expiry_options(default: Expiry) -> Vec<ExpiryOption> {
    Expiry::ALL
        .iter()
        .map(|e| ExpiryOption {
            value: e.as_str(),
            label: e.label(),
            selected: *e == default,
        })
        .collect()
}

/// An item as its card shows it (templates/item_card.html), the only drawing of a
/// card: live updates fetch it rendered (`GET /items/{id}/card`).
pub struct ItemCard {
    pub id: String,
    pub is_note: bool,
    pub is_image: bool,
    pub text: String,
    pub name: String,
    pub size_label: String,
    pub author: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub content_url: String,
    /// Set when the item holds several files: each, and all of them as a ZIP.
    pub files: Vec<FileRow>,
    pub zip_url: String,
    pub can_delete: bool,
}

/// One file of an item's card.
pub struct FileRow {
    pub name: String,
    pub size_label: String,
    pub url: String,
    pub preview: bool,
}

impl FileRow {
    /// The rows of an item of several files (none for one file or a note), each
    /// linking to `url_of(n)`.
    pub fn of(item: &Item, url_of: impl Fn(usize) -> String) -> Vec<Self> {
        if item.files.len() < 2 {
            return Vec::new();
        }
        item.files
            .iter()
            .enumerate()
            .map(|(n, f)| Self {
                name: f.name.clone(),
                size_label: ByteSize(f.size.max(0) as u64).to_string(),
                url: url_of(n),
                preview: items::shows_file_preview(f),
            })
            .collect()
    }
}

impl ItemCard {
    pub fn new(item: &Item, viewer: &SignedIn) -> Self {
        Self {
            id: item.id.clone(),
            is_note: item.is_note(),
            is_image: items::shows_preview(item),
            text: item.note.clone().unwrap_or_default(),
            name: item.name.clone().unwrap_or_default(),
            size_label: ByteSize(item.size.max(0) as u64).to_string(),
            author: item
                .author_name
                .clone()
                .unwrap_or_else(|| "(deleted user)".into()),
            created_at: rfc3339(item.created_at),
            expires_at: item.expires_at.map(rfc3339),
            content_url: views::content_path(&item.id),
            files: FileRow::of(item, |n| views::file_path(&item.id, n)),
            zip_url: views::zip_path(&item.id),
            can_delete: items::can_delete(item, viewer),
        }
    }
}
