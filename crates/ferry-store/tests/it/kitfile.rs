//! A Kitfile as the recipe of `pack`: what is packed, categories, metadata,
//! the Kitfile kept whole.

use ferry_spec::annotations as ann;
use ferry_spec::media::{self, Category};
use ferry_store::StoreError;
use ferry_store::pack::{self, PackOptions};

use crate::common::{self, TestDir};

const KITFILE: &str = r#"manifestVersion: 1.0.0
package:
  name: tiny-kit
  version: 2.1.0
  description: A tiny model from a Kitfile
  authors: [Ada]
  license: Apache-2.0
model:
  name: tiny
  path: ./model
  framework: pytorch
  format: safetensors
code:
  - path: src/train.py
    description: training
datasets:
  - name: eval
    path: data
    license: CC-BY-4.0
docs:
  - path: README.md
"#;

fn category_of(layers: &[ferry_spec::oci::Descriptor], path: &str) -> Category {
    let layer = common::layer_at(layers, path);
    media::parse_layer_media_type(layer.media_type().as_ref())
        .expect("modelpack media type")
        .0
}

fn kit_dir(t: &TestDir) -> std::path::PathBuf {
    let dir = t.join("kit");
    common::write_file(
        &dir,
        "model/model.safetensors",
        &common::tiny_safetensors(4, 1),
        0o644,
    );
    common::write_file(
        &dir,
        "model/config.json",
        b"{\"model_type\":\"llama\"}",
        0o644,
    );
    common::write_file(&dir, "src/train.py", b"print('train')\n", 0o644);
    common::write_file(&dir, "data/eval.csv", b"q,a\n1,2\n", 0o644);
    common::write_file(&dir, "README.md", b"# tiny\n", 0o644);
    common::write_file(&dir, "notes/unlisted.txt", b"not in the Kitfile\n", 0o644);
    common::write_file(&dir, "Kitfile", KITFILE.as_bytes(), 0o644);
    dir
}

#[test]
fn a_kitfile_chooses_files_categories_and_metadata() {
    let t = TestDir::new();
    let dir = kit_dir(&t);
    let store = t.store("store");
    // Found in the directory by its name, as `kit pack` finds it.
    common::pack_ok(&store, &dir, "kit", &PackOptions::default());
    let layers = common::layers(&store, "kit");
    let mut paths: Vec<String> = layers
        .iter()
        .map(|l| common::annotations(l)[ann::FILEPATH].clone())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "README.md",
            "data/eval.csv",
            "model/config.json",
            "model/model.safetensors",
            "src/train.py"
        ],
        "only what the Kitfile lists, and not the Kitfile itself"
    );
    assert_eq!(
        category_of(&layers, "model/model.safetensors"),
        Category::Weight
    );
    assert_eq!(
        category_of(&layers, "model/config.json"),
        Category::WeightConfig
    );
    assert_eq!(category_of(&layers, "src/train.py"), Category::Code);
    assert_eq!(category_of(&layers, "data/eval.csv"), Category::Dataset);
    assert_eq!(category_of(&layers, "README.md"), Category::Doc);
    for layer in &layers {
        assert_eq!(
            common::annotations(layer).get(ann::MEDIATYPE_UNTESTED),
            None
        );
    }

    let config = common::config_json(&store, "kit");
    let descriptor = &config["descriptor"];
    assert_eq!(descriptor["name"], "tiny-kit");
    assert_eq!(descriptor["title"], "tiny");
    assert_eq!(descriptor["version"], "2.1.0");
    assert_eq!(descriptor["description"], "A tiny model from a Kitfile");
    assert_eq!(descriptor["authors"], serde_json::json!(["Ada"]));
    assert_eq!(
        descriptor["licenses"],
        serde_json::json!(["Apache-2.0", "CC-BY-4.0"])
    );
    assert_eq!(config["config"]["format"], "safetensors");

    let (_, _, manifest) = common::manifest_json(&store, "kit");
    let kept = manifest["annotations"][ann::KITOPS_KITFILE]
        .as_str()
        .expect("the Kitfile annotation");
    let kept: serde_json::Value = serde_json::from_str(kept).unwrap();
    assert_eq!(kept["model"]["framework"], "pytorch");
    assert_eq!(kept["code"][0]["description"], "training");
    assert!(manifest["annotations"].get(ann::MODELFILE).is_none());

    // The same directory packs to the same digest.
    let again = common::pack_ok(&store, &dir, "kit2", &PackOptions::default());
    let (first, _, _) = common::manifest_json(&store, "kit");
    assert_eq!(again.manifest_digest, first);
}

#[test]
fn a_kitfile_given_with_f_and_its_errors() {
    let t = TestDir::new();
    let dir = kit_dir(&t);
    let store = t.store("store");
    std::fs::remove_file(dir.join("Kitfile")).unwrap();
    let outside = t.join("recipe.yaml");
    std::fs::write(&outside, KITFILE).unwrap();
    let options = PackOptions {
        modelfile: Some(outside.clone()),
        ..PackOptions::default()
    };
    common::pack_ok(&store, &dir, "given", &options);
    assert_eq!(common::layers(&store, "given").len(), 5);

    for (kitfile, expected) in [
        (
            KITFILE.replace("path: README.md", "path: MISSING.md"),
            "docs[0].path",
        ),
        (
            KITFILE.replace("path: data", "path: ../elsewhere"),
            "leaves the context directory",
        ),
        (
            "manifestVersion: 1.0.0\nmodel: [1\n".to_string(),
            "not a valid Kitfile",
        ),
    ] {
        std::fs::write(&outside, &kitfile).unwrap();
        let err = pack::pack(
            &store,
            &dir,
            &common::reference("localhost/bad:v1"),
            &options,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Kitfile { .. } | StoreError::KitfilePathMissing { .. }
            ) || err.to_string().contains("not a valid Kitfile"),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert!(
        !common::index_names(&store)
            .iter()
            .any(|n| n.contains("bad"))
    );
}
