//! What pack accepts and refuses: filters, special files, symlinks,
//! options, and the store's own directories.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use ferry_spec::annotations as ann;
use ferry_spec::media::Encoding;
use ferry_store::StoreError;
use ferry_store::extract::{self, ExtractOptions};
use ferry_store::maintenance;
use ferry_store::pack::{self, PackOptions};

use crate::common::{self, Node, TestDir};

fn layer_paths(store: &ferry_store::Store, name: &str) -> BTreeSet<String> {
    common::layers(store, name)
        .iter()
        .map(|l| common::annotations(l)[ann::FILEPATH].clone())
        .collect()
}

/// Packs and expects a refusal containing `needle`, with nothing named.
fn assert_pack_refused(dir: &std::path::Path, options: &PackOptions, needle: &str) -> StoreError {
    let t = TestDir::new();
    let store = t.store("store");
    let err = pack::pack(&store, dir, &common::reference("refused"), options)
        .expect_err("pack must refuse this input");
    assert!(err.to_string().contains(needle), "{err}");
    assert!(common::index_names(&store).is_empty());
    assert!(
        common::blob_names(&store).is_empty(),
        "blobs written before the refusal"
    );
    err
}

#[test]
fn default_filters_skip_hidden_and_cache_files_and_flags_adjust_them() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    common::write_file(&model, ".git/HEAD", b"ref: refs/heads/main\n", 0o644);
    common::write_file(
        &model,
        ".gitattributes",
        b"*.safetensors filter=lfs\n",
        0o644,
    );
    common::write_file(&model, "src/__pycache__/m.cpython-312.pyc", b"\0", 0o644);
    common::write_file(&model, "src/m.pyc", b"\0", 0o644);
    common::write_file(&model, "src/m.py", b"print(1)\n", 0o644);
    let store = t.store("store");

    common::pack_ok(&store, &model, "default", &PackOptions::default());
    let packed = layer_paths(&store, "default");
    assert!(packed.contains("src/m.py"));
    for skipped in [
        ".git/HEAD",
        ".gitattributes",
        "src/__pycache__/m.cpython-312.pyc",
        "src/m.pyc",
    ] {
        assert!(!packed.contains(skipped), "{skipped} was packed");
    }

    let options = PackOptions {
        include: vec![".gitattributes".into()],
        exclude: vec!["*.jsonl".into(), "scripts/**".into()],
        ..PackOptions::default()
    };
    common::pack_ok(&store, &model, "filtered", &options);
    let filtered = layer_paths(&store, "filtered");
    assert!(filtered.contains(".gitattributes"));
    assert!(!filtered.contains("data/train.jsonl"));
    assert!(!filtered.contains("scripts/run.sh"));
    assert!(!filtered.contains(".git/HEAD"));
    assert_eq!(
        packed.len() + 1 - 2,
        filtered.len(),
        "one file included, two excluded"
    );
}

#[test]
fn compressed_layer_formats_are_refused_not_mislabelled() {
    // pack writes plain tar; a tar+gzip media type on it would make an
    // artifact no reader can unpack.
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    for format in [Encoding::TarGzip, Encoding::TarZstd] {
        let options = PackOptions {
            layer_format: format,
            ..PackOptions::default()
        };
        let err = assert_pack_refused(&model, &options, format.suffix());
        assert!(
            matches!(err, StoreError::UnsupportedLayerFormat(_)),
            "{err:?}"
        );
    }
}

#[test]
fn special_files_are_refused() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let fifo = model.join("pipe");
    let path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0, "mkfifo");
    let err = assert_pack_refused(&model, &PackOptions::default(), "pipe");
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn non_utf8_names_are_refused() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let name = std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt");
    fs::write(model.join(name), b"x").unwrap();
    assert_pack_refused(&model, &PackOptions::default(), "UTF-8");
}

