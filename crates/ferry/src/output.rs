//! Printing results and errors.

use ferry_store::StoreError;

/// The error and its causes on one line.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Something the user can do about an error, when ferry knows it.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    let store_error = match error.downcast_ref::<ferry_mount::MountError>() {
        Some(ferry_mount::MountError::Store(e)) => e,
        Some(ferry_mount::MountError::Busy { .. }) => {
            return Some(
                "stop what uses it (`fuser -vm TARGET` lists it), then run `ferry umount` again",
            );
        }
        Some(ferry_mount::MountError::NotMounted(_)) => {
            return Some("run `ferry mounts` to see the volumes ferry mounted");
        }
        Some(_) => return None,
        None => error.downcast_ref::<StoreError>()?,
    };
    match store_error {
        StoreError::InUse { .. } => {
            Some("unmount it first (`ferry mounts` lists volumes), or pass --force")
        }
        StoreError::NotFound(_) => Some("run `ferry ls` to see what the store holds"),
        StoreError::CorruptIndex { .. } => {
            Some("run `ferry fsck`; restore index.json from a backup or re-pack the models")
        }
        StoreError::DigestMismatch { .. } => {
            Some("run `ferry fsck --repair`, then pack or pull again")
        }
        _ => None,
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The short form of a digest for tables (`sha256:` and 12 hex characters).
pub fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    hex.chars().take(12).collect()
}
