//! KitOps' `.kitignore`: the files below a Kitfile's paths that `kit pack`
//! leaves out. KitOps reads it with Docker's `.dockerignore` machinery
//! (moby's `patternmatcher`), so these are its rules: one pattern per line,
//! a line starting with `#` a comment, the pattern cleaned as a path (`.`
//! and `..` resolved, a leading `/` dropped), `*` and `?` within a path
//! segment, `**` across segments, `[...]` classes, `\` escaping, a pattern
//! also covering everything below a directory it matches, `!` taking a
//! file back, and the last matching line deciding.
//!
//! Patterns are translated to regular expressions by hand, as Docker does:
//! glob crates (globset, glob) read `**`, `{a,b}` and `[!x]` differently,
//! and a `.kitignore` must select the same files here as under `kit pack`.

use std::io::Read;
use std::path::Path;

use regex::Regex;

use super::walk::{self, Reach};
use crate::error::{IoContext, Result, StoreError};

/// The file's name in the directory `kit pack` reads.
pub const KITIGNORE_NAME: &str = ".kitignore";

/// The most of a `.kitignore` read.
const MAX_KITIGNORE_BYTES: u64 = 1 << 20;

/// The compiled lines of a `.kitignore`.
#[derive(Debug, Clone, Default)]
pub struct KitIgnore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    regex: Regex,
    /// A `!` line: a file it matches is packed after all.
    keep: bool,
}

impl KitIgnore {
    /// Reads `DIR/.kitignore` (a link to it obeys the walk's rule for
    /// links, `reach`); none is an empty set of rules.
    pub fn read(dir: &Path, reach: Reach) -> Result<KitIgnore> {
        let path = dir.join(KITIGNORE_NAME);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(KitIgnore::default());
        }
        let read_from = walk::readable_in(dir, &path, reach)?;
        let mut bytes = Vec::new();
        walk::open_regular(&read_from)
            .and_then(|f| f.take(MAX_KITIGNORE_BYTES + 1).read_to_end(&mut bytes))
            .ctx("reading", &path)?;
        if bytes.len() as u64 > MAX_KITIGNORE_BYTES {
            return Err(StoreError::KitIgnoreTooLarge {
                path,
                limit: MAX_KITIGNORE_BYTES,
            });
        }
        KitIgnore::parse(&String::from_utf8_lossy(&bytes))
    }

    /// Compiles the lines of a `.kitignore`.
    pub fn parse(text: &str) -> Result<KitIgnore> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for line in text.lines() {
            // A comment only at the very start of the line, as Docker reads it.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (keep, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            let regex =
                Regex::new(&to_regex(&pattern)).map_err(|e| StoreError::KitIgnorePattern {
                    line: line.to_string(),
                    reason: e.to_string(),
                })?;
            rules.push(Rule { regex, keep });
        }
        Ok(KitIgnore { rules })
    }

    /// True when `rel` (relative to the directory, `/`-separated) is left
    /// out: the last line matching it or a directory above it decides.
    pub fn ignores(&self, rel: &str) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            // A line can only change the verdict the other way.
            if rule.keep != ignored {
                continue;
            }
            if self_or_parent_matches(&rule.regex, rel) {
                ignored = !rule.keep;
            }
        }
        ignored
    }

    /// True when a directory that is ignored may be skipped whole: no `!`
    /// line could take back a file below it.
    pub fn prunes_directories(&self) -> bool {
        !self.rules.iter().any(|r| r.keep)
    }
}

/// Whether `regex` matches `rel` or one of the directories above it.
fn self_or_parent_matches(regex: &Regex, rel: &str) -> bool {
    regex.is_match(rel)
        || rel
            .match_indices('/')
            .any(|(at, _)| regex.is_match(&rel[..at]))
}

/// The pattern cleaned as Go's `filepath.Clean` cleans a path, then made
/// relative (a leading `/` dropped).
fn clean(pattern: &str) -> String {
    let rooted = pattern.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                // `/..` is `/`; a relative path keeps its leading `..`.
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    if parts.is_empty() && !rooted {
        return ".".to_string();
    }
    parts.join("/")
}

/// The regular expression of one cleaned pattern, anchored at both ends.
fn to_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    out.push_str(".*");
                } else {
                    // Any number of whole directories, none included.
                    out.push_str("(.*/)?");
                }
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '\\' => match chars.next() {
                Some(escaped) => out.push_str(&regex::escape(&escaped.to_string())),
                None => out.push_str(r"\\"),
            },
            // Classes pass through: Go's and Rust's regex read `[...]` alike.
            '[' | ']' | '^' | '-' => out.push(c),
            _ => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::{KitIgnore, clean};

    #[test]
    fn patterns_cover_directories_below_and_the_last_line_decides() {
        let ignore = KitIgnore::parse(
            "\u{feff}# scratch\n\n*.tmp\n/checkpoints/\n!checkpoints/final.bin\n**/__pycache__\ndata/raw?\n  # not a comment\n",
        )
        .unwrap();
        assert!(ignore.ignores("a.tmp"));
        assert!(!ignore.ignores("src/a.tmp"), "* does not cross a /");
        assert!(ignore.ignores("checkpoints/step1.bin"));
        assert!(!ignore.ignores("checkpoints/final.bin"));
        assert!(ignore.ignores("__pycache__/m.pyc"));
        assert!(ignore.ignores("src/deep/__pycache__/m.pyc"));
        assert!(ignore.ignores("data/raw1/x.csv"));
        assert!(!ignore.ignores("data/raw10/x.csv"));
        assert!(ignore.ignores("# not a comment"));
        assert!(!ignore.ignores("model.safetensors"));
        assert!(!ignore.prunes_directories());
    }

    #[test]
    fn docker_readings_of_stars_braces_classes_and_dots() {
        let ignore =
            KitIgnore::parse("logs/**\n**.pyc\n{a,b}.txt\n[!x].md\nsrc/../dist\n").unwrap();
        assert!(ignore.ignores("logs/a/b/c"));
        // `**` not followed by `/` still stands for whole directories.
        assert!(ignore.ignores("deep/.pyc"));
        assert!(!ignore.ignores("x.pyc"));
        assert!(ignore.ignores("{a,b}.txt"), "braces are literal");
        assert!(!ignore.ignores("a.txt"));
        assert!(ignore.ignores("!.md"), "[!x] is ! or x");
        assert!(!ignore.ignores("y.md"));
        assert!(ignore.ignores("dist/app.js"));
        assert!(ignore.prunes_directories());
    }

    #[test]
    fn an_empty_file_ignores_nothing_and_a_bad_pattern_is_an_error() {
        assert!(!KitIgnore::parse("").unwrap().ignores(".git/HEAD"));
        assert!(KitIgnore::parse("[a-\n").is_err());
    }

    #[test]
    fn patterns_are_cleaned_as_paths() {
        assert_eq!(clean("/a/b/"), "a/b");
        assert_eq!(clean("./a//./b"), "a/b");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/../a"), "a");
        assert_eq!(clean("a/.."), ".");
    }
}
