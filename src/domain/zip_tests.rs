//! The layout read back by a small independent reader that follows the
//! specification (APPNOTE 6.3.x): from the end of central directory record,
//! through ZIP64 records when present, to every central and local header. File
//! data reads as zeros, so archives of many GiB are checked without writing them.

use super::*;

fn entry(name: &str, size: u64, crc32: u32) -> ZipEntry {
    ZipEntry {
        name: name.into(),
        size,
        crc32,
    }
}

/// `n` bytes from `at`, with file data as zeros.
fn read(layout: &ZipLayout, at: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in layout.pieces(at, n) {
        match piece {
            Piece::Bytes(b) => out.extend_from_slice(&b),
            Piece::File { count, .. } => out.resize(out.len() + count as usize, 0),
        }
    }
    assert_eq!(out.len() as u64, n, "read past the end at {at}+{n}");
    out
}

fn le16(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}
fn le32(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[at..at + 4].try_into().unwrap()))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[derive(Debug, PartialEq)]
struct Read {
    name: String,
    size: u64,
    crc32: u32,
    data_offset: u64,
    zip64: bool,
}

/// Read the archive's directory as an extractor does, checking every header.
fn read_directory(layout: &ZipLayout) -> (Vec<Read>, bool) {
    let len = layout.len();
    let eocd = read(layout, len - 22, 22);
    assert_eq!(le32(&eocd, 0), 0x0605_4b50, "end record");
    let (mut count, mut cd_size, mut cd_offset) =
        (le16(&eocd, 10), le32(&eocd, 12), le32(&eocd, 16));
    let zip64_end = count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF;
    if zip64_end {
        let locator = read(layout, len - 22 - 20, 20);
        assert_eq!(le32(&locator, 0), 0x0706_4b50, "ZIP64 locator");
        let record_at = le64(&locator, 8);
        assert_eq!(record_at, len - 22 - 20 - 56);
        let record = read(layout, record_at, 56);
        assert_eq!(le32(&record, 0), 0x0606_4b50, "ZIP64 end record");
        assert_eq!(le64(&record, 4), 44);
        count = le64(&record, 32);
        cd_size = le64(&record, 40);
        cd_offset = le64(&record, 48);
        assert_eq!(cd_offset + cd_size, record_at);
    } else {
        assert_eq!(cd_offset + cd_size, len - 22);
    }
    let cd = read(layout, cd_offset, cd_size);
    let mut at = 0usize;
    let mut out = Vec::new();
    for _ in 0..count {
        assert_eq!(le32(&cd, at), 0x0201_4b50, "central header");
        assert_eq!(le16(&cd, at + 8), u64::from(FLAG_UTF8));
        assert_eq!(le16(&cd, at + 10), 0, "stored");
        let crc32 = le32(&cd, at + 16) as u32;
        let (mut csize, mut size) = (le32(&cd, at + 20), le32(&cd, at + 24));
        let (name_len, extra_len, comment_len) = (
            le16(&cd, at + 28) as usize,
            le16(&cd, at + 30) as usize,
            le16(&cd, at + 32) as usize,
        );
        let mut offset = le32(&cd, at + 42);
        let name = String::from_utf8(cd[at + 46..at + 46 + name_len].to_vec()).unwrap();
        let extra = &cd[at + 46 + name_len..at + 46 + name_len + extra_len];
        let zip64 = size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF;
        if zip64 {
            assert_eq!(le16(extra, 0), 1, "ZIP64 extra id");
            assert_eq!(le16(&cd, at + 6), 45, "version needed");
            let mut f = 4;
            if size == 0xFFFF_FFFF {
                size = le64(extra, f);
                csize = le64(extra, f + 8);
                f += 16;
            }
            if offset == 0xFFFF_FFFF {
                offset = le64(extra, f);
                f += 8;
            }
            assert_eq!(
                f,
                extra.len(),
                "extra field holds exactly the overflowing fields"
            );
        } else {
            assert!(extra.is_empty());
        }
        assert_eq!(csize, size, "stored: compressed size is the size");
        let local = read(layout, offset, 30);
        assert_eq!(le32(&local, 0), 0x0403_4b50, "local header of {name}");
        assert_eq!(le32(&local, 14) as u32, crc32);
        let (lname, lextra) = (le16(&local, 26), le16(&local, 28));
        let local_name = read(layout, offset + 30, lname);
        assert_eq!(local_name, name.as_bytes());
        if le32(&local, 22) == 0xFFFF_FFFF {
            let e = read(layout, offset + 30 + lname, lextra);
            assert_eq!((le16(&e, 0), le64(&e, 4), le64(&e, 12)), (1, size, size));
        } else {
            assert_eq!(le32(&local, 22), size);
        }
        out.push(Read {
            name,
            size,
            crc32,
            data_offset: offset + 30 + lname + lextra,
            zip64,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    assert_eq!(at, cd.len());
    (out, zip64_end)
}

#[test]
fn a_small_archive_reads_back() {
    let entries = [
        entry("a.txt", 3, 0x352441c2),
        entry("naïve.jpg", 0, 0),
        entry("b", 10, 7),
    ];
    let layout = ZipLayout::new(&entries, 1_700_000_000_000);
    let (read_back, zip64_end) = read_directory(&layout);
    assert!(!zip64_end);
    assert_eq!(read_back.len(), 3);
    assert_eq!(read_back[0].data_offset, 30 + 5);
    for (r, e) in read_back.iter().zip(&entries) {
        assert_eq!(
            (r.name.as_str(), r.size, r.crc32, r.zip64),
            (e.name.as_str(), e.size, e.crc32, false)
        );
    }
    // 3 local headers, the data, 3 central headers, the end record.
    let names: u64 = entries.iter().map(|e| e.name.len() as u64).sum();
    assert_eq!(layout.len(), 30 * 3 + names + 13 + 46 * 3 + names + 22);
}

#[test]
fn an_empty_archive_is_only_the_end_record() {
    let layout = ZipLayout::new(&[], 0);
    assert_eq!(layout.len(), 22);
    assert_eq!(read_directory(&layout).0, vec![]);
}

#[test]
fn a_file_of_4_gib_or_more_gets_zip64_sizes() {
    const GIB: u64 = 1 << 30;
    let entries = [
        entry("small", 10, 1),
        entry("huge.iso", 5 * GIB, 2),
        entry("after", 4, 3),
    ];
    let layout = ZipLayout::new(&entries, 0);
    let (read_back, zip64_end) = read_directory(&layout);
    // The directory starts beyond 4 GiB: the end needs ZIP64 too.
    assert!(zip64_end);
    assert!(!read_back[0].zip64);
    assert!(read_back[1].zip64, "5 GiB size");
    assert!(read_back[2].zip64, "offset beyond 4 GiB");
    assert_eq!(read_back[1].size, 5 * GIB);
    assert_eq!(
        read_back[2].data_offset,
        read_back[1].data_offset + 5 * GIB + 30 + 5
    );
    assert_eq!(
        layout.len(),
        read_back[2].data_offset + 4 + (46 + 5) + (46 + 8 + 20) + (46 + 5 + 12) + 56 + 20 + 22
    );
}

#[test]
fn exactly_0xffffffff_bytes_is_already_zip64() {
    let layout = ZipLayout::new(&[entry("edge", 0xFFFF_FFFF, 9)], 0);
    let (read_back, _) = read_directory(&layout);
    assert!(read_back[0].zip64);
    assert_eq!(read_back[0].size, 0xFFFF_FFFF);
    let just_under = ZipLayout::new(&[entry("edge", 0xFFFF_FFFE, 9)], 0);
    assert!(!read_directory(&just_under).0[0].zip64);
}

#[test]
fn sixty_five_thousand_files_need_the_zip64_end() {
    let entries: Vec<_> = (0..70_000).map(|i| entry(&format!("{i}"), 1, 0)).collect();
    let (read_back, zip64_end) = read_directory(&ZipLayout::new(&entries, 0));
    assert!(zip64_end);
    assert_eq!(read_back.len(), 70_000);
}

#[test]
fn pieces_cover_exactly_the_range_asked() {
    let entries = [entry("a", 100, 0), entry("b", 0, 0), entry("c", 1000, 0)];
    let layout = ZipLayout::new(&entries, 0);
    let len = layout.len();
    for (start, count) in [
        (0, len),
        (0, 1),
        (31, 50),
        (len - 1, 1),
        (10, len),
        (len, 5),
        (130, 40),
    ] {
        let got: u64 = layout
            .pieces(start, count)
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len() as u64,
                Piece::File { count, .. } => *count,
            })
            .sum();
        assert_eq!(got, count.min(len.saturating_sub(start)), "{start}+{count}");
    }
    // A range inside the first file's data is one file piece.
    assert_eq!(
        layout.pieces(31 + 10, 20),
        vec![Piece::File {
            index: 0,
            start: 10,
            count: 20
        }]
    );
}

#[test]
fn names_are_unique_and_safe() {
    let names = unique_names([
        "a.jpg", "A.jpg", "a.jpg", "dir/x", "", "..", "noext", "noext", ".bashrc",
    ]);
    assert_eq!(
        names,
        [
            "a.jpg",
            "A (2).jpg",
            "a (3).jpg",
            "dir_x",
            "file",
            "file (2)",
            "noext",
            "noext (2)",
            ".bashrc"
        ]
    );
}

#[test]
fn dates_are_ms_dos_dates() {
    // 2023-11-14 22:13:20 UTC
    let (time, date) = dos_datetime(1_700_000_000_000);
    assert_eq!(date, ((2023 - 1980) << 9) | (11 << 5) | 14);
    assert_eq!(time, (22 << 11) | (13 << 5) | 10);
    assert_eq!(
        dos_datetime(0),
        (0, (1 << 5) | 1),
        "before 1980 reads 1980-01-01"
    );
}
