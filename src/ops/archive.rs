//! The backup archive: one tar file, the same for both backends.
//!
//! ```text
//! ferry-backup.json      format, Ferry version, schema version (read first by restore)
//! tables/<table>.jsonl   every row of every table, one canonical JSON object a line
//! blobs/<item-id>        the bytes of every file item in the snapshot
//! manifest.json          counts and SHA-256 of every table file and every blob
//! ```
//!
//! [`ArchiveWriter`] writes the entries in that order; [`read_archive`] reads them
//! into a staging directory and verifies every one against the manifest.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::dump::{Column, check_identifier};
use crate::store::now_ms;

/// Version of the archive layout; restore refuses layouts it does not know.
pub const FORMAT: u32 = 1;
const HEADER_ENTRY: &str = "ferry-backup.json";
const MANIFEST_ENTRY: &str = "manifest.json";

/// The first entry of an archive: enough to refuse it before reading the rest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub ferry_version: String,
    pub schema_version: i64,
    pub backend: String,
    pub created_at: String,
}

/// The last entry of an archive: what it holds and how to check it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub ferry_version: String,
    pub ferry_revision: String,
    pub schema_version: i64,
    /// The backend the snapshot was taken from: sqlite or postgres.
    pub backend: String,
    pub created_at: String,
    /// users, items, notes, files, blob_bytes.
    pub counts: BTreeMap<String, u64>,
    pub tables: BTreeMap<String, TableEntry>,
    /// How far id counters had gone (see `DataTx::sequences`).
    pub sequences: BTreeMap<String, i64>,
    pub blobs: BTreeMap<String, BlobEntry>,
    /// File items deleted while the backup ran, whose blobs were gone: restore
    /// leaves them out.
    pub skipped_items: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub columns: Vec<Column>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    /// The header of the archive this manifest ends.
    pub fn header(&self) -> Header {
        Header {
            format: self.format,
            ferry_version: self.ferry_version.clone(),
            schema_version: self.schema_version,
            backend: self.backend.clone(),
            created_at: self.created_at.clone(),
        }
    }
}

// ---- writing ---------------------------------------------------------------------

/// Write to `<output>.partial`, fsync, then rename over `output`: a failed or
/// interrupted backup never leaves a file that looks complete.
pub(super) fn write_file_atomically(
    output: &Path,
    write: impl FnOnce(BufWriter<File>) -> anyhow::Result<BufWriter<File>>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        // Archives hold password hashes: readable by their owner only.
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let result = write(BufWriter::new(file)).and_then(|out| {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&partial, output)
            .with_context(|| format!("cannot rename to {}", output.display()))?;
        if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Appends the entries of an archive in their order: the header (on creation),
/// tables, blobs, then the manifest (on finishing).
pub(super) struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    mtime: u64,
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(out: W, header: &Header) -> anyhow::Result<Self> {
        let mut writer = Self {
            tar: tar::Builder::new(out),
            mtime: (now_ms() / 1000).max(0) as u64,
        };
        let json = serde_json::to_vec_pretty(header)?;
        writer.append(HEADER_ENTRY, json.len() as u64, &json[..])?;
        Ok(writer)
    }

    /// A table's file of canonical lines, `bytes` long.
    pub fn table(&mut self, name: &str, data: impl Read, bytes: u64) -> anyhow::Result<()> {
        self.append(&format!("tables/{name}.jsonl"), bytes, data)
    }

    /// The blob of a file item, `size` bytes long.
    pub fn blob(&mut self, id: &uuid::Uuid, data: impl Read, size: u64) -> anyhow::Result<()> {
        self.append(&format!("blobs/{id}"), size, data)
    }

    pub fn finish(mut self, manifest: &Manifest) -> anyhow::Result<W> {
        let json = serde_json::to_vec_pretty(manifest)?;
        self.append(MANIFEST_ENTRY, json.len() as u64, &json[..])?;
        let mut out = self.tar.into_inner()?;
        out.flush()?;
        Ok(out)
    }

    fn append(&mut self, path: &str, size: u64, data: impl Read) -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(self.mtime);
        // Exactly `size` bytes: a reader that grew or shrank must not shift the archive.
        let mut data = data.take(size);
        self.tar
            .append_data(&mut header, path, &mut data)
            .with_context(|| format!("cannot write {path} to the archive"))?;
        Ok(())
    }
}

