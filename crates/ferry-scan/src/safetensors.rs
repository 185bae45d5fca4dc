//! safetensors headers (written by a helper).
