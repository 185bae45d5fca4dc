//! Test support for ferry's crates (a dev-dependency only, never published).
//!
//! - [`model`]: synthetic Hugging Face style models (valid safetensors
//!   shards, tokenizer, configs), deterministic for a seed and streamed in
//!   bounded memory; [`cached_model`] reuses them across test binaries.
//!   The `ferry-gen-model` binary makes the same models for the benches.
//! - [`require`]: root, external tools and the `shared/` data vectors. A
//!   missing component fails under `CI=true` and skips with a note elsewhere.
//! - [`tree`]: directory trees to snapshot, compare and copy.
//! - [`safetensors`]: a checked reader of safetensors headers.
//!
//! ```
//! use ferry_testkit::{ModelSpec, generate, safetensors};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let model = generate(dir.path(), &ModelSpec::new(1 << 20).shards(2).seed(7)).unwrap();
//! assert_eq!(model.shard_files.len(), 2);
//! for shard in &model.shard_files {
//!     let header = safetensors::read_header(&dir.path().join(shard)).unwrap();
//!     assert!(!header.tensors.is_empty());
//! }
//! assert!(dir.path().join("model.safetensors.index.json").is_file());
//! ```

// Test support: a panic in a helper is a test failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod files;
pub mod model;
mod normal;
pub mod require;
mod rng;
pub mod safetensors;
pub mod tree;

pub use cache::cached_model;
pub use model::{
    Dtype, GENERATOR_VERSION, GIB, GeneratedModel, MIB, ModelSpec, generate, parse_size,
};
pub use normal::bf16_to_f32;
pub use require::{
    command_works, in_ci, is_root, python_has, require, require_python, require_root,
    require_setpriv, require_skopeo, shared_data, shared_root,
};
pub use tree::{
    Node, assert_same_tree, copy_tree, file_sizes, files_only, paths, sha256, sha256_file, tree,
    tree_following_links,
};
