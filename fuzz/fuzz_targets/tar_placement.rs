//! Layer placement (`ferry_store::extract`): a layer, from raw bytes or from
//! a tar archive built out of hostile entries (`..`, absolute paths, links
//! out of the root, device nodes, long GNU and PAX names), raw or gzip/zstd
//! compressed, is placed by `place_layer_verified` into a fresh
//! `Staging` directory, which is then committed (into an absent or a
//! non-empty target) or dropped.
//!
//! Input: a first byte with its low bit set selects a structured input
//! (the rest, read with `arbitrary`); clear, the rest is the layer's bytes
//! and the byte's other bits choose the encoding, the diffId check, the
//! commit, a non-empty target and whether header checksums are repaired
//! after mutation (so real tar files, prefixed with one byte, are seeds).
//!
//! Invariants: never panics; nothing outside the staging directory (and,
//! after a commit, the target) is created, changed or linked to; the placed
//! tree holds only directories, regular files without setuid/setgid bits
//! and symlinks that resolve inside it; a layer whose content does not
//! match the diffId it is checked against is refused; a refused layer
//! leaves no staging directory behind and the target as it was; the file
//! list model signatures are compared with (`ferry_store::files`) names
//! only files placed with exactly that content.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::Path;

use arbitrary::Arbitrary;
use ferry_fuzz::{FileId, check_contained, file_id, listing};
use ferry_spec::annotations as ann;
use ferry_spec::digest::sha256_digest;
use ferry_spec::oci::{DescriptorBuilder, MediaType};
use ferry_store::decompress::Limits;
use ferry_store::extract::{ExtractOptions, Staging, place_layer_verified};
use ferry_store::files::{ArtifactEntry, ArtifactFiles, add_layer_from_reader};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    layer: Layer,
    encoding: Enc,
    diff_id: DiffId,
    commit: bool,
    existing_target: bool,
}

#[derive(Arbitrary, Debug)]
enum Layer {
    /// Bytes as they come: a tar stream (or not).
    Raw(Vec<u8>),
    /// A tar archive written entry by entry, without the checks
    /// `tar::Builder` would apply to names.
    Entries(Vec<Entry>),
}

#[derive(Arbitrary, Debug)]
enum Enc {
    Tar,
    Gzip,
    Zstd,
    /// The layer's bytes declared as gzip/zstd without compressing them.
    GzipAsIs,
    ZstdAsIs,
    /// A raw ModelPack layer: the bytes are one file at this path.
    File(Name, u16),
}

#[derive(Arbitrary, Debug)]
enum DiffId {
    None,
    Right,
    Wrong,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    path: Name,
    kind: Kind,
    mode: u16,
    data: Vec<u8>,
    link: Name,
    style: Style,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    File,
    Continuous,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
    Char,
    Block,
    Sparse,
    Other(u8),
}

/// How names are written: in the header, or in GNU long-name or PAX
/// records before it.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Style {
    Gnu,
    Ustar,
    GnuLong,
    Pax,
}

#[derive(Arbitrary, Debug)]
enum Name {
    /// A plain relative path (first, so that most names are usable and
    /// the entries after them are reached).
    Plain(u8),
    Parts(Vec<Part>),
    Text(String),
}

const PLAIN: [&str; 8] = ["a", "b", "a/b", "a/b/c", "b/c", "c", "a/c", "d/e"];

#[derive(Arbitrary, Debug)]
enum Part {
    A,
    B,
    C,
    Dot,
    DotDot,
    Empty,
    /// The absolute path of a directory beside the staging directory.
    Outside,
    /// The absolute path of a file in it.
    Secret,
    Text(String),
}

/// Absolute paths the generated names may aim at.
struct Places {
    outside: String,
    secret: String,
}

impl Name {
    fn render(&self, places: &Places) -> Vec<u8> {
        match self {
            Name::Plain(i) => PLAIN[usize::from(*i) % PLAIN.len()].as_bytes().to_vec(),
            Name::Text(text) => text.as_bytes().to_vec(),
            Name::Parts(parts) => parts
                .iter()
                .map(|part| match part {
                    Part::A => "a",
                    Part::B => "b",
                    Part::C => "c",
                    Part::Dot => ".",
                    Part::DotDot => "..",
                    Part::Empty => "",
                    Part::Outside => places.outside.as_str(),
                    Part::Secret => places.secret.as_str(),
                    Part::Text(text) => text.as_str(),
                })
                .collect::<Vec<_>>()
                .join("/")
                .into_bytes(),
        }
    }
}

impl Kind {
    fn entry_type(self) -> tar::EntryType {
        match self {
            Kind::File => tar::EntryType::Regular,
            Kind::Continuous => tar::EntryType::Continuous,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
            Kind::Sparse => tar::EntryType::GNUSparse,
            Kind::Other(byte) => tar::EntryType::new(byte),
        }
    }
}

