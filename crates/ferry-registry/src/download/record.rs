//! Which byte ranges of a partial download are on disk: a small JSON file
//! beside the partial file (`partial-<alg>-<hex>.ranges`), so that a killed
//! ranged download fetches only what is missing.
//!
//! Without a record, the partial file's length is what it holds (one stream
//! writes in order). A ranged download writes its record before its first
//! byte lands out of order, so holes are never taken for content. The record
//! is replaced by rename but not fsynced: after a power cut it may claim
//! ranges the disk lost, and the digest check that follows every download
//! catches that (the blob is then fetched again from byte 0).

use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rangemap::RangeSet;
use serde::{Deserialize, Serialize};

/// The record of the partial file at `partial`.
pub(super) fn path_for(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".ranges");
    PathBuf::from(name)
}

#[derive(Serialize, Deserialize)]
struct Stored {
    /// The blob's size: a record for another size is ignored.
    size: u64,
    /// Finished ranges, `[start, end)`.
    done: Vec<[u64; 2]>,
}

/// What the partial file `file` (at `partial`) holds of a blob of `size`
/// bytes. An unreadable or foreign record counts as nothing held.
pub(super) fn load(partial: &Path, file: &File, size: u64) -> io::Result<RangeSet<u64>> {
    let len = file.metadata()?.len();
    let mut done = RangeSet::new();
    match fs::read(path_for(partial)) {
        Ok(bytes) => {
            let stored: Option<Stored> = serde_json::from_slice(&bytes).ok();
            for [start, end] in stored
                .filter(|s| s.size == size)
                .map(|s| s.done)
                .unwrap_or_default()
            {
                // Nothing past the file's end can be in it.
                let end = end.min(len).min(size);
                if start < end {
                    done.insert(start..end);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if len <= size && len > 0 {
                done.insert(0..len);
            }
        }
        Err(e) => return Err(e),
    }
    Ok(done)
}

/// Replaces the record with `done`.
pub(super) fn store(partial: &Path, size: u64, done: &RangeSet<u64>) -> io::Result<()> {
    let stored = Stored {
        size,
        done: done.iter().map(|r| [r.start, r.end]).collect(),
    };
    let bytes = serde_json::to_vec(&stored).map_err(io::Error::other)?;
    // A fixed name beside the record (the partial file's lock keeps other
    // writers out): one a kill leaves behind is replaced or removed with
    // the record, never left over.
    let temp = temp_path_for(partial);
    fs::write(&temp, &bytes)?;
    fs::rename(&temp, path_for(partial))
}

fn temp_path_for(partial: &Path) -> PathBuf {
    let mut name = path_for(partial).into_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Removes the record (and a half-written replacement), if there is one.
pub(super) fn remove(partial: &Path) -> io::Result<()> {
    for path in [path_for(partial), temp_path_for(partial)] {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Turns a ranged partial file into one a single stream continues: cut to
/// its first contiguous range, record removed.
pub(super) fn settle_for_stream(partial: &Path, file: &File, size: u64) -> io::Result<()> {
    let done = load(partial, file, size)?;
    file.set_len(contiguous_prefix(&done))?;
    remove(partial)
}

/// Bytes from 0 on that are all held.
pub(super) fn contiguous_prefix(done: &RangeSet<u64>) -> u64 {
    match done.iter().next() {
        Some(first) if first.start == 0 => first.end,
        _ => 0,
    }
}

/// Bytes held.
pub(super) fn held(done: &RangeSet<u64>) -> u64 {
    done.iter().map(|r| r.end - r.start).sum()
}

/// What is missing of `0..size`, cut into ranges of at most `piece` bytes.
pub(super) fn missing_pieces(done: &RangeSet<u64>, size: u64, piece: u64) -> Vec<Range<u64>> {
    let piece = piece.max(1);
    let mut pieces = Vec::new();
    for gap in done.gaps(&(0..size)) {
        let mut start = gap.start;
        while start < gap.end {
            let end = gap.end.min(start.saturating_add(piece));
            pieces.push(start..end);
            start = end;
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    #![allow(clippy::single_range_in_vec_init)] // sets of ranges, written as lists
    use super::*;
    use std::io::Write;

    fn set(ranges: &[Range<u64>]) -> RangeSet<u64> {
        ranges.iter().cloned().collect()
    }

    #[test]
    fn a_record_round_trips_and_is_clipped_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("partial-sha256-ab");
        let mut file = File::create(&partial).unwrap();
        file.write_all(&[7; 100]).unwrap();
        // A replacement a kill left half-written is overwritten.
        fs::write(temp_path_for(&partial), b"{\"size\":").unwrap();
        store(&partial, 1000, &set(&[0..10, 50..200])).unwrap();
        assert!(!temp_path_for(&partial).exists());
        assert_eq!(
            load(&partial, &file, 1000).unwrap(),
            set(&[0..10, 50..100]),
            "nothing past the file's 100 bytes is held"
        );
        assert_eq!(
            load(&partial, &file, 999).unwrap(),
            set(&[]),
            "a record for another size counts for nothing"
        );
        fs::write(path_for(&partial), b"{not json").unwrap();
        assert_eq!(load(&partial, &file, 1000).unwrap(), set(&[]));
    }

    #[test]
    fn without_a_record_the_file_is_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("partial-sha256-cd");
        let mut file = File::create(&partial).unwrap();
        file.write_all(&[1; 64]).unwrap();
        assert_eq!(load(&partial, &file, 100).unwrap(), set(&[0..64]));
        assert_eq!(
            load(&partial, &file, 10).unwrap(),
            set(&[]),
            "a file longer than the blob holds nothing usable"
        );
    }

    #[test]
    fn settling_cuts_to_the_first_range_and_forgets_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("partial-sha256-ef");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&partial)
            .unwrap();
        file.set_len(500).unwrap();
        store(&partial, 500, &set(&[0..30, 100..500])).unwrap();
        fs::write(temp_path_for(&partial), b"half").unwrap();
        settle_for_stream(&partial, &file, 500).unwrap();
        assert!(
            !temp_path_for(&partial).exists(),
            "a leftover replacement goes too"
        );
        assert_eq!(file.metadata().unwrap().len(), 30);
        assert!(!path_for(&partial).exists());
        assert_eq!(load(&partial, &file, 500).unwrap(), set(&[0..30]));
    }

    #[test]
    fn missing_bytes_are_cut_into_pieces() {
        let done = set(&[0..10, 25..30]);
        assert_eq!(
            missing_pieces(&done, 50, 8),
            vec![10..18, 18..25, 30..38, 38..46, 46..50]
        );
        assert_eq!(missing_pieces(&set(&[0..50]), 50, 8), vec![]);
        assert_eq!(contiguous_prefix(&done), 10);
        assert_eq!(contiguous_prefix(&set(&[5..9])), 0);
        assert_eq!(held(&done), 15);
    }
}
