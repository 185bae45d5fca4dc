//! Where the policy is looked for, and reading it with a size cap.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{MAX_POLICY_SIZE, Policy, PolicyError};

/// Where a policy came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The file named with `--policy`.
    Explicit(PathBuf),
    /// The user's `$XDG_CONFIG_HOME/ferry/policy.json`.
    User(PathBuf),
    /// The system's `/etc/containers/policy.json`.
    System(PathBuf),
    /// JSON handed over in memory.
    Inline,
    /// No file anywhere: the policy accepts anything.
    NotFound {
        /// The places looked at, in order.
        searched: Vec<PathBuf>,
    },
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Explicit(path) | Self::User(path) | Self::System(path) => {
                write!(f, "{}", path.display())
            }
            Self::Inline => f.write_str("inline policy"),
            Self::NotFound { searched } => {
                f.write_str("no policy file (looked at ")?;
                for (i, path) in searched.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(f, "{separator}{}", path.display())?;
                }
                f.write_str("), so anything is accepted")
            }
        }
    }
}

/// The places a policy is looked for after `--policy`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLocations {
    /// `$XDG_CONFIG_HOME/ferry/policy.json` or `~/.config/ferry/policy.json`;
    /// `None` when neither variable gives a usable directory.
    pub user: Option<PathBuf>,
    /// `/etc/containers/policy.json`.
    pub system: PathBuf,
}

impl PolicyLocations {
    /// The system-wide policy podman and CRI-O read.
    pub const SYSTEM_POLICY: &'static str = "/etc/containers/policy.json";

    /// The locations for these values of `XDG_CONFIG_HOME` and `HOME`.
    /// Taking them as parameters keeps tests off the process environment.
    pub fn from_env(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Self {
        // The XDG spec says a relative or empty XDG_CONFIG_HOME is ignored.
        let absolute = |value: OsString| {
            let path = PathBuf::from(value);
            path.is_absolute().then_some(path)
        };
        let config = xdg_config_home
            .and_then(absolute)
            .or_else(|| home.and_then(absolute).map(|home| home.join(".config")));
        Self {
            user: config.map(|config| config.join("ferry").join("policy.json")),
            system: PathBuf::from(Self::SYSTEM_POLICY),
        }
    }

    /// The locations for this process's `XDG_CONFIG_HOME` and `HOME`.
    pub fn from_process_env() -> Self {
        Self::from_env(
            std::env::var_os("XDG_CONFIG_HOME"),
            std::env::var_os("HOME"),
        )
    }
}

pub(super) fn discover(
    explicit: Option<&Path>,
    locations: &PolicyLocations,
) -> Result<Policy, PolicyError> {
    if let Some(path) = explicit {
        return read_explicit(path);
    }
    let mut searched = Vec::new();
    let candidates = locations
        .user
        .iter()
        .map(|path| (path, PolicySource::User(path.clone())))
        .chain([(
            &locations.system,
            PolicySource::System(locations.system.clone()),
        )]);
    for (path, source) in candidates {
        // The user's location is skipped when a directory on the way is
        // closed to this user (HOME kept by `setpriv`, `sudo -u`): the file
        // is not theirs to have.
        if matches!(source, PolicySource::User(_)) && hidden_from_this_user(path) {
            searched.push(path.clone());
            continue;
        }
        // Only a missing file moves on: an unreadable or invalid one is an
        // error, never a silent fall back to a laxer policy.
        match read_capped(path)? {
            Some(bytes) => return Policy::parse(&bytes, source),
            None => searched.push(path.clone()),
        }
    }
    Ok(Policy::accept_anything(PolicySource::NotFound { searched }))
}

pub(super) fn read_explicit(path: &Path) -> Result<Policy, PolicyError> {
    let bytes = read_capped(path)?.ok_or_else(|| PolicyError::Missing {
        path: path.to_path_buf(),
    })?;
    Policy::parse(&bytes, PolicySource::Explicit(path.to_path_buf()))
}

/// True when this user cannot even look for `path`: a directory on the
/// way denies search. A file that exists but cannot be read is not hidden.
fn hidden_from_this_user(path: &Path) -> bool {
    matches!(
        std::fs::symlink_metadata(path),
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied
    )
}

/// The file's bytes, `None` when it does not exist.
fn read_capped(path: &Path) -> Result<Option<Vec<u8>>, PolicyError> {
    let read_error = |source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(read_error(error)),
    };
    // A FIFO or device would block or never end.
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(PolicyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_POLICY_SIZE {
        return Err(PolicyError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_POLICY_SIZE,
        });
    }
    Ok(Some(bytes))
}
