//! GGUF headers (written by a helper).
