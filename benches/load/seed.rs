//! `load seed`: a migrated database with a bench user, an API token, a session and
//! N items with their `item.created` events, written through ferry's store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ferry::app::views::ItemJson;
use ferry::app::{App, accounts};
use ferry::auth::random_token;
use ferry::blobs::Blobs;
use ferry::config::Settings;
use ferry::domain::{ItemKind, NOTE_CONTENT_TYPE, content_type_for};
use ferry::events::EventHub;
use ferry::store::dump::{Row, Table};
use ferry::store::{EventKind, Item, Store, now_ms};
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

/// Items per round of inserts, so the rows of 100,000 items are never all in memory.
const ITEMS_PER_ROUND: usize = 1000;

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let settings = Settings::from_env([
        (
            "FERRY_DATA_DIR".to_string(),
            args.data_dir.display().to_string(),
        ),
        ("FERRY_DATABASE_URL".to_string(), args.database_url),
    ])?;
    std::fs::create_dir_all(&args.data_dir)?;
    let store = Store::connect(&settings).await?;
    store.migrate().await?;
    let user = match store.create_user("bench", "!", true).await? {
        Some(user) => user,
        None => store
            .user_by_name("bench")
            .await?
            .context("bench user vanished")?,
    };
    // A token and a session as the account page and the login form make them.
    let blobs = Blobs::open(&settings).await?;
    let app = App::new(settings.into(), store.clone(), blobs, EventHub::detached());
    let token_name = format!("bench-{}", &random_token()[..8]);
    let token = accounts::create_token(&app, &user.id, &token_name).await?;
    let session = accounts::start_session(&app, &user.id, None, Some("ferry-bench")).await?;

    let started = Instant::now();
    load_items(&store, &bench_items(args.items, &user.id)).await?;
    let count = store.count_items().await?;
    app.close().await;
    Ok(json!({
        "token": token,
        "session": session,
        "items": count,
        "seed_secs": started.elapsed().as_secs_f64(),
    }))
}

/// The items and an `item.created` event for each, in one transaction of the store's
/// bulk loader (the one `ferry restore` uses): `Store::insert_item` commits, and so
/// fsyncs, once per item. Unlike `insert_item`, each event is dated like its item.
async fn load_items(store: &Store, items: &[Item]) -> anyhow::Result<()> {
    let first_event_id = store.latest_event_id().await? + 1;
    let mut tx = store.begin_load().await?;
    let tables = tx.tables().await?;
    let table = |name: &str| -> anyhow::Result<Table> {
        tables
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .with_context(|| format!("the schema has no {name} table"))
    };
    let loaded = [table("items")?, table("events")?];
    let [items_table, events_table] = &loaded;
    for (round, chunk) in items.chunks(ITEMS_PER_ROUND).enumerate() {
        let first_id = first_event_id + (round * ITEMS_PER_ROUND) as i64;
        let item_rows: Vec<Row> = chunk.iter().map(item_row).collect();
        let event_rows = chunk
            .iter()
            .zip(first_id..)
            .map(|(item, id)| event_row(id, item))
            .collect::<anyhow::Result<Vec<Row>>>()?;
        tx.insert(items_table, &item_rows).await?;
        tx.insert(events_table, &event_rows).await?;
    }
    // New events (the notes `load sse` posts) get ids after the loaded ones.
    tx.set_sequences(&loaded, &BTreeMap::new()).await?;
    tx.commit().await
}

/// An item's row of the `items` table.
fn item_row(item: &Item) -> Row {
    row([
        ("id", json!(item.id)),
        ("author_id", json!(item.author_id)),
        ("kind", json!(item.kind.as_str())),
        ("name", json!(item.name)),
        ("content_type", json!(item.content_type)),
        ("size", json!(item.size)),
        ("sha256", json!(item.sha256)),
        ("note", json!(item.note)),
        ("created_at", json!(item.created_at)),
        ("expires_at", json!(item.expires_at)),
    ])
}

/// The `events` row `Store::insert_item` records for an item, with its payload.
fn event_row(id: i64, item: &Item) -> anyhow::Result<Row> {
    Ok(row([
        ("id", json!(id)),
        ("kind", json!(EventKind::Created.as_str())),
        ("item_id", json!(item.id)),
        (
            "payload",
            json!(serde_json::to_string(&ItemJson::new(item))?),
        ),
        ("created_at", json!(item.created_at)),
    ]))
}

fn row<const N: usize>(columns: [(&str, Value); N]) -> Row {
    columns
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

/// Items as a household makes them: mostly short notes, every tenth a file, one a
/// second up to now (so none has expired and no event is old enough to be pruned).
fn bench_items(n: usize, author: &str) -> Vec<Item> {
    const WORDS: &[&str] = &[
        "ferry", "boarding", "pass", "photos", "from", "the", "trip", "shopping", "list", "milk",
        "bread", "meeting", "notes", "link", "recipe", "invoice", "draft",
    ];
    let now = now_ms();
    (0..n)
        .map(|i| {
            let created_at = now - ((n - i) as i64) * 1000;
            // Ids are UUIDv7 as the server makes them, but dated like the item.
            let secs = (created_at / 1000) as u64;
            let nanos = ((created_at % 1000) * 1_000_000) as u32;
            let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos));
            let text: String = (0..8 + i % 24)
                .map(|w| WORDS[(i * 7 + w * 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ");
            let (kind, name, content_type, size, note) = if i % 10 == 0 {
                let name = format!("scan-{i}.pdf");
                let content_type = content_type_for(&name);
                (
                    ItemKind::File,
                    Some(name),
                    content_type,
                    250_000 + i as i64,
                    None,
                )
            } else {
                (
                    ItemKind::Note,
                    None,
                    NOTE_CONTENT_TYPE,
                    text.len() as i64,
                    Some(text),
                )
            };
            Item {
                id: id.to_string(),
                author_id: Some(author.to_string()),
                author_name: Some("bench".into()),
                kind,
                name,
                content_type: content_type.into(),
                size,
                sha256: format!("{i:064x}"),
                note,
                created_at,
                expires_at: None,
            }
        })
        .collect()
}
