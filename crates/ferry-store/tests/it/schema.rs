//! What ferry writes matches the ModelPack config schema and the OCI
//! manifest and layout rules.

use std::fs;

use ferry_spec::annotations as ann;
use ferry_spec::digest::sha256_digest;
use ferry_spec::media::{self, Encoding};
use ferry_store::pack::{Metadata, PackOptions};
use serde_json::Value;

use crate::common::{self, TestDir};

/// The validator of the ModelPack config schema in `shared/`; `None` (after
/// a note, or a failure under CI) when that folder is not there.
fn validator() -> Option<jsonschema::Validator> {
    let path = ferry_testkit::shared_data("spec/modelpack/config-schema.json")?;
    let schema: Value = serde_json::from_slice(&fs::read(&path).expect("reading the schema"))
        .expect("schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("compiling the schema")
        .into()
}

fn assert_valid(validator: &jsonschema::Validator, config: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(config)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: config violates the schema: {errors:?}\n{config:#}"
    );
}

fn all_metadata() -> Metadata {
    Metadata {
        facts: ferry_spec::modelfile::ModelFacts {
            name: Some("tiny-llama".into()),
            family: Some("llama3".into()),
            arch: Some("transformer".into()),
            format: Some("safetensors".into()),
            param_size: Some("10k".into()),
            precision: Some("bfloat16".into()),
            quantization: Some("awq".into()),
        },
        version: Some("1.2.3".into()),
        licenses: vec!["Apache-2.0".into(), "MIT".into()],
        authors: vec!["Ada <ada@example.com>".into(), "Grace".into()],
    }
}

#[test]
fn the_schema_harness_agrees_with_the_spec_vectors() {
    let Some(validator) = validator() else { return };
    // Proves the validator below really enforces the schema, formats included.
    let Some(dir) = ferry_testkit::shared_data("spec/modelpack/vectors") else {
        return;
    };
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let vectors = index.as_array().expect("vector list");
    assert!(vectors.len() >= 20);
    for vector in vectors {
        let file = vector["file"].as_str().unwrap();
        let expect_fail = vector["expect_fail"].as_bool().unwrap();
        let config: Value = serde_json::from_slice(&fs::read(dir.join(file)).unwrap()).unwrap();
        assert_eq!(
            !validator.is_valid(&config),
            expect_fail,
            "vector {file}: {}",
            vector["comment"]
        );
    }
}

#[test]
fn every_config_ferry_writes_validates() {
    let Some(validator) = validator() else { return };
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let variants = [
        ("default", PackOptions::default()),
        (
            "tar",
            PackOptions {
                layer_format: Encoding::Tar,
                ..PackOptions::default()
            },
        ),
        (
            "bundle",
            PackOptions {
                bundle_small: Some(64 * 1024),
                preserve_metadata: true,
                ..PackOptions::default()
            },
        ),
        (
            "all-metadata",
            PackOptions {
                metadata: all_metadata(),
                created: Some("2024-05-06T07:08:09Z".into()),
                ..PackOptions::default()
            },
        ),
        (
            "offset-time",
            PackOptions {
                created: Some("2024-05-06T07:08:09.123+02:00".into()),
                ..PackOptions::default()
            },
        ),
    ];
    for (tag, options) in variants {
        let name = format!("schema:{tag}");
        common::pack_ok(&store, &model, &name, &options);
        let config = common::config_json(&store, &name);
        assert_valid(&validator, &config, tag);
    }

    let config = common::config_json(&store, "schema:all-metadata");
    let d = &config["descriptor"];
    assert_eq!(d["name"], "tiny-llama");
    assert_eq!(d["family"], "llama3");
    assert_eq!(d["version"], "1.2.3");
    assert_eq!(d["licenses"], serde_json::json!(["Apache-2.0", "MIT"]));
    assert_eq!(
        d["authors"],
        serde_json::json!(["Ada <ada@example.com>", "Grace"])
    );
    assert_eq!(d["createdAt"], "2024-05-06T07:08:09Z");
    let c = &config["config"];
    assert_eq!(c["architecture"], "transformer");
    assert_eq!(c["format"], "safetensors");
    assert_eq!(c["paramSize"], "10k");
    assert_eq!(c["precision"], "bfloat16");
    assert_eq!(c["quantization"], "awq");

    // Without flags, the name comes from the reference and the rest is
    // detected from config.json and the safetensors header.
    let config = common::config_json(&store, "schema:default");
    assert_eq!(config["descriptor"]["name"], "schema");
    assert_eq!(config["descriptor"]["family"], "llama");
    assert_eq!(config["config"]["architecture"], "LlamaForCausalLM");
    assert_eq!(config["config"]["format"], "safetensors");
    assert_eq!(config["config"]["precision"], "bfloat16");
    assert_eq!(config["config"]["paramSize"], "40K");
}

#[test]
fn generated_model_config_validates() {
    let Some(validator) = validator() else { return };
    let t = TestDir::new();
    let model = common::model_fixture(&t.join("model"));
    let store = t.store("store");
    let options = PackOptions {
        metadata: all_metadata(),
        created: Some("2026-01-01T00:00:00Z".into()),
        bundle_small: Some(4096),
        ..PackOptions::default()
    };
    common::pack_ok(&store, &model, "gen:all", &options);
    common::pack_ok(&store, &model, "gen:plain", &PackOptions::default());
    for name in ["gen:all", "gen:plain"] {
        assert_valid(&validator, &common::config_json(&store, name), name);
    }
    let plain = common::config_json(&store, "gen:plain");
    assert_eq!(plain["config"]["format"], "safetensors");
    assert!(plain["config"]["paramSize"].is_string(), "{plain:#}");
}

#[test]
fn the_validator_rejects_what_ferry_must_not_write() {
    let Some(validator) = validator() else { return };
    // The same validator fails configs that break the schema, so the
    // passes above are meaningful.
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "m", &PackOptions::default());
    let good = common::config_json(&store, "m");
    assert!(validator.is_valid(&good));
    let mut bad_time = good.clone();
    bad_time["descriptor"]["createdAt"] = "yesterday".into();
    assert!(
        !validator.is_valid(&bad_time),
        "date-time format not enforced"
    );
    let mut extra = good.clone();
    extra["config"]["unknownKey"] = 1.into();
    assert!(
        !validator.is_valid(&extra),
        "additionalProperties not enforced"
    );
}