/// Hashes what passes through and reports the running byte count.
pub(super) struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    on_read: Box<dyn FnMut(u64) + 'a>,
}

impl<'a, R: Read> HashingReader<'a, R> {
    pub fn new(inner: R, on_read: impl FnMut(u64) + 'a) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            read: 0,
            on_read: Box::new(on_read),
        }
    }

    pub fn sha256(&self) -> String {
        crate::blobs::hex(&self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        (self.on_read)(self.read);
        Ok(n)
    }
}

// ---- reading ---------------------------------------------------------------------

/// What the archive held, checked and staged on disk.
pub(super) struct Staged {
    pub header: Header,
    pub manifest: Manifest,
    /// Table name to its staged JSON-lines file.
    pub tables: BTreeMap<String, PathBuf>,
    /// Blob id to its staged file.
    pub blobs: BTreeMap<String, PathBuf>,
}

/// A staged entry: its file, SHA-256 and size.
type StagedEntry = (PathBuf, String, u64);

/// Read an archive into `staging` (which has `tables/` and `blobs/`) and verify it
/// against its manifest. `accept` sees the header before anything else is read;
/// `on_read` gets the bytes read so far.
pub(super) fn read_archive(
    input: impl Read,
    staging: &Path,
    accept: impl Fn(&Header) -> anyhow::Result<()>,
    on_read: impl Fn(u64),
) -> anyhow::Result<Staged> {
    let mut tar = tar::Archive::new(input);
    let mut header: Option<Header> = None;
    let mut manifest: Option<Manifest> = None;
    let mut tables: BTreeMap<String, StagedEntry> = BTreeMap::new();
    let mut blobs: BTreeMap<String, StagedEntry> = BTreeMap::new();
    let mut read_bytes = 0u64;
    for entry in tar.entries().context("not a tar archive")? {
        let mut entry = entry.context("the archive is damaged or truncated")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let size = entry.size();
        if manifest.is_some() {
            bail!("unexpected entry {path} after {MANIFEST_ENTRY}");
        }
        if header.is_none() && path != HEADER_ENTRY {
            bail!("not a Ferry backup: the first entry is {path}, not {HEADER_ENTRY}");
        }
        if path == HEADER_ENTRY {
            if header.is_some() {
                bail!("the archive has two {HEADER_ENTRY} entries");
            }
            let h: Header = serde_json::from_reader(&mut entry)
                .with_context(|| format!("{HEADER_ENTRY} is not valid"))?;
            accept(&h)?;
            header = Some(h);
        } else if path == MANIFEST_ENTRY {
            manifest = Some(
                serde_json::from_reader(&mut entry)
                    .with_context(|| format!("{MANIFEST_ENTRY} is not valid"))?,
            );
        } else if let Some(name) = path
            .strip_prefix("tables/")
            .and_then(|p| p.strip_suffix(".jsonl"))
        {
            check_identifier(name)?;
            let dest = staging.join("tables").join(format!("{name}.jsonl"));
            let (sha, n) = copy_hashed(&mut entry, &dest, false, |n| on_read(read_bytes + n))?;
            if tables.insert(name.to_string(), (dest, sha, n)).is_some() {
                bail!("the archive has table {name} twice");
            }
        } else if let Some(id) = path.strip_prefix("blobs/") {
            let id = uuid::Uuid::parse_str(id)
                .with_context(|| format!("unexpected entry {path}"))?
                .to_string();
            let dest = staging.join("blobs").join(&id);
            let (sha, n) = copy_hashed(&mut entry, &dest, true, |n| on_read(read_bytes + n))?;
            if blobs.insert(id.clone(), (dest, sha, n)).is_some() {
                bail!("the archive has the file of item {id} twice");
            }
        } else {
            bail!("unexpected entry {path} in the archive");
        }
        read_bytes += size;
        on_read(read_bytes);
    }
    let header = header.context("not a Ferry backup (empty archive)")?;
    let manifest = manifest.with_context(|| {
        format!(
            "the archive has no {MANIFEST_ENTRY}: it is truncated (was the backup interrupted?)"
        )
    })?;
    verify(&header, &manifest, &tables, &blobs)?;
    Ok(Staged {
        header,
        manifest,
        tables: tables.into_iter().map(|(k, (p, _, _))| (k, p)).collect(),
        blobs: blobs.into_iter().map(|(k, (p, _, _))| (k, p)).collect(),
    })
}

