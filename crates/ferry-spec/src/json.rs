//! Canonical JSON for content-addressed documents.
//!
//! `oci-spec` keeps annotations in a `HashMap`, whose iteration order changes
//! from run to run. Going through `serde_json::Value` (a sorted map, since the
//! `preserve_order` feature is off) gives the same bytes for the same content,
//! which reproducible manifests need.

use serde::Serialize;

/// Serializes `value` compactly with every object's keys sorted.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    serde_json::to_vec(&value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_come_out_sorted_whatever_the_map_order() {
        let mut map = HashMap::new();
        for key in ["zeta", "alpha", "mid", "beta", "omega", "kappa"] {
            map.insert(key.to_string(), 1);
        }
        let bytes = canonical_json(&map).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"alpha":1,"beta":1,"kappa":1,"mid":1,"omega":1,"zeta":1}"#
        );
    }
}
