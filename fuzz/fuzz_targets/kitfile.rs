//! KitOps' Kitfile reader on arbitrary bytes: a ModelKit's config comes
//! from any registry (JSON), a Kitfile from any project (YAML).
//!
//! Input: the first byte chooses the reader (even: YAML, odd: JSON); the
//! rest is the document.
//!
//! Invariants: never panics, whatever the nesting or aliases; a Kitfile
//! that parses has paths that are relative, plain and inside the context
//! (no `..`, no leading `/`, no `./`), or an error naming the field; its
//! annotation JSON reads back as the same document; the fields named as
//! without a ModelPack home exist in the document.

#![no_main]

use ferry_spec::kitfile::Kitfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let parsed = if selector % 2 == 0 {
        match std::str::from_utf8(body) {
            Ok(text) => Kitfile::from_yaml(text),
            Err(_) => return,
        }
    } else {
        Kitfile::from_json(body)
    };
    let Ok(kitfile) = parsed else {
        return;
    };
    match kitfile.paths() {
        Ok(paths) => {
            for listed in &paths {
                let path = &listed.path;
                assert!(!path.starts_with('/'), "{path:?} is absolute");
                assert!(
                    !path
                        .split('/')
                        .any(|p| p == ".." || p == "." || p.is_empty())
                        || path.is_empty(),
                    "{path:?} is not plain"
                );
                assert!(listed.field.ends_with(".path"), "{}", listed.field);
            }
        }
        Err(error) => assert!(error.to_string().contains(".path"), "{error}"),
    }
    let json = kitfile.annotation_json();
    let back = Kitfile::from_json(json.as_bytes()).expect("the annotation reads back");
    assert_eq!(back.document, kitfile.document);
    let _ = kitfile.metadata();
    let top = kitfile
        .document
        .as_object()
        .expect("a Kitfile is a mapping");
    for field in kitfile.unmapped_fields() {
        let first = field.split(['.', '[']).next().unwrap_or_default();
        assert!(
            top.keys()
                .any(|k| field.starts_with(k.as_str()) && k.starts_with(first)),
            "{field:?} names no field of the document"
        );
    }
});
