//! `ferry pack --wasm`: one Wasm module or component as a Wasm OCI
//! artifact (CNCF TAG Runtime's layout).
//!
//! One raw layer (the file's bytes, titled with its name), a
//! `application/vnd.wasm.config.v0+json` config whose `os` comes from the
//! binary (`wasip1` for a core module, `wasip2` with its import and export
//! names for a component), and no `artifactType`: the layout leaves it
//! unset, the config media type says what the artifact is. The config's
//! `created` is required by the layout; without `--created` or
//! `SOURCE_DATE_EPOCH` it is the Unix epoch, so the same file always gives
//! the same digest.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use wasmparser::{
    BinaryReader, Chunk, ComponentExportSectionReader, ComponentImportSectionReader, Encoding,
    ImportSectionReader, Parser, Payload,
};

use ferry_spec::Reference;
use ferry_spec::media::{
    MEDIA_TYPE_WASM_CONFIG, MEDIA_TYPE_WASM_LAYER, MEDIA_TYPE_WASM_TO_OCI_LAYER,
};
use ferry_spec::oci::{Descriptor, MediaType};
use ferry_spec::wasm::{ARCHITECTURE, Component, OS_COMPONENT, OS_MODULE, WasmConfig};

use super::generic::{require_tag, store_manifest, titled_layer};
use super::layer::{self, PackedFile, RawMethod};
use super::walk::SourceFile;
use super::{Ingest, NoProgress, Packed, Progress};
use crate::error::{IoContext, Result, StoreError};
use crate::store::Store;

/// `created` when neither `--created` nor `SOURCE_DATE_EPOCH` gives one.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The core-module import namespaces of WASI preview 1 (and its predecessor).
const WASI_P1_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// The largest import or export section read into memory. Such sections
/// hold names and types only (kilobytes in practice); everything else is
/// skipped without being read.
const MAX_NAME_SECTION: u32 = 16 << 20;

/// What `pack --wasm` is told.
#[derive(Debug, Clone, Default)]
pub struct WasmOptions {
    /// The config's `created` (RFC 3339); default [`EPOCH`].
    pub created: Option<String>,
    /// The config's `author`.
    pub author: Option<String>,
    /// Hardlink the file into the store instead of copying it.
    pub link: bool,
    /// The layer's media type.
    pub layer_type: WasmLayerType,
}

/// Which media type the layer holding the binary carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WasmLayerType {
    /// `application/wasm`: the Wasm OCI Artifact layout's own type.
    #[default]
    Wasm,
    /// `application/vnd.wasm.content.layer.v1+wasm`: wasm-to-oci's.
    WasmToOci,
}

impl WasmLayerType {
    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            WasmLayerType::Wasm => MEDIA_TYPE_WASM_LAYER,
            WasmLayerType::WasmToOci => MEDIA_TYPE_WASM_TO_OCI_LAYER,
        }
    }
}

/// What the binary says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmInfo {
    /// `wasip1` or `wasip2`.
    pub os: &'static str,
    /// A core module importing from a WASI preview 1 namespace (always
    /// false for components).
    pub wasi_imports: bool,
    /// A component's import and export names.
    pub component: Option<Component>,
}

/// What a `pack --wasm` stored.
#[derive(Debug, Clone)]
pub struct PackedWasm {
    /// The artifact, as every pack reports it.
    pub packed: Packed,
    /// What the binary was found to be.
    pub info: WasmInfo,
}

/// Packs the Wasm binary at `path` into the store as `reference`.
pub fn pack_wasm(
    store: &Store,
    path: &Path,
    reference: &Reference,
    options: &WasmOptions,
) -> Result<PackedWasm> {
    pack_wasm_with_progress(store, path, reference, options, &NoProgress)
}

