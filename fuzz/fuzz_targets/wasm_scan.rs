//! What `ferry pack --wasm` reads of a binary
//! (`ferry_store::pack::wasm::inspect`) on arbitrary bytes.
//!
//! Invariants: never panics; reading from memory never fails with an I/O
//! error; what it accepts starts with the wasm magic; a component is
//! `wasip2` with its names and no core WASI flag, a core module `wasip1`
//! without component names.

#![no_main]

use std::io::Cursor;

use ferry_store::pack::wasm::{ScanError, inspect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match inspect(Cursor::new(data), data.len() as u64) {
        Ok(info) => {
            assert!(data.starts_with(b"\0asm"), "accepted without the magic");
            match &info.component {
                Some(_) => {
                    assert_eq!(info.os, "wasip2");
                    assert!(!info.wasi_imports);
                }
                None => assert_eq!(info.os, "wasip1"),
            }
        }
        Err(ScanError::Invalid(reason)) => assert!(!reason.is_empty()),
        Err(ScanError::Io(error)) => panic!("reading memory failed: {error}"),
    }
});
