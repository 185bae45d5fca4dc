//! The ModelPack spec's 27 config vectors: ferry must accept and reject each
//! exactly as `index.json` says. They live in `shared/` beside the
//! repository: without it these tests skip with a note (and fail under
//! `CI=true`).

// Test code may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferry_spec::config::ModelPackConfig;
use ferry_testkit::shared_data;

#[test]
fn every_vector_is_accepted_or_rejected_as_index_json_says() {
    let Some(dir) = shared_data("spec/modelpack/vectors") else {
        return;
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("read index.json"))
            .expect("parse index.json");
    let entries = index.as_array().expect("index.json is an array");
    assert_eq!(entries.len(), 27);
    for entry in entries {
        let file = entry["file"].as_str().expect("file");
        let expect_fail = entry["expect_fail"].as_bool().expect("expect_fail");
        let bytes = std::fs::read(dir.join(file)).expect("read vector");
        let result = ModelPackConfig::from_json(&bytes);
        assert_eq!(
            result.is_err(),
            expect_fail,
            "{file} ({}): got {result:?}",
            entry["comment"]
        );
    }
}

#[test]
fn the_spec_example_config_parses_and_round_trips() {
    let Some(path) = shared_data("spec/modelpack/examples/config-example.json") else {
        return;
    };
    let bytes = std::fs::read(path).expect("read example");
    let config = ModelPackConfig::from_json(&bytes).expect("example is valid");
    let again = serde_json::to_vec(&config).unwrap();
    assert_eq!(ModelPackConfig::from_json(&again).unwrap(), config);
    let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let written: serde_json::Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(original, written);
}
