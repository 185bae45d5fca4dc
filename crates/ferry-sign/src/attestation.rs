//! Attestations about an artifact: a DSSE-signed in-toto statement whose
//! subject is the artifact's manifest digest and whose predicate says
//! something about it (ferry's scan report). Stored as a bundle referrer,
//! as cosign stores attestations.

use std::collections::BTreeMap;

use ferry_spec::oci::Digest;

use crate::bundle::Bundle;
use crate::dsse::Envelope;
use crate::error::{Result, SignError};
use crate::keys::{KeyDescription, PrivateKey, PublicKey};
use crate::media::IN_TOTO_PAYLOAD_TYPE;
use crate::statement::{Statement, Subject};

/// What a verified attestation says.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAttestation {
    /// The key that verified it.
    pub key: KeyDescription,
    /// The predicate, as signed.
    pub predicate: serde_json::Value,
}

/// A bundle attesting `predicate` (of `predicate_type`) about the manifest
/// `manifest_digest`.
pub fn sign_attestation(
    key: &PrivateKey,
    manifest_digest: &Digest,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Vec<u8> {
    let subject = Subject {
        name: String::new(),
        digest: BTreeMap::from([(
            manifest_digest.algorithm().to_string(),
            manifest_digest.digest().to_string(),
        )]),
        annotations: None,
    };
    let statement = Statement::new(vec![subject], predicate_type, predicate);
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), key);
    Bundle::new(envelope, &key.public_key().description().fingerprint).to_json()
}

/// Verifies an attestation bundle with `keys`: of `predicate_type`, about
/// exactly `expected` (an attestation of another manifest is a
/// [`SignError::DigestMismatch`]).
pub fn verify_attestation(
    bundle: &[u8],
    keys: &[PublicKey],
    predicate_type: &str,
    expected: &Digest,
) -> Result<VerifiedAttestation> {
    let bundle = Bundle::from_json(bundle)?;
    let key = bundle.dsse_envelope.verify(IN_TOTO_PAYLOAD_TYPE, keys)?;
    let statement = Statement::from_json(&bundle.dsse_envelope.payload)?;
    statement.expect_predicate_type(predicate_type)?;
    let about = |subject: &Subject| {
        subject
            .digest
            .get(expected.algorithm().as_ref())
            .map(String::as_str)
            == Some(expected.digest())
    };
    if !statement.subject.iter().any(about) {
        let signed = statement
            .subject
            .iter()
            .flat_map(|s| s.digest.iter())
            .next()
            .and_then(|(algorithm, hex)| {
                ferry_spec::digest::parse_digest(&format!("{algorithm}:{hex}")).ok()
            });
        return match signed {
            Some(signed) => Err(SignError::DigestMismatch {
                signed,
                expected: expected.clone(),
            }),
            None => Err(SignError::malformed("attestation", "no subject digest")),
        };
    }
    Ok(VerifiedAttestation {
        key: key.description(),
        predicate: statement.predicate,
    })
}
