//! `ferry_spec::names::parse_reference` on arbitrary UTF-8.
//!
//! Invariants: never panics; an accepted reference has a repository, tag and
//! digest that pass the grammar's own checks, and its normalized form
//! (`whole()`) parses back to the same registry, repository, tag and digest.
//! A refused one says why and keeps the input.

#![no_main]

use ferry_spec::names::{digest_problem, is_valid_repository, is_valid_tag, parse_reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let reference = match parse_reference(input) {
        Ok(reference) => reference,
        Err(error) => {
            assert_eq!(error.input, input);
            assert!(
                !error.reason.is_empty(),
                "refused {input:?} without a reason"
            );
            return;
        }
    };
    let repository = reference.repository();
    assert!(
        is_valid_repository(repository),
        "{input:?} accepted with repository {repository:?}"
    );
    if let Some(tag) = reference.tag() {
        assert!(is_valid_tag(tag), "{input:?} accepted with tag {tag:?}");
    }
    if let Some(digest) = reference.digest() {
        assert_eq!(
            digest_problem(digest),
            None,
            "{input:?} accepted with digest {digest:?}"
        );
    }
    assert!(!reference.registry().is_empty(), "{input:?}: no registry");

    let whole = reference.whole();
    let again = parse_reference(&whole)
        .unwrap_or_else(|e| panic!("{input:?} normalizes to {whole:?}, which is refused: {e}"));
    let parts = |r: &ferry_spec::Reference| {
        (
            r.registry().to_string(),
            r.repository().to_string(),
            r.tag().map(str::to_string),
            r.digest().map(str::to_string),
        )
    };
    assert_eq!(
        parts(&reference),
        parts(&again),
        "{input:?} normalizes to {whole:?}, which parses differently"
    );
    assert_eq!(
        again.whole(),
        whole,
        "whole() is not a fixed point for {input:?}"
    );
});
