//! Leases: which replica does a singleton job (the sweeper) right now.

use super::*;

impl Store {
    /// Take or renew a named lease. Only one holder at a time across replicas, and
    /// a crashed holder's lease lapses after `ttl`.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> sqlx::Result<bool> {
        let now = now_ms();
        let sql = "insert into leases (name, holder, expires_at) values ($1, $2, $3) \
                   on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at \
                   where leases.expires_at < $4 or leases.holder = $2";
        on_pool!(self, |pool| Ok(sqlx::query(sql)
            .bind(name)
            .bind(holder)
            .bind(now + ttl.as_millis() as i64)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
            == 1))
    }
}
