//! `load seed`: a migrated database with a bench user, an API token, a session and
//! N items with their `item.created` events.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ferry::auth::{random_token, token_hash};
use ferry::config::Settings;
use ferry::store::{Item, Store, now_ms};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 0)]
    items: usize,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let Args {
        database_url,
        data_dir,
        items,
    } = args;
    let (database_url, data_dir) = (database_url.as_str(), data_dir.as_path());
    let settings = Settings::from_env([
        ("FERRY_DATA_DIR".to_string(), data_dir.display().to_string()),
        ("FERRY_DATABASE_URL".to_string(), database_url.to_string()),
    ])
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(data_dir)?;
    let store = Store::connect(&settings).await?;
    store.migrate().await?;
    let user = match store.create_user("bench", "!", true).await? {
        Some(user) => user,
        None => store
            .user_by_name("bench")
            .await?
            .context("bench user vanished")?,
    };
    let token = random_token();
    store
        .create_api_token(
            &user.id,
            &format!("bench-{}", &token[..8]),
            &token_hash(&token),
        )
        .await?;
    let session = random_token();
    store
        .create_session(
            &token_hash(&session),
            &user.id,
            &random_token(),
            now_ms() + 30 * 24 * 3600 * 1000,
        )
        .await?;

    let started = Instant::now();
    let rows = bench_items(items, &user.id);
    macro_rules! bulk_insert {
        ($pool:expr, $db:ty) => {{
            let mut tx = $pool.begin().await?;
            for chunk in rows.chunks(400) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "insert into items (id, author_id, kind, name, content_type, size, sha256, note, created_at, expires_at) ",
                );
                q.push_values(chunk, |mut b, (item, _)| {
                    b.push_bind(&item.id)
                        .push_bind(&item.author_id)
                        .push_bind(&item.kind)
                        .push_bind(&item.name)
                        .push_bind(&item.content_type)
                        .push_bind(item.size)
                        .push_bind(&item.sha256)
                        .push_bind(&item.note)
                        .push_bind(item.created_at)
                        .push_bind(item.expires_at);
                });
                q.build().execute(&mut *tx).await?;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "insert into events (kind, item_id, payload, created_at) ",
                );
                q.push_values(chunk, |mut b, (item, payload)| {
                    b.push_bind("item.created")
                        .push_bind(&item.id)
                        .push_bind(payload)
                        .push_bind(item.created_at);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }};
    }
    match &store {
        Store::Sqlite { pool, .. } => bulk_insert!(pool, sqlx::Sqlite),
        Store::Postgres { pool, .. } => bulk_insert!(pool, sqlx::Postgres),
    }
    let count = store.count_items().await?;
    store.close().await;
    Ok(json!({
        "token": token,
        "session": session,
        "items": count,
        "seed_secs": started.elapsed().as_secs_f64(),
    }))
}

/// Items as a household makes them: mostly short notes, every tenth a file, one a
/// second up to now (so none has expired and no event is old enough to be pruned).
fn bench_items(n: usize, author: &str) -> Vec<(Item, String)> {
    const WORDS: &[&str] = &[
        "ferry", "boarding", "pass", "photos", "from", "the", "trip", "shopping", "list", "milk",
        "bread", "meeting", "notes", "link", "recipe", "invoice", "draft",
    ];
    let now = now_ms();
    (0..n)
        .map(|i| {
            let created_at = now - ((n - i) as i64) * 1000;
            let secs = (created_at / 1000) as u64;
            let nanos = ((created_at % 1000) * 1_000_000) as u32;
            let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos));
            let file = i % 10 == 0;
            let text: String = (0..8 + i % 24)
                .map(|w| WORDS[(i * 7 + w * 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ");
            let item = Item {
                id: id.to_string(),
                author_id: Some(author.to_string()),
                author_name: Some("bench".into()),
                kind: if file { "file" } else { "note" }.into(),
                name: file.then(|| format!("scan-{i}.pdf")),
                content_type: if file {
                    "application/pdf"
                } else {
                    "text/plain; charset=utf-8"
                }
                .into(),
                size: if file {
                    250_000 + i as i64
                } else {
                    text.len() as i64
                },
                sha256: format!("{:064x}", i),
                note: (!file).then_some(text),
                created_at,
                expires_at: None,
            };
            let payload = item.to_json().to_string();
            (item, payload)
        })
        .collect()
}
