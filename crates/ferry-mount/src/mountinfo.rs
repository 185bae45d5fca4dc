//! `/proc/self/mountinfo`, read to tell live mounts from records that
//! outlived theirs.

use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields ferry needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount's id (unique among the mounts present at one time).
    pub mount_id: u64,
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: PathBuf,
    /// Per-mount options (`ro,nosuid,...`).
    pub options: String,
    /// The filesystem type (`overlay`).
    pub fs_type: String,
    /// The source (`ferry` for ferry's overlays).
    pub source: String,
    /// The filesystem's options (an overlay's `lowerdir=`, `upperdir=`),
    /// as the kernel escapes them.
    pub super_options: String,
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // id parent major:minor root mount_point options [optional...] - type source super_options
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let right: Vec<&str> = right.split(' ').collect();
    Some(MountEntry {
        mount_id: left.first()?.parse().ok()?,
        mount_point: PathBuf::from(unescape(left.get(4)?)),
        options: left.get(5)?.to_string(),
        fs_type: right.first()?.to_string(),
        source: unescape(right.get(1)?),
        super_options: right.get(2).map(|o| o.to_string()).unwrap_or_default(),
    })
}

/// Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directories an overlay's options name: its lower directories (top
/// first) and its upper directory. The kernel shows each path with octal
/// escapes and a lower's `:` as `\:`; with the new mount API lowers may
/// also be listed one by one as `lowerdir+=`.
pub fn overlay_dirs(super_options: &str) -> (Vec<PathBuf>, Option<PathBuf>) {
    let mut lowers = Vec::new();
    let mut upper = None;
    for option in split_unescaped(super_options, ',') {
        let Some((key, value)) = option.split_once('=') else {
            continue;
        };
        let value = unescape(value);
        match key {
            "lowerdir" => {
                for lower in split_unescaped(&value, ':') {
                    lowers.push(PathBuf::from(drop_backslashes(&lower)));
                }
            }
            "lowerdir+" => lowers.push(PathBuf::from(value)),
            "upperdir" => upper = Some(PathBuf::from(drop_backslashes(&value))),
            _ => {}
        }
    }
    (lowers, upper)
}

/// Splits at each `separator` not preceded by a backslash (the escapes are
/// kept).
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if !escaped && c == separator {
            parts.push(std::mem::take(&mut current));
            continue;
        }
        escaped = !escaped && c == '\\';
        current.push(c);
    }
    parts.push(current);
    parts
}

fn drop_backslashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut escaped = false;
    for c in text.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// The mounts of this process's mount namespace (empty when unreadable).
pub fn read() -> Vec<MountEntry> {
    try_read().unwrap_or_default()
}

/// The mounts of this process's mount namespace.
pub fn try_read() -> std::io::Result<Vec<MountEntry>> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|text| parse(&text))
}

/// The topmost mount at `path`, if any (later lines are mounted on top).
pub fn mount_at<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    entries.iter().rev().find(|e| e.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_overlays_with_escaped_paths() {
        let text = "\
36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
412 27 0:58 / /srv/my\\040models ro,nosuid,nodev,relatime shared:300 - overlay ferry ro,lowerdir=/a:/b
";
        let entries = parse(text);
        assert_eq!(entries.len(), 2);
        let overlay = mount_at(&entries, Path::new("/srv/my models")).unwrap();
        assert_eq!(overlay.fs_type, "overlay");
        assert_eq!(overlay.source, "ferry");
        assert_eq!(overlay.mount_id, 412);
        assert!(overlay.options.starts_with("ro,"));
        assert!(mount_at(&entries, Path::new("/srv/my\\040models")).is_none());
    }

    #[test]
    fn overlay_options_name_their_directories() {
        let line = "48 27 0:40 / /m rw - overlay ferry rw,lowerdir=/s/a:/s/b\\134:c,upperdir=/r/up\\054x,workdir=/r/w,uuid=on\n";
        let entry = &parse(line)[0];
        let (lowers, upper) = overlay_dirs(&entry.super_options);
        assert_eq!(lowers, [PathBuf::from("/s/a"), PathBuf::from("/s/b:c")]);
        assert_eq!(upper, Some(PathBuf::from("/r/up,x")));
        let (lowers, upper) = overlay_dirs("ro,lowerdir+=/s/a,lowerdir+=/s/b");
        assert_eq!(lowers, [PathBuf::from("/s/a"), PathBuf::from("/s/b")]);
        assert_eq!(upper, None);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(parse("not a mountinfo line\n\n").is_empty());
    }
}
