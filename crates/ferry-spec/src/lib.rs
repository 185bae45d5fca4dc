//! ferry-spec: the types of the standards ferry implements, with no I/O.
//!
//! ModelPack media types, annotations and config; OCI references and digests
//! (built on `oci-spec`); modctl's Modelfile; the file classifier.

pub mod annotations;
pub mod classify;
pub mod config;
pub mod digest;
pub mod json;
pub mod media;
pub mod modelfile;
pub mod names;

pub use oci_spec::distribution::Reference;
pub use oci_spec::image as oci;