/// Copy an entry to `dest`, returning its SHA-256 and size.
fn copy_hashed(
    entry: &mut impl Read,
    dest: &Path,
    sync: bool,
    on_read: impl FnMut(u64),
) -> anyhow::Result<(String, u64)> {
    let file = File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut out = BufWriter::new(file);
    let mut reader = HashingReader::new(entry, on_read);
    let n = io::copy(&mut reader, &mut out)
        .with_context(|| format!("cannot stage {}", dest.display()))?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    if sync {
        file.sync_all()?;
    }
    Ok((reader.sha256(), n))
}

/// Every entry the manifest lists is there with its size and checksum, and there is
/// nothing else.
fn verify(
    header: &Header,
    manifest: &Manifest,
    tables: &BTreeMap<String, StagedEntry>,
    blobs: &BTreeMap<String, StagedEntry>,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if manifest.format != header.format || manifest.schema_version != header.schema_version {
        problems.push(format!(
            "{MANIFEST_ENTRY} and {HEADER_ENTRY} disagree about the format or schema version"
        ));
    }
    let check = |kind: &str,
                 listed: BTreeMap<&String, (u64, &String)>,
                 found: &BTreeMap<String, StagedEntry>,
                 problems: &mut Vec<String>| {
        for (name, (size, sha)) in &listed {
            match found.get(*name) {
                None => problems.push(format!("{kind} {name} is missing")),
                Some((_, got_sha, got_size)) => {
                    if got_size != size {
                        problems.push(format!(
                            "{kind} {name} is {got_size} bytes, the manifest says {size}"
                        ));
                    } else if got_sha != *sha {
                        problems.push(format!("{kind} {name} fails its SHA-256 check"));
                    }
                }
            }
        }
        for name in found.keys() {
            if !listed.contains_key(name) {
                problems.push(format!("{kind} {name} is not in the manifest"));
            }
        }
    };
    check(
        "table",
        manifest
            .tables
            .iter()
            .map(|(k, t)| (k, (t.bytes, &t.sha256)))
            .collect(),
        tables,
        &mut problems,
    );
    check(
        "the file of item",
        manifest
            .blobs
            .iter()
            .map(|(k, b)| (k, (b.size, &b.sha256)))
            .collect(),
        blobs,
        &mut problems,
    );
    if problems.is_empty() {
        return Ok(());
    }
    let shown = problems.len().min(20);
    bail!(
        "the archive fails verification ({} problems); nothing was restored:\n  {}{}",
        problems.len(),
        problems[..shown].join("\n  "),
        if problems.len() > shown {
            "\n  …"
        } else {
            ""
        }
    )
}

/// Read only the manifest of an archive (used by tests and for inspection).
pub fn read_manifest(archive: &Path) -> anyhow::Result<Manifest> {
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    for entry in tar.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_os_str() == MANIFEST_ENTRY {
            return Ok(serde_json::from_reader(&mut entry)?);
        }
    }
    bail!("{} has no {MANIFEST_ENTRY}", archive.display())
}
