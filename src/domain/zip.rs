//! The byte layout of a stored (uncompressed) ZIP archive whose files' sizes and
//! CRC-32s are known before it is sent, so its exact length is known and any byte
//! range of it can be produced on its own: headers come from here, file data from
//! the caller. ZIP64 records are written only when a size or an offset needs them
//! (a file of 4 GiB or more, data beyond 4 GiB, 65535 files or more). Names are
//! UTF-8 (flag bit 11). Pure: no I/O, and any input gives a valid layout.

use bytes::Bytes;

/// One file of the archive, as its caller knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    pub name: String,
    pub size: u64,
    pub crc32: u32,
}

/// A run of the archive: bytes from here, or a run of one entry's file data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Bytes(Bytes),
    File {
        index: usize,
        start: u64,
        count: u64,
    },
}

#[derive(Clone, Debug)]
enum Segment {
    Bytes(Bytes),
    File { index: usize, len: u64 },
}

impl Segment {
    fn len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::File { len, .. } => *len,
        }
    }
}

/// A whole archive as a sequence of segments, with their total length.
#[derive(Clone, Debug)]
pub struct ZipLayout {
    segments: Vec<Segment>,
    /// Where each segment starts, for finding a range's first segment quickly.
    starts: Vec<u64>,
    len: u64,
}

const MAX16: u64 = 0xFFFF;
const MAX32: u64 = 0xFFFF_FFFF;
/// A stored ZIP needs version 1.0, UTF-8 names 2.0 by convention, ZIP64 4.5.
const VERSION_PLAIN: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// "Made by" Unix (3), so extractors honour the file mode below.
const MADE_BY_UNIX: u16 = 3 << 8;
/// A regular file, rw-r--r--.
const EXTERNAL_ATTRS: u32 = 0o100_644 << 16;
const FLAG_UTF8: u16 = 1 << 11;
const METHOD_STORED: u16 = 0;
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// Little-endian field writer.
struct Out(Vec<u8>);

impl Out {
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
}

/// A 32-bit field, or the marker that says "see the ZIP64 extra field".
fn field32(v: u64) -> u32 {
    u32::try_from(v)
        .ok()
        .filter(|v| u64::from(*v) < MAX32)
        .unwrap_or(u32::MAX)
}

fn field16(v: u64) -> u16 {
    u16::try_from(v)
        .ok()
        .filter(|v| u64::from(*v) < MAX16)
        .unwrap_or(u16::MAX)
}

/// Names cut to what a 16-bit length holds, on a character boundary.
fn name_bytes(name: &str) -> &[u8] {
    let mut end = name.len().min(MAX16 as usize);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name.as_bytes()[..end]
}

/// An MS-DOS date and time (local time is unknowable here; UTC is used), clamped
/// to the years the format holds.
pub fn dos_datetime(unix_ms: i64) -> (u16, u16) {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let year = t.year().clamp(1980, 2107);
    if year != t.year() {
        let month_day = if year == 1980 { (1, 1) } else { (12, 31) };
        let time = if year == 1980 {
            0
        } else {
            (23 << 11) | (59 << 5) | 29
        };
        return (
            time,
            (((year - 1980) as u16) << 9) | (month_day.0 << 5) | month_day.1,
        );
    }
    let time =
        (u16::from(t.hour()) << 11) | (u16::from(t.minute()) << 5) | (u16::from(t.second()) / 2);
    let date =
        (((year - 1980) as u16) << 9) | (u16::from(u8::from(t.month())) << 5) | u16::from(t.day());
    (time, date)
}

