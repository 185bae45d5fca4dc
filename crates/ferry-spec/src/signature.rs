//! cosign's signature vocabulary: the media types, annotation keys and tag
//! names of its two storage formats (v3 bundles stored as OCI 1.1
//! referrers, and legacy simple signing under the `.sig` tag).

use oci_spec::image::Digest;

/// `artifactType` of a cosign v3 bundle referrer, and its layer's media type.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Annotation saying what a bundle holds.
pub const BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
/// The [`BUNDLE_CONTENT`] of a bundle with a DSSE envelope.
pub const BUNDLE_CONTENT_DSSE: &str = "dsse-envelope";
/// Annotation naming the in-toto predicate type a bundle signs.
pub const BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";
/// The predicate type of `cosign sign`.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The predicate type of an OpenSSF model signature (v1.0), which ferry
/// also stores as a bundle referrer of the artifact whose files it signs.
pub const MODEL_SIGNING_PREDICATE: &str = "https://model_signing/signature/v1.0";
/// The predicate type of ferry's signed scan report (`ferry scan --attach`),
/// stored as a bundle referrer like the others.
pub const SCAN_REPORT_PREDICATE: &str = "https://ferry.dev/attestations/scan/v1";

/// Media type of a legacy signature layer: the exact signed payload.
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation of a legacy signature layer: the base64 DER signature.
pub const COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";

/// The longest tag the distribution grammar allows.
const MAX_TAG_LEN: usize = 128;

/// The legacy signature tag of a manifest, `<alg>-<hex>.sig`, or `None`
/// when that is not a valid tag (a digest too long for the 128-character
/// limit, such as sha512).
pub fn signature_tag(manifest: &Digest) -> Option<String> {
    let tag = format!(
        "{}-{}.sig",
        manifest.algorithm().as_ref(),
        manifest.digest()
    );
    let valid = tag.len() <= MAX_TAG_LEN
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    valid.then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tags_are_cosigns_and_valid_tags() {
        let digest = crate::digest::sha256_digest(b"m");
        assert_eq!(
            signature_tag(&digest).as_deref(),
            Some(format!("sha256-{}.sig", digest.digest()).as_str())
        );
        let long = Digest::try_from(format!("sha512:{}", "ab".repeat(64))).unwrap();
        assert_eq!(signature_tag(&long), None, "over the 128-character limit");
    }
}