/// [`pack_wasm`] with a progress reporter.
pub fn pack_wasm_with_progress(
    store: &Store,
    path: &Path,
    reference: &Reference,
    options: &WasmOptions,
    progress: &dyn Progress,
) -> Result<PackedWasm> {
    require_tag(reference)?;
    let invalid = |reason: String| StoreError::InvalidWasm {
        path: path.to_path_buf(),
        reason,
    };
    let title = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| invalid("its file name is not UTF-8 text".into()))?
        .to_string();
    let metadata = fs::metadata(path).ctx("reading", path)?;
    if !metadata.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    // Judged before anything is written: a wrong file leaves the store as it was.
    let info = inspect_file(path, metadata.len())?;

    progress.start(metadata.len(), 1);
    store.read_index()?;
    let mut ingest = Ingest::start(store)?;
    let method = if options.link {
        RawMethod::Hardlink
    } else {
        RawMethod::CopyOrReflink
    };
    let source = SourceFile {
        rel: title.clone(),
        // The file itself, not a link to it: `metadata` is the target's.
        read_from: fs::canonicalize(path).ctx("resolving", path)?,
        link_target: None,
        metadata: metadata.clone(),
    };
    let blob = layer::write_raw(store, &source, method, progress)?;
    // The stored bytes must be the ones parsed: the file must not have
    // changed between the two reads.
    let after = fs::metadata(path).ctx("reading", path)?;
    layer::ensure_unchanged(path, &metadata, &after)?;
    if blob.size != metadata.len() {
        return Err(StoreError::ChangedWhilePacking(path.to_path_buf()));
    }

    let config = WasmConfig {
        created: options.created.clone().unwrap_or_else(|| EPOCH.to_string()),
        author: options.author.clone(),
        architecture: ARCHITECTURE.to_string(),
        os: info.os.to_string(),
        layer_digests: vec![blob.digest.to_string()],
        component: info.component.clone(),
    };
    let config_bytes =
        ferry_spec::json::canonical_json(&config).map_err(|source| StoreError::Serialize {
            what: "wasm config",
            source,
        })?;
    let config = Descriptor::new(
        MediaType::from(MEDIA_TYPE_WASM_CONFIG),
        config_bytes.len() as u64,
        store.put_document(&config_bytes)?,
    );
    let layers = vec![titled_layer(options.layer_type.media_type(), &blob, &title)];
    let (manifest_digest, descriptor) = store_manifest(
        store,
        reference,
        config,
        layers,
        None,
        options.created.as_deref(),
    )?;
    ingest.succeeded();
    Ok(PackedWasm {
        packed: Packed {
            reference: reference.whole(),
            manifest_digest,
            manifest: descriptor,
            layers: 1,
            content_bytes: blob.size,
            files: vec![PackedFile {
                path: title,
                sha256: Some(blob.digest),
            }],
        },
        info,
    })
}

/// Reads what the Wasm binary at `path` (of `len` bytes) is.
pub fn inspect_file(path: &Path, len: u64) -> Result<WasmInfo> {
    let file = File::open(path).ctx("reading", path)?;
    inspect(BufReader::new(file), len).map_err(|error| match error {
        ScanError::Io(source) => StoreError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        },
        ScanError::Invalid(reason) => StoreError::InvalidWasm {
            path: path.to_path_buf(),
            reason,
        },
    })
}

/// Why a binary could not be read.
#[derive(Debug)]
pub enum ScanError {
    /// Reading failed.
    Io(io::Error),
    /// The bytes are not a Wasm binary.
    Invalid(String),
}

impl From<io::Error> for ScanError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            ScanError::Invalid("it ends in the middle of a section".into())
        } else {
            ScanError::Io(error)
        }
    }
}

fn invalid(reason: impl Into<String>) -> ScanError {
    ScanError::Invalid(reason.into())
}

/// Reads a Wasm binary of `len` bytes from `reader`.
///
/// Streamed rather than handed whole to `wasmparser::Parser::parse_all`:
/// a module can be gigabytes of code and data, and only its import (and a
/// component's export) section matters here. So the header goes through
/// `wasmparser` (magic, version, module or component), then each section's
/// frame (id, size) is read here and the section either parsed by
/// `wasmparser`'s section reader or skipped with a seek. Every size is
/// checked against the file's length, so truncated or trailing bytes are
/// refused; the skipped sections' contents are not validated.
pub fn inspect(mut reader: impl Read + Seek, len: u64) -> std::result::Result<WasmInfo, ScanError> {
    let mut header = [0u8; 8];
    if len < header.len() as u64 {
        return Err(invalid(format!(
            "{len} bytes, shorter than the 8-byte wasm header"
        )));
    }
    reader.read_exact(&mut header)?;
    let encoding = match Parser::new(0).parse(&header, false) {
        Ok(Chunk::Parsed {
            payload: Payload::Version { encoding, .. },
            ..
        }) => encoding,
        Ok(_) => return Err(invalid("no wasm header")),
        Err(e) => return Err(invalid(e.message().to_string())),
    };
    let (last_id, what) = match encoding {
        // 13: the exception-handling proposal's tag section.
        Encoding::Module => (13u8, "module"),
        // 12: the value section, the last the component model defines.
        Encoding::Component => (12u8, "component"),
    };
    let mut component = Component::default();
    let mut wasi_imports = false;
    let mut offset = header.len() as u64;
    while offset < len {
        let start = offset;
        let mut id = [0u8; 1];
        reader.read_exact(&mut id)?;
        let id = id[0];
        let (size, size_len) = read_leb_u32(&mut reader)?;
        offset += 1 + size_len;
        if id > last_id {
            return Err(invalid(format!(
                "unknown {what} section id {id} at offset {start}"
            )));
        }
        if u64::from(size) > len - offset {
            return Err(invalid(format!(
                "section {id} at offset {start} is {size} bytes, past the end of the file"
            )));
        }
        let names = matches!(
            (encoding, id),
            (Encoding::Module, 2) | (Encoding::Component, 10 | 11)
        );
        if names {
            if size > MAX_NAME_SECTION {
                return Err(invalid(format!(
                    "section {id} at offset {start} is {size} bytes (at most {MAX_NAME_SECTION} are read)"
                )));
            }
            let mut bytes = vec![0u8; size as usize];
            reader.read_exact(&mut bytes)?;
            let section = BinaryReader::new(&bytes, offset);
            let parsed = match id {
                2 => core_imports_wasi(section).map(|wasi| wasi_imports |= wasi),
                10 => component_imports(section, &mut component.imports),
                _ => component_exports(section, &mut component.exports),
            };
            parsed.map_err(|e| invalid(e.to_string()))?;
        } else {
            reader.seek_relative(i64::from(size))?;
        }
        offset += u64::from(size);
    }
    Ok(match encoding {
        Encoding::Module => WasmInfo {
            os: OS_MODULE,
            wasi_imports,
            component: None,
        },
        Encoding::Component => WasmInfo {
            os: OS_COMPONENT,
            wasi_imports: false,
            component: Some(component),
        },
    })
}