/// A header whose name fields are written byte for byte.
fn header(
    style: Style,
    kind: tar::EntryType,
    name: &[u8],
    link: &[u8],
    mode: u32,
    size: u64,
) -> tar::Header {
    let mut header = match style {
        Style::Ustar => tar::Header::new_ustar(),
        _ => tar::Header::new_gnu(),
    };
    let old = header.as_old_mut();
    let n = name.len().min(old.name.len());
    old.name[..n].copy_from_slice(&name[..n]);
    let n = link.len().min(old.linkname.len());
    old.linkname[..n].copy_from_slice(&link[..n]);
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    header
}

/// Rewrites the checksum of every header block of a tar stream, so that a
/// mutated header is read rather than refused at once.
fn fix_checksums(bytes: &mut [u8]) {
    let mut offset = 0;
    while offset + 512 <= bytes.len() {
        let block = &mut bytes[offset..offset + 512];
        offset += 512;
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        // Skip the entry's data (an octal size; anything else counts as 0).
        let size = std::str::from_utf8(&block[124..136])
            .ok()
            .and_then(|s| {
                u64::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok()
            })
            .unwrap_or(0);
        let blocks = usize::try_from(size.div_ceil(512)).unwrap_or(usize::MAX);
        offset = offset.saturating_add(blocks.saturating_mul(512));
    }
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "<len> <key>=<value>\n", where <len> counts itself.
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len += 1;
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

fn build_tar(entries: &[Entry], places: &Places) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries.iter().take(32) {
        let path = entry.path.render(places);
        let link = entry.link.render(places);
        let kind = entry.kind.entry_type();
        let data: &[u8] = match entry.kind {
            Kind::File | Kind::Continuous | Kind::Other(_) => &entry.data,
            _ => &[],
        };
        let mode = u32::from(entry.mode);
        match entry.style {
            Style::Gnu | Style::Ustar => {}
            Style::GnuLong => {
                for (long, bytes) in [
                    (tar::EntryType::GNULongName, &path),
                    (tar::EntryType::GNULongLink, &link),
                ] {
                    let mut value = bytes.clone();
                    value.push(0);
                    let h = header(
                        Style::Gnu,
                        long,
                        b"././@LongLink",
                        b"",
                        0o644,
                        value.len() as u64,
                    );
                    builder
                        .append(&h, value.as_slice())
                        .expect("writing to a Vec");
                }
            }
            Style::Pax => {
                let mut records = pax_record("path", &path);
                records.extend(pax_record("linkpath", &link));
                let h = header(
                    Style::Ustar,
                    tar::EntryType::XHeader,
                    b"pax",
                    b"",
                    0o644,
                    records.len() as u64,
                );
                builder
                    .append(&h, records.as_slice())
                    .expect("writing to a Vec");
            }
        }
        let h = header(entry.style, kind, &path, &link, mode, data.len() as u64);
        builder.append(&h, data).expect("writing to a Vec");
    }
    builder.into_inner().expect("finishing a tar in a Vec")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip into a Vec");
    encoder.finish().expect("gzip into a Vec")
}

/// Everything under `dir`: relative path → file content (or a marker).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).expect("reading a snapshot dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(dir)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                stack.push(path);
            } else if meta.is_file() {
                out.insert(rel, fs::read(&path).expect("reading"));
            } else {
                out.insert(rel, format!("<{:?}>", meta.file_type()).into_bytes());
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let input = if selector & 1 == 1 {
        match Input::arbitrary_take_rest(arbitrary::Unstructured::new(rest)) {
            Ok(input) => input,
            Err(_) => return,
        }
    } else {
        let mut bytes = rest.to_vec();
        if selector & 0x80 != 0 {
            fix_checksums(&mut bytes);
        }
        Input {
            layer: Layer::Raw(bytes),
            encoding: match (selector >> 1) & 3 {
                0 => Enc::Tar,
                1 => Enc::Gzip,
                2 => Enc::Zstd,
                _ => Enc::GzipAsIs,
            },
            diff_id: match (selector >> 3) & 3 {
                0 => DiffId::None,
                1 | 3 => DiffId::Right,
                _ => DiffId::Wrong,
            },
            commit: selector & 0x20 != 0,
            existing_target: selector & 0x40 != 0,
        }
    };
    run(input);
});

