//! Items and the events that announce them, written in one transaction.

use super::*;

impl Store {
    /// Record an item and its `item.created` event in one transaction, so that a
    /// visible item always has an event and replay never misses one.
    /// `payload` is the event's data, as the application announces it.
    pub async fn insert_item(&self, item: &Item, payload: &str) -> sqlx::Result<Event> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "insert into items (id, author_id, kind, name, content_type, size, sha256, note, created_at, expires_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&item.id)
            .bind(&item.author_id)
            .bind(item.kind.as_str())
            .bind(&item.name)
            .bind(&item.content_type)
            .bind(item.size)
            .bind(&item.sha256)
            .bind(&item.note)
            .bind(item.created_at)
            .bind(item.expires_at)
            .execute(&mut *tx)
            .await?;
            let event = record_event!(self, tx, EventKind::Created, &item.id, payload);
            tx.commit().await?;
            self.cache().forget_pages();
            Ok(event)
        })
    }

    pub async fn item(&self, id: &str) -> sqlx::Result<Option<Item>> {
        let sql = "select i.*, u.name as author_name from items i left join users u on u.id = i.author_id \
                   where i.id = $1 and (i.expires_at is null or i.expires_at > $2)";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(now_ms())
            .fetch_optional(pool)
            .await)
    }

    /// Newest first; `before` is the id of the last item of the previous page.
    pub async fn list_items(&self, before: Option<&str>, limit: i64) -> sqlx::Result<Arc<[Item]>> {
        if !self.cache().keeps_pages() {
            return Ok(self.query_items(before, limit).await?.into());
        }
        Ok(self.items_page(before, limit).await?.items)
    }

    /// A page of items with the newest event id read before it, for a page whose
    /// live stream resumes after that id: an item created meanwhile is then
    /// replayed to the stream rather than missed.
    pub async fn items_page(&self, before: Option<&str>, limit: i64) -> sqlx::Result<ItemsPage> {
        let ticket = match self.cache().page(before, limit) {
            Ok(page) => return Ok(page),
            Err(ticket) => ticket,
        };
        let last_event_id = self.latest_event_id().await?;
        let page = ItemsPage {
            items: self.query_items(before, limit).await?.into(),
            last_event_id,
        };
        if let Some(ticket) = ticket {
            self.cache().remember_page(ticket, page.clone());
        }
        Ok(page)
    }

    async fn query_items(&self, before: Option<&str>, limit: i64) -> sqlx::Result<Vec<Item>> {
        let sql = "select i.*, u.name as author_name from items i left join users u on u.id = i.author_id \
                   where (i.expires_at is null or i.expires_at > $1) and ($2 is null or i.id < $2) \
                   order by i.id desc limit $3";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(now_ms())
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await)
    }

    /// Delete an item and record `item.deleted`. Returns the deleted item so the
    /// caller can remove its blob once the row is gone.
    pub async fn delete_item(
        &self,
        id: &str,
        payload: &str,
    ) -> sqlx::Result<Option<(Item, Event)>> {
        // Write first: a SQLite transaction that reads and then writes fails at once
        // (SQLITE_BUSY_SNAPSHOT) when another connection committed in between.
        let sql = "delete from items where id = $1 returning *, cast(null as text) as author_name";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let item: Option<Item> = sqlx::query_as(sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(item) = item else {
                return Ok(None);
            };
            let event = record_event!(self, tx, EventKind::Deleted, id, payload);
            tx.commit().await?;
            self.cache().forget_pages();
            Ok(Some((item, event)))
        })
    }

    pub async fn expired_item_ids(&self, limit: i64) -> sqlx::Result<Vec<String>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
            "select id from items where expires_at is not null and expires_at <= $1 order by expires_at limit $2"
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(pool)
        .await
        })
    }

    /// The ids of every blob a row refers to (file items), for sweeping the blobs
    /// no row refers to.
    pub async fn blob_ids_in_use(&self) -> sqlx::Result<Vec<String>> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "select id from items where kind = 'file'"
        )
        .fetch_all(pool)
        .await)
    }

    /// Every file item's blob: its id, size and SHA-256, for checking copies.
    pub async fn file_blobs(&self) -> sqlx::Result<Vec<(String, i64, String)>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select id, size, sha256 from items where kind = 'file' order by id"
        )
        .fetch_all(pool)
        .await)
    }

    pub async fn item_exists(&self, id: &str) -> sqlx::Result<bool> {
        let n: i64 = on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from items where id = $1"
        )
        .bind(id)
        .fetch_one(pool)
        .await?);
        Ok(n > 0)
    }

    pub async fn count_items(&self) -> sqlx::Result<i64> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from items"
        )
        .fetch_one(pool)
        .await)
    }

    // ---- events --------------------------------------------------------------------

    pub async fn events_after(&self, after: i64, limit: i64) -> sqlx::Result<Vec<Event>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select * from events where id > $1 order by id limit $2"
        )
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)
    }

    pub async fn latest_event_id(&self) -> sqlx::Result<i64> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "select coalesce(max(id), 0) from events"
        )
        .fetch_one(pool)
        .await)
    }

    pub async fn prune_events(&self, older_than_ms: i64) -> sqlx::Result<u64> {
        on_pool!(self, |pool| Ok(sqlx::query(
            "delete from events where created_at < $1"
        )
        .bind(older_than_ms)
        .execute(pool)
        .await?
        .rows_affected()))
    }
}
