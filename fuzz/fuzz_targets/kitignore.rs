//! KitOps' `.kitignore` reader on arbitrary text: the file comes with any
//! project `ferry pack -f Kitfile` is pointed at.
//!
//! Input: lines of `.kitignore`, then a NUL, then a path to judge.
//!
//! Invariants: never panics (patterns become regular expressions, whose
//! size the regex crate bounds); a set of rules without `!` lines that
//! ignores a directory ignores everything below it, so pruning the walk
//! there loses no file; a rule set that parses ignores nothing when every
//! line is a comment.

#![no_main]

use ferry_store::pack::kitignore::KitIgnore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rules, path) = text.split_once('\0').unwrap_or((text, "a/b"));
    let Ok(ignore) = KitIgnore::parse(rules) else {
        return;
    };
    let path = path.trim_matches('/');
    if path.is_empty() || path.contains('\0') {
        return;
    }
    if ignore.prunes_directories() && ignore.ignores(path) {
        assert!(
            ignore.ignores(&format!("{path}/below")),
            "{rules:?} {path:?}"
        );
    }
    let commented: String = rules.lines().map(|l| format!("#{l}\n")).collect();
    assert!(!KitIgnore::parse(&commented).unwrap().ignores(path));
});