#[test]
fn symlinks_leaving_the_directory_are_refused() {
    let t = TestDir::new();
    common::write_file(&t.path().join("outside"), "secret.txt", b"secret", 0o644);
    let model = common::small_model(&t.join("model"));
    common::write_symlink(&model, "leak.txt", "../outside/secret.txt");
    for format in [Encoding::Raw, Encoding::Tar] {
        let options = PackOptions {
            layer_format: format,
            ..PackOptions::default()
        };
        assert_pack_refused(&model, &options, "outside the model directory");
    }
    fs::remove_file(model.join("leak.txt")).unwrap();
    common::write_symlink(&model, "dangling.txt", "nowhere.txt");
    assert_pack_refused(&model, &PackOptions::default(), "dangling.txt");
}

#[test]
fn a_symlinked_directory_needs_tar_layers() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    common::write_symlink(&model, "pooling", "1_Pooling");
    assert_pack_refused(&model, &PackOptions::default(), "directory");

    let store = t.store("store");
    let options = PackOptions {
        layer_format: Encoding::Tar,
        ..PackOptions::default()
    };
    common::pack_ok(&store, &model, "m", &options);
    let out = t.join("out");
    extract::extract(&store, "m", &out, &ExtractOptions::default()).unwrap();
    let tree = common::tree(&out);
    assert_eq!(
        tree["pooling"],
        Node::Link {
            target: "1_Pooling".into()
        }
    );
    assert_eq!(
        fs::read(out.join("pooling/config.json")).unwrap(),
        fs::read(model.join("1_Pooling/config.json")).unwrap()
    );
}

#[test]
fn empty_missing_and_digest_inputs_are_refused() {
    let t = TestDir::new();
    fs::create_dir_all(t.join("empty/.hidden-only")).unwrap();
    fs::write(t.join("empty/.hidden-only/x"), b"x").unwrap();
    assert_pack_refused(&t.join("empty"), &PackOptions::default(), "no files");
    let err = assert_pack_refused(&t.join("missing"), &PackOptions::default(), "missing");
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let pinned = format!("m@{}", ferry_spec::digest::sha256_digest(b"x"));
    let err = pack::pack(
        &store,
        &model,
        &common::reference(&pinned),
        &PackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidReference { .. }),
        "{err:?}"
    );
}

#[test]
fn linked_packs_share_the_inode_and_fsck_sees_later_edits() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let options = PackOptions {
        link: true,
        ..PackOptions::default()
    };
    common::pack_ok(&store, &model, "m", &options);
    let layer = common::layer_at(&common::layers(&store, "m"), "model.safetensors").clone();
    let blob = store.blob_path(layer.digest());
    assert_eq!(
        fs::metadata(&blob).unwrap().ino(),
        fs::metadata(model.join("model.safetensors")).unwrap().ino(),
        "--link hardlinks the source into the store"
    );
    let out = t.join("out");
    extract::extract(&store, "m", &out, &ExtractOptions::default()).unwrap();
    assert_eq!(
        common::files_only(common::tree(&out)),
        common::files_only(common::tree_following_links(&model))
    );
    // Editing the source in place edits the blob; fsck notices.
    fs::OpenOptions::new()
        .append(true)
        .open(model.join("model.safetensors"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"edit"))
        .unwrap();
    let report = maintenance::fsck(&store, false).unwrap();
    assert_eq!(report.corrupt, vec![layer.digest().to_string()]);
}

#[test]
fn a_store_missing_its_work_directories_still_works() {
    // Someone emptied the store's scratch space, or the layout was made by
    // another tool (Podman, CRI-O) that has no tmp/ or locks/.
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let root = t.join("store");
    let store = ferry_store::Store::open(&root).unwrap();
    fs::remove_dir_all(root.join("tmp")).unwrap();
    fs::remove_dir_all(root.join("locks")).unwrap();
    let store_again = ferry_store::Store::open(&root).unwrap();
    common::pack_ok(&store_again, &model, "m", &PackOptions::default());
    assert!(maintenance::fsck(&store, false).unwrap().is_clean());
    maintenance::prune(&store, false).unwrap();
    extract::extract(&store, "m", &t.join("out"), &ExtractOptions::default()).unwrap();
}
