//! ferry-scan: model files judged before they are packed, pulled or
//! mounted. Pickles are read opcode by opcode without executing anything
//! and their globals judged against an allowlist; safetensors and GGUF
//! headers are validated without reading tensor data; ONNX external data
//! must stay inside the model directory. Memory is bounded by limits, never
//! by what a file claims.

pub mod file;
pub mod format;
pub mod gguf;
pub mod globals;
pub mod npy;
pub mod onnx;
pub mod pickle;
pub mod safetensors;
pub mod verdict;

pub use file::{FileReport, Format, scan_file};
pub use format::FormatError;
pub use verdict::{Finding, Verdict};
