//! Hand-made hostile layers: extraction refuses them and leaves nothing.
//!
//! Headers are written byte by byte because the tar crate's builder refuses
//! `..` and absolute names. Every hostile archive starts with a harmless
//! file, so "nothing left behind" also covers what came before the attack.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use ferry_spec::annotations as ann;
use ferry_spec::oci::{Descriptor, MediaType};
use ferry_store::StoreError;
use ferry_store::decompress::{Limits, RATIO_FLOOR};
use ferry_store::extract::{self, ExtractOptions};
use tar::{EntryType, Header};

use crate::common::{self, LayerSpec, Node, TestDir};

const TAR: &str = "application/vnd.cncf.model.weight.v1.tar";
const RAW: &str = "application/vnd.cncf.model.weight.v1.raw";

/// One tar entry, described by what its header says.
enum E<'a> {
    File(&'a [u8], &'a [u8]),
    Dir(&'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
    Char(&'a [u8]),
    Block(&'a [u8]),
    Fifo(&'a [u8]),
    /// A PAX `path` record overriding a harmless header name.
    PaxPath(&'a [u8], &'a [u8]),
    /// A GNU long-name record overriding a harmless header name.
    GnuLongName(&'a [u8]),
}

fn header(name: &[u8], kind: EntryType, size: u64, link: &[u8]) -> Header {
    let mut h = Header::new_gnu();
    {
        let old = h.as_old_mut();
        assert!(name.len() <= old.name.len() && link.len() <= old.linkname.len());
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    h
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = 1 + key.len() + 1 + value.len() + 1; // " key=value\n"
    let mut len = body_len + 1;
    while len != body_len + len.to_string().len() {
        len = body_len + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    assert_eq!(out.len(), len);
    out
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for entry in entries {
        match entry {
            E::File(name, data) => {
                let h = header(name, EntryType::Regular, data.len() as u64, b"");
                b.append(&h, *data).unwrap();
            }
            E::Dir(name) => b
                .append(&header(name, EntryType::Directory, 0, b""), &[][..])
                .unwrap(),
            E::Symlink(name, target) => b
                .append(&header(name, EntryType::Symlink, 0, target), &[][..])
                .unwrap(),
            E::Hardlink(name, target) => b
                .append(&header(name, EntryType::Link, 0, target), &[][..])
                .unwrap(),
            E::Char(name) | E::Block(name) => {
                let kind = if matches!(entry, E::Char(_)) {
                    EntryType::Char
                } else {
                    EntryType::Block
                };
                let mut h = header(name, kind, 0, b"");
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Fifo(name) => b
                .append(&header(name, EntryType::Fifo, 0, b""), &[][..])
                .unwrap(),
            E::PaxPath(path, data) => {
                let record = pax_record("path", path);
                let h = header(
                    b"PaxHeaders/harmless",
                    EntryType::XHeader,
                    record.len() as u64,
                    b"",
                );
                b.append(&h, &record[..]).unwrap();
                let h = header(b"harmless.txt", EntryType::Regular, data.len() as u64, b"");
                b.append(&h, *data).unwrap();
            }
            E::GnuLongName(path) => {
                let mut long = path.to_vec();
                long.push(0);
                let h = header(
                    b"././@LongLink",
                    EntryType::GNULongName,
                    long.len() as u64,
                    b"",
                );
                b.append(&h, &long[..]).unwrap();
                let h = header(b"harmless-long.txt", EntryType::Regular, 3, b"");
                b.append(&h, &b"bad"[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn tar_layer(entries: &[E]) -> LayerSpec<'static> {
    (
        tar_of(entries),
        TAR,
        vec![(ann::FILEPATH, "."), (ann::TITLE, ".")],
    )
}

/// Every path under `dir`, directories included.
fn tree(dir: &Path) -> BTreeSet<String> {
    common::tree(dir).into_keys().collect()
}

/// An error that refuses the layer's content (not an I/O failure).
fn is_refusal(err: &StoreError) -> bool {
    matches!(
        err.innermost(),
        StoreError::UnsafeEntry { .. } | StoreError::InvalidTar { .. }
    )
}

/// Extraction of `layers` must fail, twice: into a fresh target (which must
/// not appear) and with `force` into an existing one (which must not change).
fn assert_refused(case: &str, layers: Vec<LayerSpec>, needle: &str) {
    let t = TestDir::new();
    let store = t.store("store");
    common::put_artifact(&store, "hostile", &layers);
    let victim = t.join("victim");
    fs::create_dir_all(&victim).unwrap();
    let parent = t.join("a/b/out");
    let target = parent.join("model");

    let err = extract::extract(&store, "hostile", &target, &ExtractOptions::default())
        .expect_err(&format!("{case}: hostile layer was extracted"));
    assert!(is_refusal(&err), "{case}: {err:?}");
    assert!(err.to_string().contains(needle), "{case}: {err}");
    assert!(!target.exists(), "{case}: target was created");
    assert_eq!(
        tree(&t.join("a")),
        BTreeSet::from(["b".to_string(), "b/out".to_string()]),
        "{case}: something was written around the target"
    );
    assert!(
        tree(&victim).is_empty(),
        "{case}: wrote into the victim directory"
    );

    // With --force into an existing, non-empty directory.
    common::write_file(&target, "keep.txt", b"keep", 0o644);
    common::write_file(&target, "ok.txt", b"old", 0o644);
    let before = common::tree(&target);
    let err = extract::extract(&store, "hostile", &target, &ExtractOptions { force: true })
        .expect_err(&format!("{case}: hostile layer was extracted with force"));
    assert!(is_refusal(&err), "{case} (force): {err:?}");
    assert_eq!(common::tree(&target), before, "{case}: target changed");
    assert!(
        common::entries_with_prefix(&parent, ".ferry-extract-").is_empty(),
        "{case}: staging directory left behind"
    );
    assert_eq!(
        tree(&parent),
        BTreeSet::from([
            "model".to_string(),
            "model/keep.txt".into(),
            "model/ok.txt".into()
        ]),
        "{case}: something was written next to the target"
    );
    assert!(
        tree(&victim).is_empty(),
        "{case}: wrote into the victim directory (force)"
    );
}

const OK: E<'static> = E::File(b"ok.txt", b"harmless");

#[test]
fn parent_directory_names_are_refused() {
    assert_refused(
        "dotdot",
        vec![tar_layer(&[OK, E::File(b"../escape", b"x")])],
        "..",
    );
    assert_refused(
        "nested dotdot",
        vec![tar_layer(&[OK, E::File(b"sub/../../escape", b"x")])],
        "..",
    );
    assert_refused(
        "dotdot directory",
        vec![tar_layer(&[OK, E::Dir(b"../escaped-dir/")])],
        "..",
    );
}

#[test]
fn absolute_names_are_refused() {
    let t = TestDir::new();
    let victim = t.join("abs-escape");
    let name = victim.to_str().unwrap().as_bytes().to_vec();
    assert_refused(
        "absolute",
        vec![tar_layer(&[OK, E::File(&name, b"x")])],
        "absolute",
    );
    assert!(!victim.exists(), "wrote to an absolute path");
    assert_refused(
        "absolute /abs",
        vec![tar_layer(&[OK, E::File(b"/abs/path", b"x")])],
        "absolute",
    );
}

#[test]
fn escaping_symlinks_are_refused() {
    assert_refused(
        "evil",
        vec![tar_layer(&[OK, E::Symlink(b"evil", b"../../etc")])],
        "escapes",
    );
    assert_refused(
        "nested evil",
        vec![tar_layer(&[OK, E::Symlink(b"sub/evil", b"../..")])],
        "escapes",
    );
    assert_refused(
        "name then dotdot",
        vec![tar_layer(&[
            OK,
            E::Symlink(b"a", b"."),
            E::Symlink(b"b", b"a/.."),
        ])],
        "escapes",
    );
    assert_refused(
        "absolute /etc",
        vec![tar_layer(&[OK, E::Symlink(b"link", b"/etc")])],
        "absolute",
    );
}

#[test]
fn writing_through_a_symlink_is_refused() {
    // An absolute link to a directory we own stands in for /etc, so a
    // regression cannot overwrite the real /etc/passwd.
    let t = TestDir::new();
    let outside = t.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let target = outside.to_str().unwrap().as_bytes().to_vec();
    assert_refused(
        "absolute link then write",
        vec![tar_layer(&[
            OK,
            E::Symlink(b"link", &target),
            E::File(b"link/passwd", b"root::0:0"),
        ])],
        "absolute",
    );
    assert!(tree(&outside).is_empty(), "wrote through the link");
    assert_refused(
        "in-root link then write",
        vec![tar_layer(&[
            OK,
            E::Dir(b"sub/"),
            E::Symlink(b"link", b"sub"),
            E::File(b"link/passwd", b"x"),
        ])],
        "not a directory",
    );
    assert_refused(
        "raw layer through a link from an earlier layer",
        vec![
            tar_layer(&[OK, E::Dir(b"sub/"), E::Symlink(b"link", b"sub")]),
            (b"raw".to_vec(), RAW, vec![(ann::FILEPATH, "link/passwd")]),
        ],
        "not a directory",
    );
}

#[test]
fn escaping_hardlinks_are_refused() {
    assert_refused(
        "hardlink dotdot",
        vec![tar_layer(&[OK, E::Hardlink(b"h", b"../outside")])],
        "escapes",
    );
    assert_refused(
        "hardlink absolute",
        vec![tar_layer(&[OK, E::Hardlink(b"h", b"/etc/passwd")])],
        "escapes",
    );
    assert_refused(
        "hardlink to nothing",
        vec![tar_layer(&[OK, E::Hardlink(b"h", b"missing.txt")])],
        "does not exist",
    );
}

#[test]
fn device_nodes_and_fifos_are_refused() {
    assert_refused(
        "char device",
        vec![tar_layer(&[OK, E::Char(b"null")])],
        "unsupported type",
    );
    assert_refused(
        "block device",
        vec![tar_layer(&[OK, E::Block(b"sda")])],
        "unsupported type",
    );
    assert_refused(
        "fifo",
        vec![tar_layer(&[OK, E::Fifo(b"pipe")])],
        "unsupported type",
    );
}

#[test]
fn extension_headers_cannot_smuggle_names() {
    assert_refused(
        "pax path",
        vec![tar_layer(&[OK, E::PaxPath(b"../pax-escape", b"x")])],
        "..",
    );
    let mut long = b"../".to_vec();
    long.extend(std::iter::repeat_n(b'x', 150));
    assert_refused(
        "gnu long name",
        vec![tar_layer(&[OK, E::GnuLongName(&long)])],
        "..",
    );
}

#[test]
fn hostile_raw_layer_paths_are_refused() {
    for path in ["../escape-raw", "/abs/raw", "a/../../x", ""] {
        let layer = (b"raw".to_vec(), RAW, vec![(ann::FILEPATH, path)]);
        assert_refused(
            &format!("raw {path:?}"),
            vec![tar_layer(&[OK]), layer],
            "path",
        );
    }
}

#[test]
fn the_harness_extracts_a_well_formed_archive() {
    // Control: the same builder and checks accept legitimate content, so the
    // refusals above come from the entries, not the harness.
    let t = TestDir::new();
    let store = t.store("store");
    common::put_artifact(
        &store,
        "benign",
        &[
            tar_layer(&[
                E::Dir(b"./"),
                E::Dir(b"sub/"),
                E::File(b"sub/a.txt", b"alpha"),
                E::File(b"./dot.txt", b"dot"),
                E::Symlink(b"sub/link", b"a.txt"),
                E::Symlink(b"up", b"sub/a.txt"),
                E::Symlink(b"sub/back", b"../dot.txt"),
                E::Hardlink(b"hard", b"sub/a.txt"),
                E::PaxPath(b"pax/long-name.txt", b"pax"),
            ]),
            (
                b"raw bytes".to_vec(),
                RAW,
                vec![(ann::FILEPATH, "nested/raw.bin")],
            ),
        ],
    );
    let out = t.join("out");
    let extracted = extract::extract(&store, "benign", &out, &ExtractOptions::default())
        .expect("a well-formed artifact extracts");
    assert_eq!(fs::read(out.join("sub/a.txt")).unwrap(), b"alpha");
    assert_eq!(fs::read(out.join("dot.txt")).unwrap(), b"dot");
    assert_eq!(fs::read(out.join("hard")).unwrap(), b"alpha");
    assert_eq!(fs::read(out.join("up")).unwrap(), b"alpha");
    assert_eq!(fs::read(out.join("sub/back")).unwrap(), b"dot");
    assert_eq!(fs::read(out.join("pax/long-name.txt")).unwrap(), b"pax");
    assert_eq!(fs::read(out.join("nested/raw.bin")).unwrap(), b"raw bytes");
    let snap = common::tree(&out);
    assert_eq!(
        snap["sub/link"],
        Node::Link {
            target: "a.txt".into()
        }
    );
    assert!(
        !snap.contains_key("harmless.txt"),
        "the pax path was ignored"
    );
    assert!(extracted.entries >= 9);
}

#[test]
fn later_layers_replace_links_instead_of_writing_through_them() {
    let t = TestDir::new();
    let store = t.store("store");
    common::put_artifact(
        &store,
        "replace",
        &[
            tar_layer(&[
                E::File(b"sub/a.txt", b"alpha"),
                E::Symlink(b"soft", b"sub/a.txt"),
                E::Hardlink(b"hard", b"sub/a.txt"),
            ]),
            (b"new soft".to_vec(), RAW, vec![(ann::FILEPATH, "soft")]),
            (b"new hard".to_vec(), RAW, vec![(ann::FILEPATH, "hard")]),
        ],
    );
    let out = t.join("out");
    extract::extract(&store, "replace", &out, &ExtractOptions::default()).expect("extracts");
    assert_eq!(
        fs::read(out.join("sub/a.txt")).unwrap(),
        b"alpha",
        "link target modified"
    );
    assert_eq!(fs::read(out.join("soft")).unwrap(), b"new soft");
    assert!(!out.join("soft").is_symlink());
    assert_eq!(fs::read(out.join("hard")).unwrap(), b"new hard");
}

const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A zstd tar holding one file of `size` zeros: about 32 bytes per 128 KiB.
fn zstd_zero_bomb(size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    let encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let mut builder = tar::Builder::new(encoder);
    builder
        .append_data(&mut header, "zeros.bin", io::repeat(0).take(size))
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// Bytes of every regular file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Extraction through the store must fail with `matches`, leaving neither
/// the target nor a staging directory.
fn assert_extract_refused(
    store: &ferry_store::Store,
    name: &str,
    parent: &Path,
    matches: impl Fn(&StoreError) -> bool,
) {
    fs::create_dir_all(parent).unwrap();
    let target = parent.join("model");
    let err = extract::extract(store, name, &target, &ExtractOptions::default())
        .expect_err(&format!("{name}: extracted"));
    assert!(matches(err.innermost()), "{name}: {err:?}");
    assert!(!target.exists(), "{name}: target created");
    assert!(
        common::entries_with_prefix(parent, ".ferry-extract-").is_empty(),
        "{name}: staging left behind"
    );
}

#[test]
fn a_bomb_declaring_a_large_size_is_held_to_the_bytes_it_really_has() {
    // 1 GiB of zeros in about 32 KiB, declared as 20 MiB: judged by the
    // claim, 100:1 would allow 2000 MiB and the whole GiB would be written.
    let bomb = zstd_zero_bomb(1 << 30);
    assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
    let declared = 20u64 << 20;
    let layer = Descriptor::new(
        MediaType::Other(TAR_ZSTD.into()),
        declared,
        ferry_spec::digest::sha256_digest(&bomb),
    );
    let t = TestDir::new();
    let root = t.join("root");
    fs::create_dir_all(&root).unwrap();
    let err = extract::place_layer_verified(&layer, &bomb[..], &root, None, &Limits::default())
        .expect_err("a bomb is refused");
    assert!(
        matches!(err.innermost(), StoreError::DecompressionBomb { compressed, .. } if *compressed <= bomb.len() as u64),
        "{err:?}"
    );
    let written = bytes_under(&root);
    assert!(
        written <= RATIO_FLOOR,
        "{written} bytes written from {} compressed bytes",
        bomb.len()
    );

    // Through `ferry extract`: refused, nothing left behind.
    let store = t.store("store");
    common::put_artifact_declaring(
        &store,
        "bomb",
        &[(bomb, TAR_ZSTD, vec![])],
        &[Some(declared)],
    );
    assert_extract_refused(&store, "bomb", &t.join("out"), |e| {
        matches!(e, StoreError::DecompressionBomb { .. })
    });
}

#[test]
fn a_layer_longer_than_declared_stops_at_the_declared_size() {
    let t = TestDir::new();
    let content = vec![b'x'; 1 << 20];
    let raw = Descriptor::new(
        MediaType::Other(RAW.into()),
        1000,
        ferry_spec::digest::sha256_digest(&content),
    );
    let mut raw = raw;
    raw.set_annotations(Some(
        [(ann::FILEPATH.to_string(), "weights.bin".to_string())].into(),
    ));
    let root = t.join("root");
    fs::create_dir_all(&root).unwrap();
    let err = extract::place_layer_verified(&raw, &content[..], &root, None, &Limits::default())
        .expect_err("longer than declared");
    assert!(
        matches!(
            err.innermost(),
            StoreError::LongerThanDeclared { expected: 1000, .. }
        ),
        "{err:?}"
    );
    assert!(bytes_under(&root) <= 1000, "wrote past the declared size");

    // Raw, plain tar and zstd tar layers, through `ferry extract`.
    let store = t.store("store");
    let tar = tar_of(&[OK, E::File(b"big.bin", &content)]);
    let zstd = zstd::bulk::compress(&tar, 1).unwrap();
    let cases: [(&str, LayerSpec, u64); 3] = [
        (
            "long:raw",
            (content.clone(), RAW, vec![(ann::FILEPATH, "w.bin")]),
            1000,
        ),
        ("long:tar", (tar.clone(), TAR, vec![]), 2048),
        (
            "long:zstd",
            (zstd.clone(), TAR_ZSTD, vec![]),
            zstd.len() as u64 / 2,
        ),
    ];
    for (name, layer, declared) in cases {
        common::put_artifact_declaring(&store, name, &[layer], &[Some(declared)]);
        assert_extract_refused(
            &store,
            name,
            &t.join(name.replace(':', "-")),
            |e| matches!(e, StoreError::LongerThanDeclared { expected, .. } if *expected == declared),
        );
    }
    // And one that ends before its declared size.
    common::put_artifact_declaring(
        &store,
        "short:raw",
        &[(b"abc".to_vec(), RAW, vec![(ann::FILEPATH, "w.bin")])],
        &[Some(10)],
    );
    assert_extract_refused(&store, "short:raw", &t.join("short"), |e| {
        matches!(
            e,
            StoreError::SizeMismatch {
                actual: 3,
                expected: 10,
                ..
            }
        )
    });
}

#[test]
fn every_spelling_of_a_path_is_the_same_path() {
    let t = TestDir::new();
    let store = t.store("store");
    common::put_artifact(
        &store,
        "spellings",
        &[
            // In one tar: a file, then a symlink by another spelling.
            tar_layer(&[
                E::File(b"a", b"file"),
                E::File(b"b", b"target"),
                E::Symlink(b"./a", b"b"),
                E::File(b"d/./e", b"one"),
            ]),
            // Raw layers naming files the tar placed, spelled differently.
            (b"two".to_vec(), RAW, vec![(ann::FILEPATH, "d//e")]),
            (b"three".to_vec(), RAW, vec![(ann::FILEPATH, ".//c")]),
            (b"four".to_vec(), RAW, vec![(ann::FILEPATH, "./c")]),
        ],
    );
    let out = t.join("out");
    extract::extract(&store, "spellings", &out, &ExtractOptions::default()).expect("extracts");
    let snap = common::tree(&out);
    assert_eq!(
        snap["a"],
        Node::Link { target: "b".into() },
        "the later entry replaced the earlier one"
    );
    assert_eq!(fs::read(out.join("d/e")).unwrap(), b"two");
    assert_eq!(fs::read(out.join("c")).unwrap(), b"four");
    assert_eq!(
        tree(&out),
        BTreeSet::from(["a", "b", "c", "d", "d/e"].map(String::from))
    );

    // A file written through the symlink's other spelling is still refused.
    assert_refused(
        "through ./link",
        vec![tar_layer(&[
            OK,
            E::Dir(b"sub/"),
            E::Symlink(b"link", b"sub"),
            E::File(b"./link//passwd", b"x"),
        ])],
        "not a directory",
    );
}
