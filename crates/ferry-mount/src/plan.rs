//! Pure planning: which lower directories, in which order, whether the
//! stack must be flattened, and what a subpath names in the merged view.

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::error::{IoContext, MountError, Result};
use crate::layers::LayerKey;
use crate::sys::{Overlay, Upper};

/// overlayfs stacks at most this many lower directories (`OVL_MAX_STACK`).
pub const MAX_LOWERS: usize = 500;

/// mount(2) copies at most one page of options; a longer string is cut.
pub const MAX_OPTIONS: usize = 4095;

/// Drops every key that appears again higher up: its content is identical
/// to the higher copy, which wins anyway, and overlayfs refuses the same
/// directory twice. `keys` are bottom first; so is the result.
pub fn dedupe_keep_topmost(keys: &[LayerKey]) -> Vec<LayerKey> {
    let mut out: Vec<LayerKey> = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        if !keys[i + 1..].contains(key) {
            out.push(key.clone());
        }
    }
    out
}

/// How the lower directories are arranged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lowers {
    /// One overlay lower per cached layer (bottom first).
    Layers(Vec<PathBuf>),
    /// Too many layers for one overlay: a merged hardlink tree of them all
    /// is the single lower.
    Flatten,
}

/// Chooses between one lower per layer and a flattened tree: the per-layer
/// stack is used when overlayfs accepts it (at most [`MAX_LOWERS`] lowers,
/// options within one page).
pub fn choose_lowers(dirs: &[PathBuf], upper: Option<&Upper>, empty: &std::path::Path) -> Lowers {
    let overlay = overlay_for(dirs.to_vec(), upper.cloned(), empty);
    if overlay.lowers.len() > MAX_LOWERS || overlay.options().len() > MAX_OPTIONS {
        Lowers::Flatten
    } else {
        Lowers::Layers(dirs.to_vec())
    }
}

/// The overlay for `lowers` (bottom first): a read-only overlay of a single
/// directory gets the empty directory below it, since overlayfs needs two
/// lowers when there is no upper.
pub fn overlay_for(
    mut lowers: Vec<PathBuf>,
    upper: Option<Upper>,
    empty: &std::path::Path,
) -> Overlay {
    if upper.is_none() && lowers.len() < 2 {
        lowers.insert(0, empty.to_path_buf());
    }
    Overlay { lowers, upper }
}

/// What a subpath names in the merged view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A directory, merged from these lowers (bottom first).
    Dir(Vec<PathBuf>),
    /// A regular file, from this lower.
    File(PathBuf),
}

/// Looks `parts` up in `lowers` (bottom first) as overlayfs would: the
/// topmost entry wins; directories merge down to the first lower where the
/// path is not a directory. Symlinks are refused anywhere on the path: the
/// bind mount resolves without following them, so the planner does too.
pub fn locate(lowers: &[PathBuf], parts: &[String], subpath: &str) -> Result<Located> {
    let mut merged: Vec<PathBuf> = lowers.iter().rev().cloned().collect(); // top first
    for (depth, part) in parts.iter().enumerate() {
        let last = depth + 1 == parts.len();
        let mut next: Vec<PathBuf> = Vec::new();
        for dir in &merged {
            let path = dir.join(part);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).ctx("reading", &path),
            };
            if meta.is_dir() {
                next.push(path);
                continue;
            }
            if !next.is_empty() {
                break; // a non-directory below a directory ends the merge
            }
            if meta.file_type().is_symlink() {
                return Err(MountError::InvalidSubpath {
                    subpath: subpath.to_string(),
                    reason: format!(
                        "{} is a symlink; name what it points to",
                        parts[..=depth].join("/")
                    ),
                });
            }
            if last && meta.is_file() {
                return Ok(Located::File(path));
            }
            return Err(MountError::InvalidSubpath {
                subpath: subpath.to_string(),
                reason: format!("{} is not a directory", parts[..=depth].join("/")),
            });
        }
        if next.is_empty() {
            return Err(MountError::SubpathMissing {
                subpath: subpath.to_string(),
                artifacts: String::new(),
            });
        }
        merged = next;
    }
    merged.reverse();
    Ok(Located::Dir(merged))
}

/// Refuses a subpath view holding a symlink that points outside it.
///
/// A link valid in the whole volume (`a/b/config.json -> ../../x`) climbs
/// above a subpath's root, and in the consumer's view would resolve to
/// whatever is above the mount point (the host's files). Omitting or
/// rewriting the link would hand the user a silently different volume;
/// refusing names the link, and mounting the whole volume (or a subpath
/// that contains the link's target) works. `dirs` are the lowers of the
/// subpath (see [`locate`]); every link in them is judged, even one a
/// higher layer hides.
pub fn check_links_stay_inside(dirs: &[PathBuf], parts: &[String], subpath: &str) -> Result<()> {
    for dir in dirs {
        check_links_in(dir, &mut Vec::new(), subpath, parts)?;
    }
    Ok(())
}

