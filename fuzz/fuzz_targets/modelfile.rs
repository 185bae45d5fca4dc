//! modctl's Modelfile parser (`ferry_spec::modelfile::Modelfile::parse`) on
//! arbitrary text.
//!
//! Invariants: never panics; an error names a line of the input (1-based,
//! at most the number of lines); every glob of a parsed Modelfile remembers
//! the line it came from; `render()` writes a Modelfile that parses back to
//! the same directives (line breaks inside a value become spaces, as
//! documented); classifying paths with the parsed globs does not panic.

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
        normalized(reparsed),
        normalized(parsed),
        "render() does not round-trip:\n{rendered}"
    );
});

/// The Modelfile without line numbers, with line breaks in values as the
/// spaces `render()` writes for them.
fn normalized(mut mf: Modelfile) -> Modelfile {
    let fix = |v: &mut String| *v = v.replace(['\r', '\n'], " ");
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
