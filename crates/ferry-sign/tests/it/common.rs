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

/// True when the `openssl` CLI runs (skips with a note outside CI).
pub fn require_openssl() -> bool {
    ferry_testkit::require::require(
        "openssl",
        ferry_testkit::require::command_works("openssl", &["version"]),
    )
}

/// Runs `openssl args` and returns its stdout; panics on failure.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A sha256 digest of `seed`, as a manifest digest.
pub fn digest_of(seed: &str) -> ferry_spec::oci::Digest {
    ferry_spec::digest::sha256_digest(seed.as_bytes())
}
