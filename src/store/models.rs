//! Rows as both backends return them: text ids, unix-millisecond instants.

use serde::Serialize;

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

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: String,
    #[serde(skip)]
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
    pub kind: String,
    pub name: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub note: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl Item {
    pub fn is_note(&self) -> bool {
        self.kind == "note"
    }

    /// The API representation, also the payload of `item.created` events.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.view()).unwrap_or_default()
    }

    /// The API representation, serialised straight from the row: lists of items
    /// are written without building a `serde_json::Value` per item first.
    pub fn view(&self) -> ItemView<'_> {
        ItemView {
            author: self.author_name.as_deref(),
            content_type: &self.content_type,
            content_url: format!("/items/{}/content", self.id),
            created_at: rfc3339(self.created_at),
            expires_at: self.expires_at.map(rfc3339),
            id: &self.id,
            kind: &self.kind,
            name: self.name.as_deref(),
            sha256: &self.sha256,
            size: self.size,
            text: self.note.as_deref(),
        }
    }
}

/// An item as the API shows it. Fields in alphabetical order, the order a
/// `serde_json::Value` object has, so both forms serialise to the same text.
#[derive(Serialize)]
pub struct ItemView<'a> {
    pub author: Option<&'a str>,
    pub content_type: &'a str,
    pub content_url: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub id: &'a str,
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub sha256: &'a str,
    pub size: i64,
    pub text: Option<&'a str>,
}

pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_serialises_like_the_json_value() {
        let item = Item {
            id: "0190c0de-0000-7000-8000-000000000001".into(),
            author_id: Some("u".into()),
            author_name: Some("ada".into()),
            kind: "file".into(),
            name: Some("a \"b\".txt".into()),
            content_type: "text/plain".into(),
            size: 3,
            sha256: "ab".into(),
            note: None,
            created_at: 1_700_000_000_000,
            expires_at: Some(1_700_000_060_000),
        };
        let direct = serde_json::to_string(&item.view()).expect("serialise view");
        let via_value = serde_json::to_string(&item.to_json()).expect("serialise value");
        assert_eq!(direct, via_value);
        assert!(direct.starts_with(r#"{"author":"ada","content_type":"text/plain","#));
    }
}
