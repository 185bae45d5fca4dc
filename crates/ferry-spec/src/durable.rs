//! Durable file replacement: write a temp file beside the target, fsync it,
//! rename it over the target, fsync the directory. A crash leaves either the
//! old file or the new one, never a torn one, and never a half-written file
//! under the final name.
//!
//! Every crate writes files this way (store index, blobs, layouts, archives,
//! mount records, credentials, the embedded registry), so it lives here once.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Mode for files anyone may read (subject to the umask, as `open(2)` applies
/// it): what layouts, archives and indexes get, as skopeo writes them.
pub const SHARED_FILE_MODE: u32 = 0o666;
/// Mode for secrets: credentials, private keys.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Makes renames and creations in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates a temp file in `temp_dir` (which must be on `target`'s filesystem)
/// with `mode` (before the umask), for content that [`persist`] installs.
pub fn temp_file_in(temp_dir: &Path, mode: u32) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".ferry-")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(temp_dir)
}

/// Installs a fully written temp file as `target`: fsync, rename, fsync the
/// target's directory.
pub fn persist(temp: tempfile::NamedTempFile, target: &Path) -> io::Result<()> {
    temp.as_file().sync_all()?;
    temp.persist(target).map_err(|e| e.error)?;
    sync_dir(parent_of(target))
}

/// Installs the closed file at `temp` as `target`: fsync, rename, fsync the
/// target's directory. For files made by other means (reflinks, hardlinks).
pub fn install_path(temp: &Path, target: &Path) -> io::Result<()> {
    File::open(temp)?.sync_all()?;
    fs::rename(temp, target)?;
    sync_dir(parent_of(target))
}

/// Replaces `target` with `bytes` durably, through a temp file in `temp_dir`
/// (default: the target's directory) created with `mode` before the umask.
pub fn write_file(
    target: &Path,
    bytes: &[u8],
    temp_dir: Option<&Path>,
    mode: u32,
) -> io::Result<()> {
    let mut temp = temp_file_in(temp_dir.unwrap_or(parent_of(target)), mode)?;
    temp.write_all(bytes)?;
    persist(temp, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_atomically_with_the_requested_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("index.json");
        write_file(&target, b"one", None, SHARED_FILE_MODE).unwrap();
        write_file(&target, b"two", None, SHARED_FILE_MODE).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let umask = unsafe_free_umask();
        assert_eq!(
            fs::metadata(&target).unwrap().mode() & 0o777,
            0o666 & !umask
        );
        write_file(&target, b"secret", None, PRIVATE_FILE_MODE).unwrap();
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);
        // Nothing but the target is left in the directory.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        fs::write(&target, b"old").unwrap();
        let missing = dir.path().join("no-such-dir");
        assert!(write_file(&target, b"new", Some(&missing), SHARED_FILE_MODE).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
    }

    /// The process umask, read from a file created with mode 0o777.
    fn unsafe_free_umask() -> u32 {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o777)
            .open(&probe)
            .unwrap();
        !fs::metadata(&probe).unwrap().mode() & 0o777
    }

    use std::os::unix::fs::OpenOptionsExt;
}
