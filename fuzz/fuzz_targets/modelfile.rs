//! modctl's Modelfile parser (`ferry_spec::modelfile::Modelfile::parse`) on
//! arbitrary text.
//!
//! Invariants: never panics; an error names a line of the input (1-based,
//! at most the number of lines); every glob of a parsed Modelfile remembers
//! the line it came from; `render()` writes a Modelfile that parses, with
//! the same single values (whitespace runs and line breaks become one
//! space, as documented) and globs that match what the originals match,
//! and rendering that again changes nothing; classifying paths with the
//! parsed globs does not panic.

#![no_main]

use ferry_spec::modelfile::{GlobEntry, Modelfile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // `lines()` is what the parser counts; a BOM is skipped first.
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let line_count = body.lines().count();
    let parsed = match Modelfile::parse(text) {
        Ok(parsed) => parsed,
        Err(error) => {
            let line = error.line();
            assert!(
                (1..=line_count).contains(&line),
                "error {error} names line {line} of a {line_count}-line input"
            );
            assert!(error.to_string().contains(&format!("line {line}")));
            return;
        }
    };
    for (_, glob) in parsed.globs() {
        assert!(
            (1..=line_count).contains(&glob.line),
            "glob {:?} on line {} of a {line_count}-line input",
            glob.pattern,
            glob.line
        );
        assert!(!glob.pattern.is_empty());
    }

    // Globs are matched against the input's own words: no panic, and when
    // every glob is reported unmatched, no path is classified. (Globs
    // compile to regexes: once per run is slow enough.)
    let paths: Vec<&str> = body.split_whitespace().take(8).collect();
    let matcher = parsed.matcher();
    let unmatched = matcher.unmatched(paths.iter().copied());
    if unmatched.len() == parsed.globs().count() {
        for path in &paths {
            assert_eq!(
                matcher.category_for(path),
                None,
                "{path:?} matches no glob, yet is classified"
            );
        }
    }

    let rendered = parsed.render();
    let reparsed = Modelfile::parse(&rendered).unwrap_or_else(|e| {
        panic!("render() of a parsed Modelfile does not parse: {e}\n{rendered}")
    });
    assert_eq!(
        reparsed.render(),
        rendered,
        "rendering a rendered Modelfile changes it"
    );
    let (before, after) = (normalized(parsed.clone()), normalized(reparsed.clone()));
    assert_eq!(
        before.facts, after.facts,
        "single values differ:\n{rendered}"
    );
    let old: Vec<_> = parsed.globs().collect();
    let new: Vec<_> = reparsed.globs().collect();
    assert_eq!(old.len(), new.len(), "globs lost:\n{rendered}");
    // A glob is rewritten (`[ ]` for a space, `[#]`), never changed in
    // meaning: on the input's words both match alike. Tabs and control
    // characters become `?` (modctl cannot carry them), so those globs
    // are left out of the comparison.
    for ((old_category, old_glob), (new_category, new_glob)) in old.iter().zip(&new) {
        assert_eq!(old_category, new_category);
        if old_glob
            .pattern
            .contains(|c: char| c.is_control() || (c.is_whitespace() && c != ' '))
        {
            continue;
        }
        let single = |glob: &GlobEntry| Modelfile {
            doc: vec![glob.clone()],
            ..Modelfile::default()
        };
        let (a, b) = (single(old_glob), single(new_glob));
        for path in &paths {
            assert_eq!(
                a.category_for(path),
                b.category_for(path),
                "{:?} and its rendering {:?} disagree on {path:?}",
                old_glob.pattern,
                new_glob.pattern
            );
        }
    }
});

/// The Modelfile without line numbers, with line breaks in values as the
/// spaces `render()` writes for them.
fn normalized(mut mf: Modelfile) -> Modelfile {
    let fix = |v: &mut String| *v = v.split_whitespace().collect::<Vec<_>>().join(" ");
    for single in [
        &mut mf.facts.name,
        &mut mf.facts.arch,
        &mut mf.facts.family,
        &mut mf.facts.format,
        &mut mf.facts.param_size,
        &mut mf.facts.precision,
        &mut mf.facts.quantization,
    ] {
        if let Some(value) = single.as_mut() {
            fix(value);
        }
        // A value of only whitespace is not written (it would read as none).
        if single.as_ref().is_some_and(|v| v.is_empty()) {
            *single = None;
        }
    }
    for globs in [
        &mut mf.config,
        &mut mf.model,
        &mut mf.code,
        &mut mf.dataset,
        &mut mf.doc,
    ] {
        for GlobEntry { pattern, line } in globs.iter_mut() {
            fix(pattern);
            *line = 0;
        }
    }
    mf
}
