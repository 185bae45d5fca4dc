//! An artifact's files by path and SHA-256, read from its layers without
//! writing anything: what model signatures are compared with.

use std::collections::BTreeMap;
use std::io::{self, Read};

use ferry_spec::annotations as ann;
use ferry_spec::oci::{Descriptor, MediaType};
use ferry_store::StoreError;
use ferry_store::compress::CompressMode;
use ferry_store::decompress::Limits;
use ferry_store::files::{ArtifactEntry, ArtifactFiles, add_layer_from_reader, artifact_files};
use ferry_store::pack::PackOptions;

use crate::common::*;

fn sha256(bytes: &[u8]) -> ArtifactEntry {
    ArtifactEntry::File(ferry_spec::digest::sha256_digest(bytes))
}

fn layer(media_type: &str, blob: &[u8], title: Option<&str>) -> Descriptor {
    let mut descriptor = Descriptor::new(
        MediaType::from(media_type),
        blob.len() as u64,
        ferry_spec::digest::sha256_digest(blob),
    );
    if let Some(title) = title {
        descriptor.set_annotations(Some(
            [(ann::FILEPATH.to_string(), title.to_string())].into(),
        ));
    }
    descriptor
}

fn read(descriptor: &Descriptor, blob: &[u8], files: &mut ArtifactFiles) -> Result<(), StoreError> {
    add_layer_from_reader(descriptor, blob, &Limits::default(), files)
}

#[test]
fn packed_raw_tar_and_compressed_layers_list_every_file() {
    let t = TestDir::new();
    let store = t.store("store");
    let dir = t.join("model");
    let weights = tiny_safetensors(64, 1);
    write_file(&dir, "model.safetensors", &weights, 0o644);
    write_file(&dir, "config.json", b"{\"a\":1}\n", 0o644);
    write_file(&dir, "tokenizer/vocab.txt", b"a b c\n", 0o644);
    write_file(&dir, "README.md", b"# m\n", 0o644);
    let options = PackOptions {
        bundle_small: Some(1024),
        compress: ferry_store::compress::CompressOptions {
            mode: CompressMode::Auto,
            ..Default::default()
        },
        ..PackOptions::default()
    };
    let packed = pack_ok(&store, &dir, "localhost/m:1", &options);
    let manifest = store.read_manifest(&packed.manifest_digest).unwrap();
    assert!(
        manifest
            .layers()
            .iter()
            .any(|l| l.media_type().to_string().contains("tar")),
        "some files must be in tar layers"
    );
    let files = artifact_files(&store, &manifest).unwrap();
    let expected: ArtifactFiles = BTreeMap::from([
        ("README.md".to_string(), sha256(b"# m\n")),
        ("config.json".to_string(), sha256(b"{\"a\":1}\n")),
        ("model.safetensors".to_string(), sha256(&weights)),
        ("tokenizer/vocab.txt".to_string(), sha256(b"a b c\n")),
    ]);
    assert_eq!(files, expected);

    // What pack hashed while reading is the same list.
    let mut from_pack: Vec<_> = packed
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                ArtifactEntry::File(f.sha256.clone().unwrap()),
            )
        })
        .collect();
    from_pack.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(from_pack, expected.into_iter().collect::<Vec<_>>());
}

#[test]
fn later_layers_replace_paths_links_and_hardlinks_are_resolved() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "dir/a.txt", &b"new"[..])
        .unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, "alias", "dir/a.txt")
        .unwrap();
    let mut hard = tar::Header::new_gnu();
    hard.set_entry_type(tar::EntryType::Link);
    hard.set_size(0);
    builder
        .append_link(&mut hard, "copy.txt", "dir/a.txt")
        .unwrap();
    let tar = builder.into_inner().unwrap();

    let mut files = ArtifactFiles::new();
    let raw = layer(
        "application/vnd.cncf.model.weight.v1.raw",
        b"old",
        Some("dir/a.txt"),
    );
    read(&raw, b"old", &mut files).unwrap();
    assert_eq!(files["dir/a.txt"], sha256(b"old"));
    read(
        &layer("application/vnd.cncf.model.weight.v1.tar", &tar, None),
        &tar,
        &mut files,
    )
    .unwrap();
    assert_eq!(files["dir/a.txt"], sha256(b"new"), "the later layer wins");
    assert_eq!(files["copy.txt"], sha256(b"new"));
    assert_eq!(files["alias"], ArtifactEntry::Symlink("dir/a.txt".into()));
}

#[test]
fn hostile_layers_are_refused() {
    // A blob that is not what its descriptor says, or longer than it says.
    let descriptor = layer(
        "application/vnd.cncf.model.weight.v1.raw",
        b"signed",
        Some("w"),
    );
    let error = read(&descriptor, b"sealed", &mut ArtifactFiles::new()).unwrap_err();
    assert!(
        matches!(error, StoreError::DigestMismatch { .. }),
        "{error}"
    );
    let error = read(&descriptor, b"signed!", &mut ArtifactFiles::new()).unwrap_err();
    assert!(
        !matches!(error, StoreError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("6"), "{error}");

    // A path leaving the root.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.as_old_mut().name[..7].copy_from_slice(b"../evil");
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let error = read(
        &layer("application/vnd.cncf.model.weight.v1.tar", &tar, None),
        &tar,
        &mut ArtifactFiles::new(),
    )
    .unwrap_err();
    assert!(error.to_string().contains(".."), "{error}");

    // A hard link to nothing before it.
    let mut builder = tar::Builder::new(Vec::new());
    let mut hard = tar::Header::new_gnu();
    hard.set_entry_type(tar::EntryType::Link);
    hard.set_size(0);
    builder.append_link(&mut hard, "copy", "missing").unwrap();
    let tar = builder.into_inner().unwrap();
    let error = read(
        &layer("application/vnd.cncf.model.weight.v1.tar", &tar, None),
        &tar,
        &mut ArtifactFiles::new(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");

    // A zstd bomb stops at the limit instead of hashing a gigabyte.
    let mut header = tar::Header::new_gnu();
    header.set_size(1 << 30);
    header.set_mode(0o644);
    let encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    let mut builder = tar::Builder::new(encoder);
    builder
        .append_data(&mut header, "zeros", io::repeat(0).take(1 << 30))
        .unwrap();
    let bomb = builder.into_inner().unwrap().finish().unwrap();
    let error = read(
        &layer("application/vnd.cncf.model.weight.v1.tar+zstd", &bomb, None),
        &bomb,
        &mut ArtifactFiles::new(),
    )
    .unwrap_err();
    assert!(
        matches!(error, StoreError::DecompressionBomb { .. }),
        "{error}"
    );
}