fn check_links_in(
    dir: &std::path::Path,
    inside: &mut Vec<String>,
    subpath: &str,
    parts: &[String],
) -> Result<()> {
    if inside.len() >= crate::at::MAX_DEPTH {
        return Err(crate::at::too_deep()).ctx("reading", dir);
    }
    for entry in fs::read_dir(dir).ctx("reading", dir)? {
        let entry = entry.ctx("reading", dir)?;
        let path = entry.path();
        let file_type = entry.file_type().ctx("reading", &path)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if file_type.is_dir() {
            inside.push(name);
            check_links_in(&path, inside, subpath, parts)?;
            inside.pop();
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).ctx("reading link", &path)?;
            let target = target.to_string_lossy();
            if !stays_inside(inside, &target) {
                let link = [parts, inside.as_slice(), &[name]].concat().join("/");
                return Err(MountError::InvalidSubpath {
                    subpath: subpath.to_string(),
                    reason: format!(
                        "symlink {link} points to {target:?}, outside the subpath: mount the whole volume or a subpath that contains its target"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Whether a link in directory `inside` (components below the view's root)
/// pointing to `target` resolves inside the view, judged lexically as the
/// store's extractor judges links in a layer: absolute targets leave, and
/// so does `..` after a name (the name could be a link to `.`).
fn stays_inside(inside: &[String], target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth = inside.len();
    let mut descended = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." if descended || depth == 0 => return false,
            ".." => depth -= 1,
            _ => descended = true,
        }
    }
    true
}

/// Splits and checks a subpath: relative, no `..`, not empty.
pub fn subpath_parts(subpath: &str) -> Result<Vec<String>> {
    let trimmed = subpath.trim_end_matches('/');
    ferry_store::extract::safe_components(trimmed).map_err(|e| MountError::InvalidSubpath {
        subpath: subpath.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn key(n: u8) -> LayerKey {
        LayerKey::parse(&format!("sha256/{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    #[test]
    fn duplicates_keep_their_topmost_position() {
        let keys = [key(1), key(2), key(1), key(3), key(2)];
        assert_eq!(dedupe_keep_topmost(&keys), vec![key(1), key(3), key(2)]);
    }

    #[test]
    fn single_read_only_lowers_get_the_empty_directory_below() {
        let empty = Path::new("/s/layers/empty");
        let one = overlay_for(vec!["/s/a".into()], None, empty);
        assert_eq!(
            one.lowers,
            vec![PathBuf::from("/s/layers/empty"), "/s/a".into()]
        );
        let upper = Upper {
            upper: "/u".into(),
            work: "/w".into(),
        };
        let rw = overlay_for(vec!["/s/a".into()], Some(upper), empty);
        assert_eq!(rw.lowers, vec![PathBuf::from("/s/a")]);
    }

    #[test]
    fn long_stacks_are_flattened() {
        let empty = Path::new("/e");
        let short: Vec<PathBuf> = (0..3).map(|i| PathBuf::from(format!("/s/{i}"))).collect();
        assert_eq!(
            choose_lowers(&short, None, empty),
            Lowers::Layers(short.clone())
        );
        let long: Vec<PathBuf> = (0..60)
            .map(|i| {
                PathBuf::from(format!(
                    "/var/lib/ferry/layers/sha256/{}",
                    format!("{i:02}").repeat(32)
                ))
            })
            .collect();
        assert_eq!(choose_lowers(&long, None, empty), Lowers::Flatten);
        let deep: Vec<PathBuf> = (0..=MAX_LOWERS)
            .map(|i| PathBuf::from(format!("{i}")))
            .collect();
        assert_eq!(choose_lowers(&deep, None, empty), Lowers::Flatten);
    }

    #[test]
    fn subpaths_are_checked() {
        assert!(subpath_parts("../x").is_err());
        assert!(subpath_parts("/abs").is_err());
        assert!(subpath_parts("").is_err());
        assert_eq!(subpath_parts("a/b/").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn links_are_judged_from_the_subpath_root() {
        let inside = |s: &str| -> Vec<String> {
            s.split('/')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        };
        assert!(stays_inside(&inside("a"), "../x"));
        assert!(stays_inside(&inside(""), "x/y"));
        assert!(!stays_inside(&inside(""), "../x"));
        assert!(!stays_inside(&inside("a"), "../../x"));
        assert!(!stays_inside(&inside("a/b"), "/etc/hostname"));
        assert!(!stays_inside(&inside("a"), "b/../../x"));
    }

    #[test]
    fn locate_follows_overlay_rules() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
        for (dir, rel) in [(&a, "d/x"), (&b, "d/y"), (&c, "e/z")] {
            fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
            fs::write(dir.join(rel), "x").unwrap();
        }
        fs::write(c.join("d"), "a file hides the directories below").unwrap();
        std::os::unix::fs::symlink("e", b.join("link")).unwrap();
        let lowers = vec![a.clone(), b.clone(), c.clone()];
        let parts = |s: &str| subpath_parts(s).unwrap();
        assert_eq!(
            locate(&lowers, &parts("e"), "e").unwrap(),
            Located::Dir(vec![c.join("e")])
        );
        assert_eq!(
            locate(&lowers, &parts("d"), "d").unwrap(),
            Located::File(c.join("d"))
        );
        assert!(matches!(
            locate(&lowers, &parts("d/x"), "d/x"),
            Err(MountError::InvalidSubpath { .. })
        ));
        assert!(matches!(
            locate(&lowers, &parts("nope"), "nope"),
            Err(MountError::SubpathMissing { .. })
        ));
        assert!(matches!(
            locate(&lowers, &parts("link"), "link"),
            Err(MountError::InvalidSubpath { .. })
        ));
        // Without the top layer, `d` merges the two lower directories.
        let two = vec![a.clone(), b.clone()];
        assert_eq!(
            locate(&two, &parts("d"), "d").unwrap(),
            Located::Dir(vec![a.join("d"), b.join("d")])
        );
    }
}