/// True when a core import section imports from a WASI preview 1 namespace.
fn core_imports_wasi(section: BinaryReader<'_>) -> wasmparser::Result<bool> {
    let mut wasi = false;
    for import in ImportSectionReader::new(section)?.into_imports() {
        wasi |= WASI_P1_MODULES.contains(&import?.module);
    }
    Ok(wasi)
}

/// The component's imported interfaces and functions; imported types are
/// not part of its world's imports (oci-wasm lists them the same way).
fn component_imports(section: BinaryReader<'_>, names: &mut Vec<String>) -> wasmparser::Result<()> {
    for import in ComponentImportSectionReader::new(section)? {
        let import = import?;
        if !matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
            names.push(import.name.full_name().into_owned());
        }
    }
    Ok(())
}

/// The component's exported interfaces and functions, types left out.
fn component_exports(section: BinaryReader<'_>, names: &mut Vec<String>) -> wasmparser::Result<()> {
    for export in ComponentExportSectionReader::new(section)? {
        let export = export?;
        if export.kind != wasmparser::ComponentExternalKind::Type {
            names.push(export.name.full_name().into_owned());
        }
    }
    Ok(())
}

/// An unsigned LEB128 `u32` (a section size) and how many bytes it took.
fn read_leb_u32(reader: &mut impl Read) -> std::result::Result<(u32, u64), ScanError> {
    let mut value: u32 = 0;
    for i in 0..5u32 {
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte)?;
        let byte = byte[0];
        // The fifth byte holds the top 4 bits; more would overflow a u32.
        if i == 4 && byte > 0x0f {
            return Err(invalid("a section size overflows 32 bits"));
        }
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, u64::from(i) + 1));
        }
    }
    Err(invalid("a section size overflows 32 bits"))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    use wasm_encoder::{
        ComponentExportKind, ComponentExportSection, ComponentImportSection, ComponentTypeRef,
        ComponentTypeSection, CustomSection, EntityType, ImportSection, InstanceType, Module,
        TypeSection,
    };

    fn scan(bytes: &[u8]) -> std::result::Result<WasmInfo, ScanError> {
        inspect(Cursor::new(bytes), bytes.len() as u64)
    }

    fn core_module(import_from: &str) -> Vec<u8> {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        module.section(&types);
        // A big custom section before the imports: skipped, not read.
        module.section(&CustomSection {
            name: "padding".into(),
            data: vec![7u8; 100_000].into(),
        });
        let mut imports = ImportSection::new();
        imports.import(import_from, "fd_write", EntityType::Function(0));
        module.section(&imports);
        module.finish()
    }

    fn component() -> Vec<u8> {
        let mut component = wasm_encoder::Component::new();
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        component.section(&types);
        let mut imports = ComponentImportSection::new();
        imports.import("wasi:cli/environment@0.2.0", ComponentTypeRef::Instance(0));
        // Types travel by name too; they are not interfaces of the world.
        imports.import(
            "descriptor",
            ComponentTypeRef::Type(wasm_encoder::TypeBounds::SubResource),
        );
        component.section(&imports);
        let mut exports = ComponentExportSection::new();
        exports.export("wasi:cli/run@0.2.0", ComponentExportKind::Instance, 0, None);
        exports.export("env", ComponentExportKind::Type, 0, None);
        component.section(&exports);
        component.finish()
    }

    #[test]
    fn core_modules_are_wasip1_with_or_without_wasi() {
        let info = scan(&core_module("wasi_snapshot_preview1")).unwrap();
        assert_eq!(info.os, "wasip1");
        assert!(info.wasi_imports);
        assert!(info.component.is_none());
        assert!(scan(&core_module("wasi_unstable")).unwrap().wasi_imports);
        let plain = scan(&core_module("env")).unwrap();
        assert_eq!(plain.os, "wasip1");
        assert!(!plain.wasi_imports);
        assert!(!scan(b"\0asm\x01\0\0\0").unwrap().wasi_imports);
    }

    #[test]
    fn components_are_wasip2_with_their_names() {
        let info = scan(&component()).unwrap();
        assert_eq!(info.os, "wasip2");
        let component = info.component.unwrap();
        assert_eq!(component.imports, vec!["wasi:cli/environment@0.2.0"]);
        assert_eq!(component.exports, vec!["wasi:cli/run@0.2.0"]);
    }

    /// A file of `len` bytes of which only `prefix` and `tail` are real (the
    /// middle reads as zeros), counting what is read.
    struct Sparse {
        prefix: Vec<u8>,
        tail: Vec<u8>,
        len: u64,
        pos: u64,
        read: u64,
    }

    impl Read for Sparse {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let tail_start = self.len - self.tail.len() as u64;
            let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
            for (i, byte) in buf[..n].iter_mut().enumerate() {
                let p = self.pos + i as u64;
                *byte = if p < self.prefix.len() as u64 {
                    self.prefix[p as usize]
                } else if p >= tail_start {
                    self.tail[(p - tail_start) as usize]
                } else {
                    0
                };
            }
            self.pos += n as u64;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl Seek for Sparse {
        fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
            self.pos = match to {
                io::SeekFrom::Start(p) => p,
                io::SeekFrom::Current(d) => self.pos.checked_add_signed(d).unwrap(),
                io::SeekFrom::End(d) => self.len.checked_add_signed(d).unwrap(),
            };
            Ok(self.pos)
        }
    }

    #[test]
    fn sections_between_the_names_are_skipped_not_read() {
        // A 3 GiB custom section, then the import section.
        let custom: u32 = 3 << 30;
        let mut prefix = b"\0asm\x01\0\0\0\x00".to_vec();
        let mut rest = custom;
        loop {
            let byte = (rest & 0x7f) as u8;
            rest >>= 7;
            if rest == 0 {
                prefix.push(byte);
                break;
            }
            prefix.push(byte | 0x80);
        }
        prefix.extend_from_slice(b"\x01x"); // the custom section's name
        let mut imports = ImportSection::new();
        imports.import(
            "wasi_snapshot_preview1",
            "fd_write",
            EntityType::Function(0),
        );
        let mut tail = Vec::new();
        wasm_encoder::Encode::encode(&wasm_encoder::SectionId::Import, &mut tail);
        wasm_encoder::Encode::encode(&imports, &mut tail);
        // The name's two bytes are the start of the custom section's content.
        let len = prefix.len() as u64 - 2 + u64::from(custom) + tail.len() as u64;
        let mut file = Sparse {
            prefix,
            tail,
            len,
            pos: 0,
            read: 0,
        };
        let info = inspect(&mut file, len).unwrap();
        assert!(info.wasi_imports);
        assert!(file.read < 4096, "read {} bytes", file.read);
    }

    #[test]
    fn what_is_not_wasm_is_refused() {
        let reason = |bytes: &[u8]| match scan(bytes) {
            Err(ScanError::Invalid(reason)) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(b"\0asm").contains("shorter"));
        assert!(reason(b"#!/bin/sh\necho hi\n").contains("magic"));
        assert!(reason(b"\0asm\x02\0\0\0").contains("version"));
        // Cut in the middle of the custom section.
        let module = core_module("wasi_snapshot_preview1");
        assert!(reason(&module[..module.len() / 2]).contains("past the end"));
        // A section size that never ends.
        assert!(reason(b"\0asm\x01\0\0\0\x00\xff\xff\xff\xff\xff").contains("overflows"));
        // An id no module section has.
        assert!(reason(b"\0asm\x01\0\0\0\x7f\x00").contains("unknown module section"));
        // An import section whose content is garbage.
        assert!(!reason(b"\0asm\x01\0\0\0\x02\x03\x05\xff\xff").is_empty());
    }
}
