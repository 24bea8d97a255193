//! Progress on stderr for `ferry backup`, `ferry restore` and `ferry migrate-db`,
//! and the wording of their lines: counts, percentages and byte amounts.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::archive::Manifest;
use crate::domain::ByteSize;

/// Progress on stderr: an updating line on a terminal, a line every few seconds
/// otherwise (logs of a scheduled job), nothing at all when quiet.
pub struct Progress {
    enabled: bool,
    tty: bool,
    state: Mutex<ProgressState>,
}

struct ProgressState {
    last: Option<Instant>,
    open_line: bool,
}

impl Progress {
    pub fn stderr() -> Self {
        Self {
            enabled: true,
            tty: io::stderr().is_terminal(),
            // The first update comes one interval in: short runs print only
            // their summary lines.
            state: Mutex::new(ProgressState {
                last: Some(Instant::now()),
                open_line: false,
            }),
        }
    }

    pub fn quiet() -> Self {
        Self {
            enabled: false,
            ..Self::stderr()
        }
    }

    /// A line now.
    pub fn say(&self, message: impl fmt::Display) {
        if !self.enabled {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = io::stderr().lock();
        if state.open_line {
            let _ = writeln!(err);
            state.open_line = false;
        }
        let _ = writeln!(err, "{message}");
        state.last = Some(Instant::now());
    }

    /// A progress update, shown only if the last one is old enough.
    pub fn tick(&self, message: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        let every = if self.tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(5)
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        state.last = Some(Instant::now());
        let mut err = io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", message());
            let _ = err.flush();
            state.open_line = true;
        } else {
            let _ = writeln!(err, "{}", message());
        }
    }
}

/// "1 row", "2 rows".
pub fn rows(n: u64) -> String {
    plural(n, "row")
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// "1.2 GiB of 7.8 GiB (15%)": how far through a known number of bytes.
pub(super) fn bytes_of(done: u64, total: u64) -> String {
    format!(
        "{} of {} ({}%)",
        ByteSize(done),
        ByteSize(total),
        percent(done, total)
    )
}

fn percent(done: u64, total: u64) -> u64 {
    done.saturating_mul(100).checked_div(total).unwrap_or(100)
}

/// "3 users, 1870 items (1340 files, 7.8 GiB)": what an archive holds, items left
/// out during the backup not counted.
pub(super) fn summary(manifest: &Manifest) -> String {
    let count = |name: &str| manifest.counts.get(name).copied().unwrap_or(0);
    format!(
        "{}, {} ({}, {})",
        plural(count("users"), "user"),
        plural(
            count("items").saturating_sub(manifest.skipped_items.len() as u64),
            "item"
        ),
        plural(manifest.blobs.len() as u64, "file"),
        ByteSize(manifest.blobs.values().map(|b| b.size).sum())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_down_and_cap() {
        assert_eq!(percent(1, 0), 100);
        assert_eq!(percent(50, 200), 25);
    }
}
