//! in-toto Statement v1: what a DSSE envelope signs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SignError};
use crate::media::IN_TOTO_STATEMENT_V1;

/// An in-toto statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// Always `https://in-toto.io/Statement/v1`.
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// The kind of predicate.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim; its shape depends on `predicate_type`.
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// A statement's subject: a name and digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// A name (a model directory, an image reference); may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Digests by algorithm, lowercase hex (`{"sha256": "..."}`).
    pub digest: BTreeMap<String, String>,
    /// Annotations (cosign puts `-a key=value` here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, serde_json::Value>>,
}

impl Statement {
    /// A statement of `predicate_type` about `subject`.
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: serde_json::Value) -> Self {
        Statement {
            statement_type: IN_TOTO_STATEMENT_V1.to_string(),
            subject,
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }

    /// Parses a statement and checks its `_type` and that it has a subject.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let statement: Statement = serde_json::from_slice(bytes)
            .map_err(|e| SignError::malformed("in-toto statement", e))?;
        if statement.statement_type != IN_TOTO_STATEMENT_V1 {
            return Err(SignError::Unexpected {
                what: "in-toto statement _type",
                found: statement.statement_type,
                expected: IN_TOTO_STATEMENT_V1.to_string(),
            });
        }
        if statement.subject.is_empty() {
            return Err(SignError::malformed("in-toto statement", "no subject"));
        }
        Ok(statement)
    }

    /// Requires the predicate type to be `expected`.
    pub fn expect_predicate_type(&self, expected: &str) -> Result<()> {
        if self.predicate_type == expected {
            Ok(())
        } else {
            Err(SignError::Unexpected {
                what: "in-toto predicateType",
                found: self.predicate_type.clone(),
                expected: expected.to_string(),
            })
        }
    }

    /// Compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing maps with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
