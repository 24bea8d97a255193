//! Pagination cursors (`?cursor=` on the API, `?before=` on the feed) are echoed
//! by clients. A cursor that parses is a canonical UUID that parses again to the
//! same value; anything else is an error, never a panic.
#![no_main]

use ferry::domain::{parse_cursor, parse_item_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse_cursor(s) {
        Ok(id) => {
            let canonical = id.to_string();
            assert_eq!(canonical.len(), 36);
            assert!(
                canonical
                    .bytes()
                    .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{canonical}"
            );
            assert_eq!(parse_cursor(&canonical), Ok(id));
            assert_eq!(parse_item_id(&canonical), Some(id));
        }
        Err(message) => {
            assert!(message.starts_with("cursor "), "{message}");
            assert!(
                parse_item_id(s.trim()).is_none(),
                "an item id but not a cursor: {s:?}"
            );
        }
    }
});
