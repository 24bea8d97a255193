//! Accounts and the one-time setup link that creates the first admin.

use super::*;

impl Store {
    pub async fn count_users(&self) -> sqlx::Result<i64> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from users"
        )
        .fetch_one(pool)
        .await)
    }

    /// Create a user; `None` when the name is taken.
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> sqlx::Result<Option<User>> {
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            password_hash: password_hash.to_string(),
            is_admin,
            created_at: now_ms(),
        };
        let sql = "insert into users (id, name, password_hash, is_admin, created_at) values ($1, $2, $3, $4, $5) on conflict (name) do nothing";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(&user.id)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(user.is_admin)
            .bind(user.created_at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok((done == 1).then_some(user))
    }

    pub async fn user_by_name(&self, name: &str) -> sqlx::Result<Option<User>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select * from users where name = $1"
        )
        .bind(name)
        .fetch_optional(pool)
        .await)
    }

    pub async fn list_users(&self) -> sqlx::Result<Vec<User>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select * from users order by name"
        )
        .fetch_all(pool)
        .await)
    }

    /// Change a password and end every session of that user.
    pub async fn set_password(&self, user_id: &str, password_hash: &str) -> sqlx::Result<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("update users set password_hash = $1 where id = $2")
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("delete from sessions where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            // A sign-in link made before is a session waiting to start: it goes too.
            sqlx::query("delete from device_links where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.cache().forget_credentials();
            Ok(n == 1)
        })
    }

    pub async fn delete_user(&self, name: &str) -> sqlx::Result<bool> {
        let deleted = on_pool!(self, |pool| sqlx::query(
            "delete from users where name = $1"
        )
        .bind(name)
        .execute(pool)
        .await?
        .rows_affected())
            == 1;
        // Their sessions and tokens are gone, and their items lost their author.
        self.cache().forget_all();
        Ok(deleted)
    }

    // ---- first-admin setup -----------------------------------------------------

    pub async fn add_setup_token(&self, token_hash: &str) -> sqlx::Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "insert into setup_tokens (token_hash, created_at) values ($1, $2)"
        )
        .bind(token_hash)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ()))
    }

    pub async fn setup_token_valid(&self, token_hash: &str) -> sqlx::Result<bool> {
        let n: i64 = on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from setup_tokens where token_hash = $1"
        )
        .bind(token_hash)
        .fetch_one(pool)
        .await?);
        Ok(n == 1 && self.count_users().await? == 0)
    }

    /// Create the first admin with a setup token. Succeeds once: the token is
    /// consumed, all other setup tokens are dropped, and the user table must be empty.
    pub async fn complete_setup(
        &self,
        token_hash: &str,
        name: &str,
        password_hash: &str,
    ) -> sqlx::Result<Option<User>> {
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            password_hash: password_hash.to_string(),
            is_admin: true,
            created_at: now_ms(),
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let consumed = sqlx::query("delete from setup_tokens where token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // Inserting only when no user exists keeps two racing visitors from both
            // becoming admin, on either backend.
            let created = sqlx::query(
                "insert into users (id, name, password_hash, is_admin, created_at) \
                 select $1, $2, $3, $4, $5 where not exists (select 1 from users)",
            )
            .bind(&user.id)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(true)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if consumed != 1 || created != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            sqlx::query("delete from setup_tokens")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(user))
        })
    }
}
