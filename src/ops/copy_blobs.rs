//! `ferry blobs copy --to s3|local`: every blob from one file store into the
//! other (the data directory's `blobs/` and the bucket of the S3 settings,
//! FERRY_S3_ENDPOINT and the rest), each checked against its item's SHA-256, so
//! an instance can switch FERRY_BLOB_STORE without a restore. The source is left
//! as it is; a blob the target already holds, whole and with the right checksum,
//! is kept, so the command may be run again (after an interruption, or once more
//! just before the switch, for the files that came since).

use std::collections::BTreeMap;

use anyhow::bail;

use super::progress::{Progress, bytes_of};
use crate::blobs::{Blobs, hex};
use crate::config::{BlobStoreKind, Settings};
use crate::domain::ByteSize;
use crate::store::Store;

/// What a copy did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Blobs written into the target.
    pub copied: u64,
    /// Blobs the target already held, verified.
    pub already_there: u64,
    pub bytes: u64,
}

/// Copy every blob into the store `to`, from the other one.
pub async fn copy_blobs(
    settings: &Settings,
    to: BlobStoreKind,
    progress: &Progress,
) -> anyhow::Result<CopyReport> {
    let local = || Blobs::open_local(&settings.data_dir, 0);
    let (source, target) = match to {
        BlobStoreKind::S3 => (local()?, Blobs::open_s3(settings).await?),
        BlobStoreKind::Local => (Blobs::open_s3(settings).await?, local()?),
    };
    let store = super::backup::open_existing(settings).await?;
    let result = copy_between(&store, &source, &target, progress).await;
    store.close().await;
    result
}

async fn copy_between(
    store: &Store,
    source: &Blobs,
    target: &Blobs,
    progress: &Progress,
) -> anyhow::Result<CopyReport> {
    // What each blob must be: its item's size and checksum.
    let expected: BTreeMap<String, (u64, String)> = store
        .file_blobs()
        .await?
        .into_iter()
        .map(|(id, size, sha256)| (id, (size as u64, sha256)))
        .collect();
    let listed = source.list().await?;
    let present: std::collections::HashSet<String> =
        listed.iter().map(|(id, _)| id.to_string()).collect();
    let missing: Vec<&String> = expected
        .keys()
        .filter(|id| !present.contains(*id))
        .collect();
    if let Some(id) = missing.first() {
        bail!(
            "item {id} has no file in the {} ({} such items); nothing was copied",
            source.describe(),
            missing.len()
        );
    }
    progress.say(format!(
        "blobs copy: {} files from the {} into the {}",
        listed.len(),
        source.describe(),
        target.describe()
    ));
    let total_bytes: u64 = expected.values().map(|(size, _)| size).sum();
    let mut report = CopyReport::default();
    let mut failed = Vec::new();
    for (n, (id, _)) in listed.iter().enumerate() {
        let Some(size) = source.len(id).await? else {
            continue; // removed since the listing (its item was deleted)
        };
        let want = expected.get(&id.to_string());
        if let Some((recorded, _)) = want
            && *recorded != size
        {
            failed.push(format!(
                "{id}: {size} bytes in the source, {recorded} recorded"
            ));
            continue;
        }
        if target.len(id).await? == Some(size)
            && let Some((_, sha256)) = want
            && &hash_of(target, id, size).await? == sha256
        {
            report.already_there += 1;
        } else {
            let stream = source.read(id, 0, size).await?;
            let stored = target.put_stream(id, stream).await?;
            if want.is_some_and(|(_, sha256)| *sha256 != stored.sha256) {
                target.remove(id).await?;
                failed.push(format!("{id}: its bytes do not match the recorded SHA-256"));
                continue;
            }
            report.copied += 1;
        }
        report.bytes += size;
        progress.tick(|| {
            format!(
                "blobs copy: files {}/{}, {}",
                n + 1,
                listed.len(),
                bytes_of(report.bytes, total_bytes)
            )
        });
    }
    progress.say(format!(
        "blobs copy: {} copied, {} already there, {}",
        report.copied,
        report.already_there,
        ByteSize(report.bytes)
    ));
    if !failed.is_empty() {
        bail!(
            "{} files could not be copied faithfully:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(report)
}

/// The SHA-256 of a stored blob, read back through the store.
async fn hash_of(blobs: &Blobs, id: &uuid::Uuid, size: u64) -> anyhow::Result<String> {
    use futures_util::TryStreamExt;
    use sha2::{Digest, Sha256};
    let mut stream = blobs.read(id, 0, size).await?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.try_next().await? {
        hasher.update(&chunk);
    }
    Ok(hex(&hasher.finalize()))
}
