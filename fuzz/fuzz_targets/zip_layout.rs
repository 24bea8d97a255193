//! "Download all" archives are laid out from names users chose and sizes of any
//! magnitude, and cut by any Range header. Every layout's pieces cover exactly the
//! bytes asked for, in order, inside the archive and inside each file; names in
//! an archive are unique (without case) and have no path separators.
#![no_main]

use arbitrary::Arbitrary;
use ferry::domain::zip::{Piece, ZipEntry, ZipLayout, unique_names};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    files: Vec<(String, u64, u32)>,
    modified_ms: i64,
    start: u64,
    count: u64,
    huge: bool,
}

fuzz_target!(|input: Input| {
    let files = &input.files[..input.files.len().min(64)];
    let names = unique_names(files.iter().map(|(n, _, _)| n.as_str()));
    let mut seen = std::collections::HashSet::new();
    for name in &names {
        assert!(!name.contains('/') && !name.contains('\\'), "{name:?}");
        assert!(seen.insert(name.to_lowercase()), "{name:?} twice");
    }
    let entries: Vec<ZipEntry> = files
        .iter()
        .zip(names)
        .map(|((_, size, crc32), name)| ZipEntry {
            name,
            // Mostly small files; sometimes sizes past 4 GiB, for ZIP64.
            size: if input.huge { size >> 20 } else { size % 4096 },
            crc32: *crc32,
        })
        .collect();
    let layout = ZipLayout::new(&entries, input.modified_ms);
    let data: u64 = entries.iter().map(|e| e.size).sum();
    assert!(layout.len() >= data + 22, "headers and the end record around the data");
    let start = if layout.is_empty() { 0 } else { input.start % (layout.len() + 1) };
    let mut covered = 0u64;
    for piece in layout.pieces(start, input.count) {
        match piece {
            Piece::Bytes(b) => {
                assert!(!b.is_empty());
                covered += b.len() as u64;
            }
            Piece::File { index, start, count } => {
                assert!(count > 0);
                assert!(start + count <= entries[index].size, "a piece past file {index}");
                covered += count;
            }
        }
    }
    assert_eq!(covered, input.count.min(layout.len() - start));
});