#[test]
fn invalid_created_time_is_refused_and_stores_nothing() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let options = PackOptions {
        created: Some("yesterday".into()),
        ..PackOptions::default()
    };
    let err = ferry_store::pack::pack(&store, &model, &common::reference("m"), &options)
        .expect_err("a non-RFC 3339 created time must be refused");
    assert!(err.to_string().contains("yesterday"), "{err}");
    assert!(common::index_names(&store).is_empty());
    assert!(
        common::blob_names(&store).is_empty(),
        "a failed pack leaves its blobs behind"
    );
}

#[test]
fn manifest_and_index_follow_the_spec() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    for (tag, options) in [
        ("raw", PackOptions::default()),
        (
            "bundle",
            PackOptions {
                bundle_small: Some(64 * 1024),
                layer_format: Encoding::Tar,
                ..PackOptions::default()
            },
        ),
    ] {
        let name = format!("spec:{tag}");
        let packed = common::pack_ok(&store, &model, &name, &options);
        let (digest, bytes, manifest) = common::manifest_json(&store, &name);
        assert_eq!(digest, packed.manifest_digest);
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], media::MEDIA_TYPE_IMAGE_MANIFEST);
        assert_eq!(manifest["artifactType"], media::ARTIFACT_TYPE_MODEL);
        assert_eq!(
            manifest["config"]["mediaType"],
            media::MEDIA_TYPE_MODEL_CONFIG
        );

        let config = common::config_json(&store, &name);
        let layer_digests: Vec<Value> = manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].clone())
            .collect();
        assert!(!layer_digests.is_empty());
        assert_eq!(config["modelfs"]["type"], "layers");
        assert_eq!(
            config["modelfs"]["diffIds"],
            Value::Array(layer_digests),
            "{tag}: diffIds must be the layer digests in order"
        );
        for layer in manifest["layers"].as_array().unwrap() {
            let mt = layer["mediaType"].as_str().unwrap();
            assert!(media::parse_layer_media_type(mt).is_some(), "{mt}");
            let blob = fs::read(store.blob_path(
                &ferry_store::index::parse_digest(layer["digest"].as_str().unwrap()).unwrap(),
            ))
            .unwrap();
            assert_eq!(layer["size"], blob.len(), "{tag}: layer size");
        }

        // The bytes on disk hash to the digest index.json names.
        let index = common::index_json(&store);
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"][ann::REF_NAME] == format!("docker.io/library/{name}"))
            .unwrap_or_else(|| panic!("no index entry for {name}: {index:#}"));
        let on_disk = fs::read(store.blob_path(&digest)).unwrap();
        assert_eq!(on_disk, bytes);
        assert_eq!(entry["digest"], sha256_digest(&on_disk).to_string());
        assert_eq!(entry["size"], on_disk.len());
        assert_eq!(entry["mediaType"], media::MEDIA_TYPE_IMAGE_MANIFEST);
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config_bytes =
            fs::read(store.blob_path(&ferry_store::index::parse_digest(config_digest).unwrap()))
                .unwrap();
        assert_eq!(sha256_digest(&config_bytes).to_string(), config_digest);
        assert_eq!(manifest["config"]["size"], config_bytes.len());
    }
    let index = common::index_json(&store);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], media::MEDIA_TYPE_IMAGE_INDEX);
    let layout: Value =
        serde_json::from_slice(&fs::read(store.layout_dir().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
}

#[test]
fn index_names_are_full_normalized_references() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let cases = [
        ("m", "docker.io/library/m:latest"),
        ("org/m:v1", "docker.io/org/m:v1"),
        ("docker.io/m:v2", "docker.io/library/m:v2"),
        ("localhost:5000/team/m:v3", "localhost:5000/team/m:v3"),
        ("quay.io/org/model:v1", "quay.io/org/model:v1"),
    ];
    for (input, full) in cases {
        let packed = common::pack_ok(&store, &model, input, &PackOptions::default());
        assert_eq!(packed.reference, full, "{input}");
        let resolved = store.resolve(input).unwrap();
        assert_eq!(resolved.reference.as_deref(), Some(full), "{input}");
        // The full form resolves to the same entry.
        assert_eq!(
            store.resolve(full).unwrap().descriptor.digest(),
            resolved.descriptor.digest()
        );
    }
    let names = common::index_names(&store);
    let expected: Vec<String> = cases.iter().map(|(_, full)| full.to_string()).collect();
    assert_eq!(names, expected);
}

#[test]
fn repacking_a_tag_replaces_its_index_entry() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let first = common::pack_ok(&store, &model, "m", &PackOptions::default());
    common::pack_ok(&store, &model, "m:other", &PackOptions::default());
    fs::write(model.join("README.md"), b"# changed\n").unwrap();
    let second = common::pack_ok(&store, &model, "m", &PackOptions::default());
    assert_ne!(first.manifest_digest, second.manifest_digest);
    let names = common::index_names(&store);
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "docker.io/library/m:latest")
            .count(),
        1
    );
    assert_eq!(names.len(), 2);
    assert_eq!(
        store.resolve("m").unwrap().descriptor.digest(),
        &second.manifest_digest
    );
    assert_eq!(
        store.resolve("m:other").unwrap().descriptor.digest(),
        &first.manifest_digest
    );
    // Digest lookups work too, bare and with a name.
    let by_digest = store.resolve(first.manifest_digest.as_ref()).unwrap();
    assert_eq!(by_digest.descriptor.digest(), &first.manifest_digest);
    let pinned = format!("m@{}", second.manifest_digest);
    assert_eq!(
        store.resolve(&pinned).unwrap().descriptor.digest(),
        &second.manifest_digest
    );
}
