//! ferry-spec: the types of the standards ferry implements, with no I/O of its own beyond shared file helpers.
//!
//! ModelPack media types, annotations and config; OCI references and digests
//! (built on `oci-spec`) and the distribution grammar; modctl's Modelfile;
//! KitOps' Kitfile and ModelKit media types;
//! the file classifier. Its only I/O is the small file helpers every crate
//! shares: streaming hashes and durable file replacement (`durable`).

pub mod annotations;
pub mod classify;
pub mod config;
pub mod digest;
pub mod durable;
pub mod json;
pub mod kitfile;
pub mod media;
pub mod modelfile;
pub mod names;
pub mod signature;
pub mod wasm;

pub use oci_spec::distribution::Reference;
pub use oci_spec::image as oci;
