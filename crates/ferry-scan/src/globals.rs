//! The judgement of a pickle global against the allowlist and the
//! denylist kept as data in `globals.toml` (each entry with its reason).

use std::sync::OnceLock;

use serde::Deserialize;

/// What the lists say of a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Known safe.
    Safe,
    /// Known dangerous, with the list's reason.
    Dangerous(&'static str),
    /// Neither.
    Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lists {
    safe: Vec<Entry>,
    dangerous: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    module: String,
    names: Vec<String>,
    reason: String,
}

impl Entry {
    fn names(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == "*" || n == name)
    }
}

/// The lists, parsed once. The file is part of the binary and checked by a
/// test: a broken file is a build defect, so an empty list stands in.
fn lists() -> &'static Lists {
    static LISTS: OnceLock<Lists> = OnceLock::new();
    LISTS.get_or_init(|| {
        toml::from_str(include_str!("globals.toml")).unwrap_or(Lists {
            safe: Vec::new(),
            dangerous: Vec::new(),
        })
    })
}

/// Judges `module.name`. The denylist wins; a wholly dangerous module
/// covers its submodules; safe entries match their module exactly.
pub fn judge(module: &str, name: &str) -> Judgement {
    let lists = lists();
    // A wholly dangerous module ("*") covers its submodules too.
    let covers = |entry: &Entry| {
        (module == entry.module && entry.names(name))
            || (entry.names.iter().any(|n| n == "*")
                && module
                    .strip_prefix(entry.module.as_str())
                    .is_some_and(|rest| rest.starts_with('.')))
    };
    if let Some(entry) = lists.dangerous.iter().find(|e| covers(e)) {
        return Judgement::Dangerous(&entry.reason);
    }
    // A dotted name (`Popen.__init__`) is an attribute path: only the
    // plain names the lists give are judged safe.
    if lists
        .safe
        .iter()
        .any(|e| e.module == module && e.names(name))
    {
        return Judgement::Safe;
    }
    Judgement::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_parse_and_every_entry_has_a_reason() {
        let lists: Lists = toml::from_str(include_str!("globals.toml")).unwrap();
        assert!(lists.safe.len() > 20 && lists.dangerous.len() > 40);
        for entry in lists.safe.iter().chain(&lists.dangerous) {
            assert!(!entry.reason.trim().is_empty(), "{}", entry.module);
            assert!(!entry.names.is_empty(), "{}", entry.module);
        }
    }

    #[test]
    fn judgements() {
        assert_eq!(judge("collections", "OrderedDict"), Judgement::Safe);
        assert_eq!(judge("torch._utils", "_rebuild_tensor_v2"), Judgement::Safe);
        assert!(matches!(judge("os", "system"), Judgement::Dangerous(_)));
        assert!(
            matches!(judge("os.path", "join"), Judgement::Dangerous(_)),
            "submodules"
        );
        assert!(matches!(judge("builtins", "eval"), Judgement::Dangerous(_)));
        assert_eq!(judge("builtins", "set"), Judgement::Safe);
        assert!(matches!(judge("torch", "load"), Judgement::Dangerous(_)));
        assert_eq!(judge("torch", "FloatStorage"), Judgement::Safe);
        assert_eq!(
            judge("osmosis", "x"),
            Judgement::Unknown,
            "a prefix is not a module"
        );
        assert_eq!(
            judge("collections", "OrderedDict.fromkeys"),
            Judgement::Unknown
        );
        assert_eq!(judge("__main__", "MyModel"), Judgement::Unknown);
    }
}
