//! ferry-store: the local content-addressed store and what moves data in and out of it.
//!
//! The store is an OCI image layout at `<root>/artifacts` (the shape CRI-O and
//! Podman read), plus `<root>/tmp` for blobs being written and `<root>/locks`.
//! Blobs enter only through [`BlobWriter`]: written to a temporary file,
//! hashed on the way, verified, fsynced and renamed into place.
//!
//! ```no_run
//! use ferry_store::{Store, pack::{pack, PackOptions}};
//! let store = Store::open("/tmp/ferry-store")?;
//! let reference = "localhost/demo:v1".parse().unwrap();
//! let packed = pack(&store, "model-dir".as_ref(), &reference, &PackOptions::default())?;
//! println!("{}", packed.manifest_digest);
//! # Ok::<(), ferry_store::StoreError>(())
//! ```

pub mod blob;
pub mod compress;
pub mod convert;
pub mod decompress;
pub mod detect;
pub mod error;
pub mod extract;
pub mod files;
pub mod index;
pub mod layout;
pub mod lock;
pub mod maintenance;
pub mod pack;
pub mod select;
pub mod sized;
pub mod store;

pub use blob::BlobWriter;
pub use error::{Result, StoreError};
pub use store::Store;
