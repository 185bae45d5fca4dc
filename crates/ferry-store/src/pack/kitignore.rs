//! KitOps' `.kitignore`: the files below a Kitfile's paths that `kit pack`
//! leaves out. Its rules are `.dockerignore`'s: one pattern per line, `#`
//! comments, `*` and `?` within a path segment, `**` across segments, a
//! pattern also covering everything below a directory it matches, `!`
//! taking a file back, and the last matching line deciding.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{IoContext, Result, StoreError};

/// The file's name in the directory `kit pack` reads.
pub const KITIGNORE_NAME: &str = ".kitignore";

/// The compiled lines of a `.kitignore`.
#[derive(Debug, Clone, Default)]
pub struct KitIgnore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    glob: GlobMatcher,
    /// A `!` line: a file it matches is packed after all.
    keep: bool,
}

impl KitIgnore {
    /// Reads `DIR/.kitignore`; none is an empty set of rules.
    pub fn read(dir: &Path) -> Result<KitIgnore> {
        let path = dir.join(KITIGNORE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => KitIgnore::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KitIgnore::default()),
            Err(e) => Err(e).ctx("reading", &path),
        }
    }

    /// Compiles the lines of a `.kitignore`.
    pub fn parse(text: &str) -> Result<KitIgnore> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keep, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| StoreError::InvalidGlob {
                    pattern: format!("{KITIGNORE_NAME}: {line}"),
                    source,
                })?;
            rules.push(Rule {
                glob: glob.compile_matcher(),
                keep,
            });
        }
        Ok(KitIgnore { rules })
    }

    /// True when `rel` (relative to the directory, `/`-separated) is left
    /// out: the last line matching it or a directory above it decides.
    pub fn ignores(&self, rel: &str) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            if self_or_parent_matches(&rule.glob, rel) {
                ignored = !rule.keep;
            }
        }
        ignored
    }
}

/// Whether `glob` matches `rel` or one of the directories above it.
fn self_or_parent_matches(glob: &GlobMatcher, rel: &str) -> bool {
    if glob.is_match(rel) {
        return true;
    }
    rel.match_indices('/')
        .any(|(at, _)| glob.is_match(&rel[..at]))
}

/// The pattern as a path relative to the directory: no leading `/` or
/// `./`, no trailing `/`, `.` and empty segments dropped (the patterns are
/// cleaned as paths before matching, as Docker does).
fn clean(pattern: &str) -> String {
    pattern
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::KitIgnore;

    #[test]
    fn patterns_cover_directories_below_and_the_last_line_decides() {
        let ignore = KitIgnore::parse(
            "# scratch\n\n*.tmp\n/checkpoints/\n!checkpoints/final.bin\n**/__pycache__\ndata/raw?\n",
        )
        .unwrap();
        assert!(ignore.ignores("a.tmp"));
        assert!(!ignore.ignores("src/a.tmp"), "* does not cross a /");
        assert!(ignore.ignores("checkpoints/step1.bin"));
        assert!(!ignore.ignores("checkpoints/final.bin"));
        assert!(ignore.ignores("src/deep/__pycache__/m.pyc"));
        assert!(ignore.ignores("data/raw1/x.csv"));
        assert!(!ignore.ignores("data/raw10/x.csv"));
        assert!(!ignore.ignores("model.safetensors"));
    }

    #[test]
    fn an_empty_file_ignores_nothing_and_a_bad_pattern_is_an_error() {
        assert!(!KitIgnore::parse("").unwrap().ignores(".git/HEAD"));
        assert!(KitIgnore::parse("[a-\n").is_err());
    }
}