impl ZipLayout {
    /// The archive of `entries`, in order, each dated `modified_ms`.
    pub fn new(entries: &[ZipEntry], modified_ms: i64) -> Self {
        let (dos_time, dos_date) = dos_datetime(modified_ms);
        let mut segments = Vec::with_capacity(entries.len() * 2 + 1);
        let mut central = Out(Vec::new());
        let mut offset: u64 = 0;
        for (index, entry) in entries.iter().enumerate() {
            let name = name_bytes(&entry.name);
            let big = entry.size >= MAX32;
            let far = offset >= MAX32;
            let mut local = Out(Vec::with_capacity(30 + name.len() + 20));
            local
                .u32(0x0403_4b50)
                .u16(if big { VERSION_ZIP64 } else { VERSION_PLAIN })
                .u16(FLAG_UTF8)
                .u16(METHOD_STORED)
                .u16(dos_time)
                .u16(dos_date)
                .u32(entry.crc32)
                .u32(field32(entry.size))
                .u32(field32(entry.size))
                .u16(name.len() as u16)
                .u16(if big { 20 } else { 0 })
                .bytes(name);
            if big {
                // The local ZIP64 field holds both sizes, always.
                local
                    .u16(ZIP64_EXTRA_ID)
                    .u16(16)
                    .u64(entry.size)
                    .u64(entry.size);
            }
            let extra_len = if big { 16 } else { 0 } + if far { 8 } else { 0 };
            central
                .u32(0x0201_4b50)
                .u16(MADE_BY_UNIX | VERSION_ZIP64)
                .u16(if big || far {
                    VERSION_ZIP64
                } else {
                    VERSION_PLAIN
                })
                .u16(FLAG_UTF8)
                .u16(METHOD_STORED)
                .u16(dos_time)
                .u16(dos_date)
                .u32(entry.crc32)
                .u32(field32(entry.size))
                .u32(field32(entry.size))
                .u16(name.len() as u16)
                .u16(if extra_len > 0 { extra_len + 4 } else { 0 })
                .u16(0) // comment
                .u16(0) // disk
                .u16(0) // internal attributes
                .u32(EXTERNAL_ATTRS)
                .u32(field32(offset))
                .bytes(name);
            if extra_len > 0 {
                // In the central directory, only the fields marked as overflowing,
                // in the order the specification gives.
                central.u16(ZIP64_EXTRA_ID).u16(extra_len);
                if big {
                    central.u64(entry.size).u64(entry.size);
                }
                if far {
                    central.u64(offset);
                }
            }
            offset += local.0.len() as u64 + entry.size;
            segments.push(Segment::Bytes(local.0.into()));
            if entry.size > 0 {
                segments.push(Segment::File {
                    index,
                    len: entry.size,
                });
            }
        }
        let count = entries.len() as u64;
        let cd_offset = offset;
        let cd_size = central.0.len() as u64;
        let mut tail = central;
        if count >= MAX16 || cd_size >= MAX32 || cd_offset >= MAX32 {
            let record_offset = cd_offset + cd_size;
            tail.u32(0x0606_4b50)
                .u64(44)
                .u16(MADE_BY_UNIX | VERSION_ZIP64)
                .u16(VERSION_ZIP64)
                .u32(0)
                .u32(0)
                .u64(count)
                .u64(count)
                .u64(cd_size)
                .u64(cd_offset);
            tail.u32(0x0706_4b50).u32(0).u64(record_offset).u32(1);
        }
        tail.u32(0x0605_4b50)
            .u16(0)
            .u16(0)
            .u16(field16(count))
            .u16(field16(count))
            .u32(field32(cd_size))
            .u32(field32(cd_offset))
            .u16(0);
        segments.push(Segment::Bytes(tail.0.into()));
        let mut starts = Vec::with_capacity(segments.len());
        let mut len = 0;
        for segment in &segments {
            starts.push(len);
            len += segment.len();
        }
        Self {
            segments,
            starts,
            len,
        }
    }

    /// The archive's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces that make up `count` bytes from `start`, cut to the archive.
    pub fn pieces(&self, start: u64, count: u64) -> Vec<Piece> {
        let end = start.saturating_add(count).min(self.len);
        let mut pieces = Vec::new();
        let first = self
            .starts
            .partition_point(|s| *s <= start)
            .saturating_sub(1);
        for (segment, &seg_start) in self.segments.iter().zip(&self.starts).skip(first) {
            let seg_end = seg_start + segment.len();
            if seg_start >= end {
                break;
            }
            let (from, to) = (start.max(seg_start), end.min(seg_end));
            if from >= to {
                continue;
            }
            let (rel, n) = (from - seg_start, to - from);
            pieces.push(match segment {
                // Within a segment held in memory, so both fit in usize.
                Segment::Bytes(b) => Piece::Bytes(b.slice(rel as usize..(rel + n) as usize)),
                Segment::File { index, .. } => Piece::File {
                    index: *index,
                    start: rel,
                    count: n,
                },
            });
        }
        pieces
    }
}

/// Names made unique within one archive, compared without case (as Windows and
/// macOS extract them): the second "a.jpg" becomes "a (2).jpg". Path separators
/// become "_", so every entry extracts into the one folder; empty names read "file".
pub fn unique_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    let mut out = Vec::new();
    for raw in names {
        let safe: String = raw
            .chars()
            .map(|c| {
                if matches!(c, '/' | '\\') || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let safe = if safe.trim().is_empty() || safe == "." || safe == ".." {
            "file".to_string()
        } else {
            safe
        };
        let (stem, ext) = match safe.rfind('.') {
            Some(dot) if dot > 0 => (&safe[..dot], &safe[dot..]),
            _ => (safe.as_str(), ""),
        };
        let mut candidate = safe.clone();
        let mut n = 2;
        while !taken.insert(candidate.to_lowercase()) {
            candidate = format!("{stem} ({n}){ext}");
            n += 1;
        }
        out.push(candidate);
    }
    out
}

#[cfg(test)]
#[path = "zip_tests.rs"]
mod tests;
