//! "Download all": an item's files as one stored ZIP, built as it is sent. Sizes
//! and CRC-32s are known from upload time, so the archive's length and ETag are
//! known before its first byte, and any range of it is read from the headers
//! (`domain::zip`) and the files' blobs alone; nothing is buffered or written.
//!
//! Files stored before CRCs were kept have none in the database; the first
//! archive that holds such a file reads it once to compute its CRC and stores it.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::App;
use crate::blobs::{ByteStream, hex};
use crate::domain::zip::{Piece, ZipEntry, ZipLayout, unique_names};
use crate::domain::{DisplayName, parse_item_id};
use crate::error::{AppError, Result};
use crate::store::{Item, ItemFile};

pub const ZIP_CONTENT_TYPE: &str = "application/zip";

/// What an item's own row says of its content (`content_url`): its one file, or
/// the archive of its several files (so a client that knows nothing of `files`
/// still downloads all of them, with the right name, type and length).
pub struct WholeItem {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// The file's SHA-256, or for an archive the digest its ETag is made of.
    pub sha256: String,
}

pub fn whole_item(files: &[ItemFile], created_at: i64) -> WholeItem {
    match files {
        [one] => WholeItem {
            name: one.name.clone(),
            content_type: one.content_type.clone(),
            size: one.size.max(0) as u64,
            sha256: one.sha256.clone(),
        },
        many => WholeItem {
            name: archive_name(many),
            content_type: ZIP_CONTENT_TYPE.into(),
            size: layout(many, created_at).len(),
            sha256: digest(many, created_at),
        },
    }
}

/// "photo and 2 more.zip", after the first file.
pub fn archive_name(files: &[ItemFile]) -> String {
    let first = files.first().map_or("files", |f| f.name.as_str());
    let stem = match first.rfind('.') {
        Some(dot) if dot > 0 => &first[..dot],
        _ => first,
    };
    match files.len() {
        0 | 1 => format!("{stem}.zip"),
        n => format!("{stem} and {} more.zip", n - 1),
    }
}

fn entries(files: &[ItemFile]) -> Vec<ZipEntry> {
    let names = unique_names(files.iter().map(|f| f.name.as_str()));
    files
        .iter()
        .zip(names)
        .map(|(f, name)| ZipEntry {
            name,
            size: f.size.max(0) as u64,
            // The length does not depend on CRCs; `open` fills the missing ones.
            crc32: f.crc32.map_or(0, |c| c as u32),
        })
        .collect()
}

fn layout(files: &[ItemFile], created_at: i64) -> ZipLayout {
    ZipLayout::new(&entries(files), created_at)
}

/// What the archive's bytes depend on, hashed: its layout's version, date, and
/// every file's name, size and content (its SHA-256). Equal digests, equal bytes.
fn digest(files: &[ItemFile], created_at: i64) -> String {
    let mut h = Sha256::new();
    h.update(format!("ferry-zip-1\n{created_at}\n"));
    for (f, name) in files
        .iter()
        .zip(unique_names(files.iter().map(|f| f.name.as_str())))
    {
        h.update(format!("{}\n{}\n{}\n", name.len(), f.size, f.sha256));
        h.update(name.as_bytes());
    }
    hex(&h.finalize())
}

/// An item's archive, ready to be read in any range.
pub struct Archive {
    pub layout: ZipLayout,
    /// The ETag's value, without quotes.
    pub etag: String,
    pub name: DisplayName,
    files: Vec<ItemFile>,
}

/// The archive of a file item, with every file's CRC-32 known.
pub async fn open(app: &App, item: &Item) -> Result<Archive> {
    if item.is_note() || item.files.is_empty() {
        return Err(AppError::NotFound);
    }
    let mut files = item.files.clone();
    for file in files.iter_mut().filter(|f| f.crc32.is_none()) {
        let crc = compute_crc32(app, file).await?;
        app.store().set_file_crc32(&file.id, crc).await?;
        file.crc32 = Some(i64::from(crc));
    }
    Ok(Archive {
        layout: layout(&files, item.created_at),
        etag: format!("zip-{}", digest(&files, item.created_at)),
        name: DisplayName::clean(&archive_name(&files)),
        files,
    })
}

/// A file's CRC-32, by reading it through the blob store.
async fn compute_crc32(app: &App, file: &ItemFile) -> Result<u32> {
    tracing::info!(file = %file.id, size = file.size, "computing the CRC-32 of a file stored before CRCs were kept");
    let mut stream = super::items::read_file(app, file, 0, file.size.max(0) as u64).await?;
    let mut crc = crc32fast::Hasher::new();
    while let Some(chunk) = stream.try_next().await.map_err(anyhow::Error::from)? {
        crc.update(&chunk);
    }
    Ok(crc.finalize())
}

/// `count` bytes of the archive from `start`: header bytes from the layout, file
/// data from the blob store, each blob opened only when its turn comes.
pub fn read(app: &App, archive: &Archive, start: u64, count: u64) -> ByteStream {
    let app = app.clone();
    let keys: Vec<Option<uuid::Uuid>> =
        archive.files.iter().map(|f| parse_item_id(&f.id)).collect();
    futures_util::stream::iter(archive.layout.pieces(start, count))
        .then(move |piece| {
            let (app, keys) = (app.clone(), keys.clone());
            async move {
                match piece {
                    Piece::Bytes(b) => {
                        Ok(futures_util::stream::once(async { Ok::<Bytes, _>(b) }).boxed())
                    }
                    Piece::File {
                        index,
                        start,
                        count,
                    } => {
                        let key = keys.get(index).copied().flatten().ok_or_else(|| {
                            std::io::Error::other("an archive entry has no blob key")
                        })?;
                        app.blobs().read(&key, start, count).await
                    }
                }
            }
        })
        .try_flatten()
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: i64) -> ItemFile {
        ItemFile {
            item_id: "i".into(),
            position: 0,
            id: "f".into(),
            name: name.into(),
            content_type: "image/jpeg".into(),
            size,
            sha256: format!("{size:064}"),
            crc32: Some(1),
        }
    }

    #[test]
    fn one_file_is_itself_and_several_are_an_archive() {
        let one = whole_item(&[file("a.jpg", 5)], 0);
        assert_eq!((one.name.as_str(), one.size), ("a.jpg", 5));
        let files = [file("a.jpg", 5), file("a.jpg", 7), file("b", 0)];
        let many = whole_item(&files, 0);
        assert_eq!(many.name, "a and 2 more.zip");
        assert_eq!(many.content_type, ZIP_CONTENT_TYPE);
        assert_eq!(many.size, layout(&files, 0).len());
        assert_ne!(
            many.sha256,
            whole_item(&files, 1000).sha256,
            "the date is in the bytes"
        );
        assert_ne!(many.sha256, whole_item(&files[..2], 0).sha256);
    }
}
