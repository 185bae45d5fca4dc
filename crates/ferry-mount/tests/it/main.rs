//! Integration tests of ferry-mount: planning against the recording fake
//! (no root), then real mounts (root; skipped with a note elsewhere, failed
//! under `CI=true`).

mod common;
mod gc;
mod planning;
mod real;
