//! Helpers shared by the tests: the signing vectors in shared/.

use std::path::PathBuf;

/// A file or directory of `testdata/signing/`, or `None` (skip) outside CI.
pub fn vector(rel: &str) -> Option<PathBuf> {
    ferry_testkit::shared_data(&format!("testdata/signing/{rel}"))
}

/// The text of a signing vector file.
pub fn vector_text(rel: &str) -> Option<String> {
    vector(rel).map(|p| std::fs::read_to_string(p).unwrap())
}
