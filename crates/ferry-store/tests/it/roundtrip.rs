//! Pack a generated model, extract it, compare every byte and mode.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ferry_spec::annotations as ann;
use ferry_spec::media::{self, Category, Encoding};
use ferry_store::extract::{self, ExtractOptions};
use ferry_store::pack::PackOptions;

use crate::common::{self, Node, TestDir};

fn extract_to(store: &ferry_store::Store, name: &str, out: &std::path::Path) -> extract::Extracted {
    extract::extract(store, name, out, &ExtractOptions::default())
        .unwrap_or_else(|e| panic!("extracting {name}: {e}"))
}

/// The modes the fixture sets on purpose, checked explicitly as well.
fn assert_special_modes(tree: &std::collections::BTreeMap<String, Node>) {
    match &tree["scripts/run.sh"] {
        Node::File { mode, .. } => assert_eq!(*mode, 0o755, "run.sh must stay executable"),
        other => panic!("scripts/run.sh is {other:?}"),
    }
    match &tree["private.txt"] {
        Node::File { mode, .. } => assert_eq!(*mode, 0o600, "private.txt must stay 0600"),
        other => panic!("private.txt is {other:?}"),
    }
}

#[test]
fn raw_layers_round_trip_byte_identical_with_modes() {
    let t = TestDir::new();
    let model = common::model_fixture(&t.join("model"));
    let store = t.store("store");
    let packed = common::pack_ok(&store, &model, "roundtrip:raw", &PackOptions::default());

    let source = common::files_only(common::tree_following_links(&model));
    let layers = common::layers(&store, "roundtrip:raw");
    assert_eq!(packed.layers, layers.len());
    assert_eq!(
        layers.len(),
        source.len(),
        "raw packing makes one layer per file"
    );
    for layer in &layers {
        let (_, encoding) = media::parse_layer_media_type(layer.media_type().as_ref())
            .unwrap_or_else(|| panic!("not a modelpack layer: {}", layer.media_type()));
        assert_eq!(encoding, Encoding::Raw, "layer {}", layer.digest());
    }
    let paths: BTreeSet<String> = layers
        .iter()
        .map(|l| common::annotations(l)[ann::FILEPATH].clone())
        .collect();
    let expected_paths: BTreeSet<String> = source.keys().cloned().collect();
    assert_eq!(paths, expected_paths);

    let out = t.join("out/model");
    let extracted = extract_to(&store, "roundtrip:raw", &out);
    assert_eq!(extracted.entries, layers.len());
    let result = common::files_only(common::tree(&out));
    assert_eq!(result, source, "extracted tree differs from the source");
    assert_special_modes(&result);
    // Raw layers carry bytes, not links: the symlink became README's bytes.
    assert_eq!(result["docs/README-link.md"], result["README.md"]);
    assert!(!out.join("docs/README-link.md").is_symlink());
    assert!(common::entries_with_prefix(&t.join("out"), ".ferry-extract-").is_empty());
}

#[test]
fn tar_layers_round_trip_and_keep_symlinks() {
    let t = TestDir::new();
    let model = common::model_fixture(&t.join("model"));
    let store = t.store("store");
    let options = PackOptions {
        layer_format: Encoding::Tar,
        ..PackOptions::default()
    };
    common::pack_ok(&store, &model, "roundtrip:tar", &options);
    let layers = common::layers(&store, "roundtrip:tar");
    for layer in &layers {
        let (_, encoding) =
            media::parse_layer_media_type(layer.media_type().as_ref()).expect("modelpack");
        assert_eq!(encoding, Encoding::Tar, "layer {}", layer.digest());
    }
    let link_layer = common::layer_at(&layers, "docs/README-link.md");
    assert_eq!(
        common::file_metadata(link_layer).typeflag,
        ann::TYPEFLAG_SYMLINK
    );

    let out = t.join("out");
    extract_to(&store, "roundtrip:tar", &out);
    let source = common::files_only(common::tree(&model));
    let result = common::files_only(common::tree(&out));
    assert_eq!(result, source, "extracted tree differs from the source");
    assert_special_modes(&result);
    assert_eq!(
        result["docs/README-link.md"],
        Node::Link {
            target: PathBuf::from("../README.md")
        }
    );
    assert_eq!(
        std::fs::read(out.join("docs/README-link.md")).unwrap(),
        std::fs::read(model.join("README.md")).unwrap(),
        "the link resolves inside the extracted tree"
    );
}

