//! A Modelfile in the model directory: classification, metadata, errors.

use std::fs;

use ferry_spec::annotations as ann;
use ferry_spec::media::{self, Category};
use ferry_store::StoreError;
use ferry_store::pack::{self, Metadata, PackOptions};

use crate::common::{self, TestDir};

const MODELFILE: &str = "\
# a model described by hand
NAME from-modelfile
ARCH MistralForCausalLM
FAMILY mistral
FORMAT safetensors
PARAMSIZE 7B
PRECISION \"float16\"   # quoted, with a comment
QUANTIZATION gptq
MODEL *.safetensors
DOC weights-notes.bin
CONFIG config.json
";

fn category_of(layers: &[ferry_spec::oci::Descriptor], path: &str) -> Category {
    let layer = common::layer_at(layers, path);
    media::parse_layer_media_type(layer.media_type().as_ref())
        .expect("modelpack media type")
        .0
}

#[test]
fn modelfile_classifies_fills_metadata_and_is_not_packed() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    common::write_file(
        &model,
        "weights-notes.bin",
        b"notes that look like weights\n",
        0o644,
    );

    // Without a Modelfile the heuristic calls the .bin file weights.
    let store = t.store("store");
    common::pack_ok(&store, &model, "plain", &PackOptions::default());
    let plain = common::layers(&store, "plain");
    assert_eq!(category_of(&plain, "weights-notes.bin"), Category::Weight);

    common::write_file(&model, "Modelfile", MODELFILE.as_bytes(), 0o644);
    common::pack_ok(&store, &model, "described", &PackOptions::default());
    let layers = common::layers(&store, "described");
    let notes = common::layer_at(&layers, "weights-notes.bin");
    assert_eq!(category_of(&layers, "weights-notes.bin"), Category::Doc);
    assert_eq!(
        common::annotations(notes).get(ann::MEDIATYPE_UNTESTED),
        None,
        "a declared file is not a guess"
    );
    for declared in ["model.safetensors", "config.json"] {
        let layer = common::layer_at(&layers, declared);
        assert_eq!(
            common::annotations(layer).get(ann::MEDIATYPE_UNTESTED),
            None,
            "{declared}"
        );
    }
    let readme = common::layer_at(&layers, "README.md");
    assert_eq!(
        common::annotations(readme)
            .get(ann::MEDIATYPE_UNTESTED)
            .map(String::as_str),
        Some("true"),
        "undeclared files are still guesses"
    );
    assert!(
        layers
            .iter()
            .all(|l| common::annotations(l)[ann::FILEPATH] != "Modelfile"),
        "the Modelfile must not be a layer"
    );
    assert_eq!(
        layers.len(),
        plain.len(),
        "same files, minus nothing but the Modelfile"
    );

    let (_, _, manifest) = common::manifest_json(&store, "described");
    assert_eq!(manifest["annotations"][ann::MODELFILE], MODELFILE);

    let config = common::config_json(&store, "described");
    assert_eq!(config["descriptor"]["name"], "from-modelfile");
    assert_eq!(config["descriptor"]["family"], "mistral");
    assert_eq!(config["config"]["architecture"], "MistralForCausalLM");
    assert_eq!(config["config"]["format"], "safetensors");
    assert_eq!(config["config"]["paramSize"], "7B");
    assert_eq!(config["config"]["precision"], "float16");
    assert_eq!(config["config"]["quantization"], "gptq");

    // Metadata flags override the Modelfile, field by field.
    let options = PackOptions {
        metadata: Metadata {
            facts: ferry_spec::modelfile::ModelFacts {
                name: Some("from-flags".into()),
                precision: Some("bfloat16".into()),
                ..Default::default()
            },
            ..Metadata::default()
        },
        ..PackOptions::default()
    };
    common::pack_ok(&store, &model, "flags", &options);
    let config = common::config_json(&store, "flags");
    assert_eq!(config["descriptor"]["name"], "from-flags");
    assert_eq!(config["config"]["precision"], "bfloat16");
    assert_eq!(config["descriptor"]["family"], "mistral");
    assert_eq!(config["config"]["quantization"], "gptq");
}

#[test]
fn modelfile_given_by_path_inside_the_dir_is_not_packed() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    common::write_file(
        &model,
        "custom.modelfile",
        b"NAME custom\nDOC LICENSE\n",
        0o644,
    );
    let store = t.store("store");
    let options = PackOptions {
        modelfile: Some(model.join("custom.modelfile")),
        ..PackOptions::default()
    };
    common::pack_ok(&store, &model, "custom", &options);
    let layers = common::layers(&store, "custom");
    assert!(
        layers
            .iter()
            .all(|l| common::annotations(l)[ann::FILEPATH] != "custom.modelfile"),
        "the -f Modelfile must not be a layer"
    );
    assert_eq!(
        common::config_json(&store, "custom")["descriptor"]["name"],
        "custom"
    );
    let license = common::layer_at(&layers, "LICENSE");
    assert_eq!(
        common::annotations(license).get(ann::MEDIATYPE_UNTESTED),
        None
    );
}

/// Packs and expects a refusal that names `line`, with nothing stored.
fn assert_refused(modelfile: &str, line: usize, also_mentions: &str) {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "before", &PackOptions::default());
    let names_before = common::index_names(&store);
    let blobs_before = common::blob_names(&store);

    common::write_file(&model, "Modelfile", modelfile.as_bytes(), 0o644);
    let err = pack::pack(
        &store,
        &model,
        &common::reference("after"),
        &PackOptions::default(),
    )
    .expect_err("the Modelfile must be refused");
    assert!(
        matches!(
            err,
            StoreError::Modelfile { .. } | StoreError::UnmatchedGlob { .. }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&format!("line {line}")), "{message}");
    assert!(message.contains(also_mentions), "{message}");
    assert_eq!(common::index_names(&store), names_before);
    assert_eq!(
        common::blob_names(&store),
        blobs_before,
        "no blobs may be added"
    );
    assert!(matches!(
        store.resolve("after"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn glob_matching_nothing_is_an_error_with_its_line() {
    assert_refused("NAME x\n\n# comment\nMODEL *.gguf\n", 4, "*.gguf");
}

#[test]
fn unknown_directive_is_an_error_with_its_line() {
    assert_refused("NAME x\nMODEL *.safetensors\nWEIGHTS foo\n", 3, "WEIGHTS");
}

#[test]
fn duplicate_single_directive_is_an_error_with_its_line() {
    assert_refused("NAME x\nARCH a\nNAME y\n", 3, "NAME");
}

#[test]
fn modelfile_text_survives_byte_for_byte() {
    // CRLF line ends parse, and the annotation keeps the text as written.
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let text = "NAME crlf\r\nDOC README.md\r\n";
    fs::write(model.join("Modelfile"), text).unwrap();
    let store = t.store("store");
    common::pack_ok(&store, &model, "crlf", &PackOptions::default());
    let (_, _, manifest) = common::manifest_json(&store, "crlf");
    assert_eq!(manifest["annotations"][ann::MODELFILE], text);
    assert_eq!(
        common::config_json(&store, "crlf")["descriptor"]["name"],
        "crlf"
    );
}
