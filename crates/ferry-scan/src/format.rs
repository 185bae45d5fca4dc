//! Errors of the format validators (safetensors, GGUF): each names what is
//! wrong and where.

/// A file that is not a valid instance of its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format}: {reason} (at byte {offset})")]
pub struct FormatError {
    /// The format (`safetensors`, `GGUF`).
    pub format: &'static str,
    /// Where in the file.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl FormatError {
    /// An error of `format` at `offset`.
    pub fn new(format: &'static str, offset: u64, reason: impl Into<String>) -> FormatError {
        FormatError {
            format,
            offset,
            reason: reason.into(),
        }
    }
}