#[test]
fn bundled_small_files_round_trip_with_annotations() {
    let t = TestDir::new();
    let model = common::model_fixture(&t.join("model"));
    // Declared: the weights (large, one layer each) and the only dataset
    // file (small but alone in its category, so a single layer).
    common::write_file(
        &model,
        "Modelfile",
        b"MODEL *.safetensors\nDATASET data/train.jsonl\n",
        0o644,
    );
    let declared = |path: &str| path.ends_with(".safetensors") || path == "data/train.jsonl";
    let store = t.store("store");
    let unbundled = common::pack_ok(
        &store,
        &model,
        "roundtrip:unbundled",
        &PackOptions::default(),
    );
    let options = PackOptions {
        bundle_small: Some(64 * 1024),
        ..PackOptions::default()
    };
    let bundled = common::pack_ok(&store, &model, "roundtrip:bundled", &options);
    assert!(
        bundled.layers < unbundled.layers,
        "bundling made {} layers, unbundled {}",
        bundled.layers,
        unbundled.layers
    );

    let layers = common::layers(&store, "roundtrip:bundled");
    let mut bundles_per_category: std::collections::HashMap<Category, usize> = Default::default();
    for layer in &layers {
        let notes = common::annotations(layer);
        let path = notes
            .get(ann::FILEPATH)
            .unwrap_or_else(|| panic!("layer {} lacks {}", layer.digest(), ann::FILEPATH));
        assert_eq!(
            notes.get(ann::TITLE),
            Some(path),
            "title and filepath differ"
        );
        let metadata = common::file_metadata(layer);
        let (category, encoding) =
            media::parse_layer_media_type(layer.media_type().as_ref()).expect("modelpack");
        if encoding == Encoding::Tar {
            *bundles_per_category.entry(category).or_default() += 1;
            assert_eq!(metadata.typeflag, ann::TYPEFLAG_DIRECTORY, "bundle {path}");
        } else {
            assert_eq!(metadata.typeflag, ann::TYPEFLAG_REGULAR, "file {path}");
            assert_eq!(metadata.size, layer.size(), "file {path}");
        }
        let untested = notes.get(ann::MEDIATYPE_UNTESTED).map(String::as_str);
        if declared(path) {
            assert_eq!(untested, None, "declared {path} is marked untested");
        } else {
            assert_eq!(untested, Some("true"), "heuristic layer {path} not marked");
        }
    }
    assert!(
        !bundles_per_category.is_empty(),
        "no small files were bundled"
    );
    assert!(
        bundles_per_category.values().all(|n| *n == 1),
        "more than one bundle in a category: {bundles_per_category:?}"
    );
    assert!(
        layers
            .iter()
            .all(|l| common::annotations(l)[ann::FILEPATH] != "Modelfile"),
        "the Modelfile was packed"
    );

    let out = t.join("out");
    extract_to(&store, "roundtrip:bundled", &out);
    let mut source = common::files_only(common::tree_following_links(&model));
    source.remove("Modelfile");
    let result = common::files_only(common::tree(&out));
    assert_eq!(result, source, "extracted tree differs from the source");
    assert_special_modes(&result);
}

#[test]
fn hand_made_model_round_trips_in_every_layout() {
    // The same checks without Python, so they always run.
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let variants = [
        ("raw", Encoding::Raw, None, true),
        ("tar", Encoding::Tar, None, false),
        ("bundle", Encoding::Raw, Some(1024), true),
        ("tarbundle", Encoding::Tar, Some(1024), false),
    ];
    for (tag, layer_format, bundle_small, follow) in variants {
        let options = PackOptions {
            layer_format,
            bundle_small,
            ..PackOptions::default()
        };
        let name = format!("small:{tag}");
        common::pack_ok(&store, &model, &name, &options);
        let out = t.join(format!("out-{tag}"));
        extract_to(&store, &name, &out);
        assert_eq!(
            common::files_only(common::tree(&out)),
            common::files_only(if follow {
                common::tree_following_links(&model)
            } else {
                common::tree(&model)
            }),
            "variant {tag}"
        );
    }
}

#[test]
fn extract_refuses_a_non_empty_directory_without_force() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "small", &PackOptions::default());
    let out = t.join("out");
    common::write_file(&out, "keep.txt", b"mine", 0o644);
    common::write_file(&out, "README.md", b"old readme", 0o644);
    let err = extract::extract(&store, "small", &out, &ExtractOptions::default())
        .expect_err("extracting into a non-empty directory must fail");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(std::fs::read(out.join("README.md")).unwrap(), b"old readme");

    extract::extract(&store, "small", &out, &ExtractOptions { force: true }).expect("forced");
    assert_eq!(std::fs::read(out.join("keep.txt")).unwrap(), b"mine");
    assert_eq!(
        std::fs::read(out.join("README.md")).unwrap(),
        std::fs::read(model.join("README.md")).unwrap()
    );
}
