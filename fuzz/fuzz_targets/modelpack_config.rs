//! The ModelPack config parser and validator
//! (`ferry_spec::config::ModelPackConfig::from_json`) on arbitrary bytes.
//!
//! Invariants: never panics; parsing then validating separately agrees with
//! `from_json`; a config that validates serializes (plainly and canonically)
//! to JSON that parses and validates again into the same config, and whose
//! canonical form is a fixed point.

#![no_main]

use ferry_spec::config::ModelPackConfig;
use ferry_spec::json::canonical_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let parsed = serde_json::from_slice::<ModelPackConfig>(bytes);
    let config = match ModelPackConfig::from_json(bytes) {
        Ok(config) => config,
        Err(error) => {
            if let Ok(shaped) = parsed {
                assert!(
                    shaped.validate().is_err(),
                    "from_json refused a config that parses and validates: {error}"
                );
            }
            return;
        }
    };
    let shaped = parsed.expect("from_json accepted what serde refuses");
    assert_eq!(shaped, config);
    config.validate().expect("validate() is not stable");

    let plain = serde_json::to_vec(&config).expect("a valid config serializes");
    let again = ModelPackConfig::from_json(&plain).unwrap_or_else(|e| {
        panic!(
            "re-serialized config does not validate: {e}\n{}",
            String::from_utf8_lossy(&plain)
        )
    });
    assert_eq!(again, config, "serde round trip changed the config");

    let canonical = canonical_json(&config).expect("canonical JSON");
    let again = ModelPackConfig::from_json(&canonical).unwrap_or_else(|e| {
        panic!(
            "canonical config does not validate: {e}\n{}",
            String::from_utf8_lossy(&canonical)
        )
    });
    assert_eq!(again, config, "canonical round trip changed the config");
    assert_eq!(
        canonical_json(&again).expect("canonical JSON"),
        canonical,
        "canonical JSON is not a fixed point"
    );
});