fn run(input: Input) {
    let temp = ferry_fuzz::scratch_dir();
    let base = temp.path();
    // A directory beside the staging directory that must never change.
    let outside = base.join("outside");
    fs::create_dir(&outside).expect("outside dir");
    fs::write(outside.join("secret"), b"secret").expect("secret file");
    fs::create_dir(outside.join("dir")).expect("outside subdir");
    let outside_before = snapshot(&outside);
    let foreign: Vec<FileId> = vec![file_id(&outside.join("secret"))];
    let places = Places {
        outside: outside.to_string_lossy().into_owned(),
        secret: outside.join("secret").to_string_lossy().into_owned(),
    };

    let target = base.join("target");
    if input.existing_target {
        fs::create_dir_all(target.join("a")).expect("target");
        fs::write(target.join("keep"), b"keep").expect("target file");
        fs::write(target.join("b"), b"old b").expect("target file");
    }
    let target_before = input.existing_target.then(|| snapshot(&target));

    let tar = match &input.layer {
        Layer::Raw(bytes) => bytes.clone(),
        Layer::Entries(entries) => build_tar(entries, &places),
    };
    let (blob, media_type, uncompressed, file) = match &input.encoding {
        Enc::Tar => (
            tar.clone(),
            "application/vnd.cncf.model.weight.v1.tar",
            Some(&tar),
            None,
        ),
        Enc::Gzip => (
            gzip(&tar),
            "application/vnd.cncf.model.weight.v1.tar+gzip",
            Some(&tar),
            None,
        ),
        Enc::Zstd => (
            zstd::encode_all(tar.as_slice(), 1).expect("zstd into a Vec"),
            "application/vnd.cncf.model.weight.v1.tar+zstd",
            Some(&tar),
            None,
        ),
        Enc::GzipAsIs => (
            tar.clone(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            None,
            None,
        ),
        Enc::ZstdAsIs => (
            tar.clone(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
            None,
            None,
        ),
        Enc::File(name, mode) => (
            tar.clone(),
            "application/vnd.cncf.model.weight.v1.raw",
            Some(&tar),
            Some((
                String::from_utf8_lossy(&name.render(&places)).into_owned(),
                *mode,
            )),
        ),
    };
    let mut annotations = std::collections::HashMap::new();
    if let Some((path, mode)) = &file {
        annotations.insert(ann::FILEPATH.to_string(), path.clone());
        let metadata = serde_json::json!({
            "name": "f", "mode": mode, "uid": 0, "gid": 0, "size": blob.len(),
            "mtime": "1970-01-01T00:00:00Z", "typeflag": b'0',
        });
        annotations.insert(ann::FILE_METADATA.to_string(), metadata.to_string());
    }
    let layer = DescriptorBuilder::default()
        .media_type(MediaType::Other(media_type.to_string()))
        .digest(sha256_digest(&blob))
        .size(blob.len() as u64)
        .annotations(annotations)
        .build()
        .expect("descriptor");
    let diff_id = match input.diff_id {
        DiffId::None => None,
        DiffId::Right => uncompressed.map(|bytes| sha256_digest(bytes)),
        DiffId::Wrong => Some(sha256_digest(b"not this layer")),
    };
    let limits = Limits {
        max_ratio: 100,
        max_unpacked: 4 << 20,
        ..Limits::default()
    };

    let options = ExtractOptions {
        force: input.existing_target,
    };
    let staging = Staging::begin(&target, &options).expect("staging dir");
    let staging_name = staging
        .root()
        .file_name()
        .expect("staging name")
        .to_string_lossy()
        .into_owned();
    let result = place_layer_verified(
        &layer,
        blob.as_slice(),
        staging.root(),
        diff_id.as_ref(),
        &limits,
    );

    if std::env::var_os("FERRY_FUZZ_VERBOSE").is_some() {
        match &result {
            Ok(placed) => eprintln!("{media_type}: placed {} entries", placed.entries),
            Err(e) => eprintln!("{media_type}: {e}"),
        }
    }

    // Whatever happened, only the staging directory may have changed.
    let mut expected: BTreeSet<String> = ["outside".to_string(), staging_name].into();
    if input.existing_target {
        expected.insert("target".into());
    }
    assert_eq!(
        listing(base),
        expected,
        "something was created beside the staging directory"
    );
    assert_eq!(
        snapshot(&outside),
        outside_before,
        "a file outside the staging directory changed"
    );
    check_contained(staging.root(), &foreign);
    if let Some(before) = &target_before {
        assert_eq!(
            &snapshot(&target),
            before,
            "the target changed before the commit"
        );
    }

    if result.is_ok() {
        assert!(
            !matches!(input.diff_id, DiffId::Wrong),
            "a layer was accepted against a diffId it does not match"
        );
        // What model signatures are compared with agrees with what was
        // placed: every regular file listed is there with that content.
        let mut files = ArtifactFiles::new();
        if add_layer_from_reader(&layer, blob.as_slice(), &limits, &mut files).is_ok() {
            for (path, entry) in &files {
                if let ArtifactEntry::File(digest) = entry {
                    let placed = fs::read(staging.root().join(path)).expect("a listed file");
                    assert_eq!(&sha256_digest(&placed), digest, "{path} differs");
                }
            }
        }
    }
    let committed = result.is_ok() && input.commit;
    if committed {
        staging.commit().expect("committing placed layers");
        check_contained(&target, &foreign);
    } else {
        drop(staging);
    }
    // Dropped without a commit, the staging directory is gone.

    let mut expected: BTreeSet<String> = ["outside".to_string()].into();
    if input.existing_target || committed {
        expected.insert("target".into());
    }
    assert_eq!(
        listing(base),
        expected,
        "the staging directory was left behind"
    );
    assert_eq!(
        snapshot(&outside),
        outside_before,
        "a file outside the target changed"
    );
    if let Some(before) = &target_before
        && !committed
    {
        assert_eq!(
            &snapshot(&target),
            before,
            "an uncommitted layer changed the target"
        );
    }
}
