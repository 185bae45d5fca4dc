//! containers-policy.json: loading, discovery, scopes, signedIdentity and
//! evaluation, with a fake verifier standing in for the cryptography.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_sign::policy::{
    CandidateReason, KeyMaterial, ModelSigned, Outcome, Policy, PolicyError, PolicyLocations,
    PolicySource, RejectReason, Requirement, Satisfaction, ScopeMatch, SignatureVerifier, Signed,
    SignedIdentity, TrustRoot,
};
use ferry_spec::Reference;
use ferry_spec::names::parse_reference;

const KEY_A: &[u8] = b"-----BEGIN PUBLIC KEY-----\nA\n-----END PUBLIC KEY-----\n";
const KEY_B: &[u8] = b"-----BEGIN PUBLIC KEY-----\nB\n-----END PUBLIC KEY-----\n";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn reference(s: &str) -> Reference {
    parse_reference(s).unwrap()
}

/// A signature as the fake verifier sees it: which key made it, over which
/// digest, claiming which identity; or, for a model signature, whether its
/// files are the artifact's.
#[derive(Clone)]
struct FakeSig {
    key: &'static [u8],
    digest: String,
    identity: Option<String>,
    malformed: bool,
    model_files_match: Option<bool>,
}

fn sig(key: &'static [u8], digest: &str, identity: &str) -> FakeSig {
    FakeSig {
        key,
        digest: digest.to_string(),
        identity: Some(identity.to_string()),
        malformed: false,
        model_files_match: None,
    }
}

fn model_sig(key: &'static [u8], files_match: bool) -> FakeSig {
    FakeSig {
        key,
        digest: String::new(),
        identity: None,
        malformed: false,
        model_files_match: Some(files_match),
    }
}

/// Verifies a FakeSig when one of the keys has its bytes; records the keys
/// it was handed.
#[derive(Default)]
struct FakeVerifier {
    seen_keys: std::cell::RefCell<Vec<Vec<u8>>>,
}

impl SignatureVerifier<FakeSig> for FakeVerifier {
    fn verify(&self, candidate: &FakeSig, keys: &[KeyMaterial]) -> Result<Option<Signed>, String> {
        *self.seen_keys.borrow_mut() = keys.iter().map(|k| k.pem.clone()).collect();
        if candidate.malformed || candidate.model_files_match.is_some() {
            return Err("not a cosign payload".into());
        }
        Ok(keys
            .iter()
            .find(|k| k.pem == candidate.key)
            .map(|k| Signed {
                manifest_digest: candidate.digest.clone(),
                docker_reference: candidate.identity.clone(),
                key: k.origin.to_string(),
            }))
    }

    fn verify_model(
        &self,
        candidate: &FakeSig,
        keys: &[KeyMaterial],
    ) -> Result<Option<ModelSigned>, String> {
        let Some(files_match) = candidate.model_files_match else {
            return Err("not a model signature".into());
        };
        if !keys.iter().any(|k| k.pem == candidate.key) {
            return Ok(None);
        }
        if !files_match {
            return Err("changed: config.json".into());
        }
        Ok(Some(ModelSigned {
            files: 3,
            key: "a".into(),
        }))
    }
}

struct Keys {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pub");
    let b = dir.path().join("b.pub");
    fs::write(&a, KEY_A).unwrap();
    fs::write(&b, KEY_B).unwrap();
    Keys { _dir: dir, a, b }
}

/// A policy whose only docker scope `scope` holds `requirement`.
fn policy_with(scope: &str, requirement: serde_json::Value) -> Policy {
    let json = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {scope: [requirement]}}
    });
    Policy::from_json(json.to_string().as_bytes()).unwrap()
}

fn sigstore(key: &Path, identity: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"type": "sigstoreSigned", "keyPath": key, "signedIdentity": identity})
}

fn load_error(json: &str) -> String {
    Policy::from_json(json.as_bytes()).unwrap_err().to_string()
}

fn rejection_reason(decision: &ferry_sign::policy::Decision) -> &RejectReason {
    &decision.rejection().expect("rejected").reason
}

// --- the example of the notes ---------------------------------------------

#[test]
fn notes_example_accepts_signed_namespace_and_rejects_the_rest() {
    let keys = keys();
    let json = format!(
        r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"registry.example.com/ns":[{{"type":"sigstoreSigned","keyPath":{:?},"signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
        keys.a
    );
    let policy = Policy::from_json(json.as_bytes()).unwrap();
    let image = reference("registry.example.com/ns/m:v1");
    let signature = sig(KEY_A, &digest('a'), "registry.example.com/ns/m");

    let decision = policy.evaluate(&image, &digest('a'), &[signature], &FakeVerifier::default());
    assert!(decision.is_accepted(), "{decision}");
    assert_eq!(
        decision.to_string(),
        "accepted by transports.docker[\"registry.example.com/ns\"] of inline policy"
    );
    let Outcome::Accepted(satisfied) = &decision.outcome else {
        panic!()
    };
    let Satisfaction::Signature { candidate, signed } = &satisfied[0].by else {
        panic!("{satisfied:?}")
    };
    assert_eq!(
        (*candidate, signed.key.as_str()),
        (0, keys.a.to_str().unwrap())
    );

    let other = reference("registry.example.com/elsewhere/m:v1");
    let decision = policy.evaluate(
        &other,
        &digest('a'),
        &[] as &[FakeSig],
        &FakeVerifier::default(),
    );
    assert_eq!(decision.scope, ScopeMatch::Default);
    assert!(matches!(rejection_reason(&decision), RejectReason::Reject));
    assert_eq!(
        decision.to_string(),
        "rejected by default[0] (reject) of inline policy: the policy rejects these images"
    );
}

// --- scopes ------------------------------------------------------------------

#[test]
fn scope_precedence_each_step() {
    let image = reference("a.b.example.com:5000/ns1/ns2/m:v1");
    let most_to_least_specific = [
        "a.b.example.com:5000/ns1/ns2/m:v1",
        "a.b.example.com:5000/ns1/ns2/m",
        "a.b.example.com:5000/ns1/ns2",
        "a.b.example.com:5000/ns1",
        "a.b.example.com:5000",
        "*.b.example.com",
        "*.example.com",
        "",
    ];
    for (i, expected) in most_to_least_specific.iter().enumerate() {
        // Only this scope and the less specific ones are present.
        let scopes: serde_json::Map<_, _> = most_to_least_specific[i..]
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    serde_json::json!([{"type": "insecureAcceptAnything"}]),
                )
            })
            .collect();
        let json =
            serde_json::json!({"default": [{"type": "reject"}], "transports": {"docker": scopes}});
        let policy = Policy::from_json(json.to_string().as_bytes()).unwrap();
        let scoped = policy.requirements_for(&image);
        assert_eq!(scoped.scope, ScopeMatch::Docker(expected.to_string()));
        assert_eq!(scoped.requirements, [Requirement::InsecureAcceptAnything]);
    }
    let only_default = Policy::from_json(br#"{"default":[{"type":"reject"}]}"#).unwrap();
    let scoped = only_default.requirements_for(&image);
    assert_eq!(scoped.scope, ScopeMatch::Default);
    assert_eq!(scoped.requirements, [Requirement::Reject]);
}

#[test]
fn unrelated_scopes_do_not_match() {
    let policy = Policy::from_json(
        br#"{"default":[{"type":"reject"}],"transports":{"docker":{
            "example.com/ns":[{"type":"insecureAcceptAnything"}],
            "*.example.com":[{"type":"insecureAcceptAnything"}],
            "example.com:5000":[{"type":"insecureAcceptAnything"}]}}}"#,
    )
    .unwrap();
    // A namespace matches on component boundaries only; a wildcard matches
    // sub-domains, not the domain itself; a host scope keeps its port.
    for image in ["example.com/nsx/a", "example.com/a", "example.com:5001/a"] {
        let scoped = policy.requirements_for(&reference(image));
        assert_eq!(scoped.scope, ScopeMatch::Default, "{image}");
    }
    let scoped = policy.requirements_for(&reference("x.example.com/a"));
    assert_eq!(scoped.scope, ScopeMatch::Docker("*.example.com".into()));
}

#[test]
fn docker_hub_names_are_normalized() {
    let policy = Policy::from_json(
        br#"{"default":[{"type":"reject"}],"transports":{"docker":{
            "docker.io/library/busybox":[{"type":"insecureAcceptAnything"}],
            "docker.io/library/alpine:3":[{"type":"insecureAcceptAnything"}],
            "docker.io/org":[{"type":"insecureAcceptAnything"}]}}}"#,
    )
    .unwrap();
    for (image, scope) in [
        ("busybox", "docker.io/library/busybox"),
        ("busybox:1.36", "docker.io/library/busybox"),
        ("docker.io/busybox", "docker.io/library/busybox"),
        (
            "index.docker.io/library/busybox",
            "docker.io/library/busybox",
        ),
        ("alpine:3", "docker.io/library/alpine:3"),
        ("org/m", "docker.io/org"),
    ] {
        let scoped = policy.requirements_for(&reference(image));
        assert_eq!(scoped.scope, ScopeMatch::Docker(scope.into()), "{image}");
    }
    assert_eq!(
        policy.requirements_for(&reference("alpine:4")).scope,
        ScopeMatch::Default
    );
}

#[test]
fn digest_references_use_digest_scopes_and_a_digest_beats_a_tag() {
    let d = digest('d');
    let json = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {
            format!("r.example/m@{d}"): [{"type": "insecureAcceptAnything"}],
            "r.example/m:v1": [{"type": "insecureAcceptAnything"}],
        }}
    });
    let policy = Policy::from_json(json.to_string().as_bytes()).unwrap();
    let by_digest = ScopeMatch::Docker(format!("r.example/m@{d}"));
    assert_eq!(
        policy
            .requirements_for(&reference(&format!("r.example/m@{d}")))
            .scope,
        by_digest
    );
    assert_eq!(
        policy
            .requirements_for(&reference(&format!("r.example/m:v1@{d}")))
            .scope,
        by_digest
    );
    assert_eq!(
        policy.requirements_for(&reference("r.example/m:v1")).scope,
        ScopeMatch::Docker("r.example/m:v1".into())
    );
}

#[test]
fn other_transports_are_kept_but_not_consulted() {
    let policy = Policy::from_json(
        br#"{"default":[{"type":"reject"}],"transports":{
            "atomic":{"r.example/ns":[{"type":"insecureAcceptAnything"}]},
            "docker-daemon":{"":[{"type":"insecureAcceptAnything"}]},
            "oci":{"/var/lib/images":[{"type":"insecureAcceptAnything"}]}}}"#,
    )
    .unwrap();
    assert_eq!(policy.transport("atomic").unwrap().len(), 1);
    assert!(
        policy
            .transport("oci")
            .unwrap()
            .contains_key("/var/lib/images")
    );
    let scoped = policy.requirements_for(&reference("r.example/ns/m"));
    assert_eq!(scoped.scope, ScopeMatch::Default);
}

// --- signedIdentity ------------------------------------------------------------

#[test]
fn match_exact() {
    let rule = SignedIdentity::MatchExact;
    let image = reference("r.example/m:v1");
    assert!(rule.matches(&image, "r.example/m:v1"));
    let error = rule.check(&image, "r.example/m:v2").unwrap_err();
    assert_eq!(
        error.to_string(),
        "identity r.example/m:v2 does not match r.example/m:v1 (matchExact)"
    );
    // A signature naming only the repository never matches exactly.
    let error = rule.check(&image, "r.example/m").unwrap_err();
    assert!(error.reason.contains("names no tag"), "{error}");
    // `latest` is implied for the image, never for the signature.
    assert!(rule.matches(&reference("r.example/m"), "r.example/m:latest"));
    // Pulled by digest: no signature can name it.
    let by_digest = reference(&format!("r.example/m@{}", digest('a')));
    let error = rule
        .check(&by_digest, &format!("r.example/m@{}", digest('a')))
        .unwrap_err();
    assert!(error.reason.contains("named by digest"), "{error}");
}

#[test]
fn match_repo_digest_or_exact() {
    let rule = SignedIdentity::MatchRepoDigestOrExact;
    let by_tag = reference("r.example/m:v1");
    assert!(rule.matches(&by_tag, "r.example/m:v1"));
    assert!(!rule.matches(&by_tag, "r.example/m:v2"));
    let by_digest = reference(&format!("r.example/m@{}", digest('a')));
    assert!(rule.matches(&by_digest, "r.example/m:any-tag"));
    let error = rule.check(&by_digest, "r.example/other:v1").unwrap_err();
    assert_eq!(
        error.to_string(),
        "identity r.example/other does not match r.example/m (matchRepoDigestOrExact)"
    );
    // cosign's repository-only claims need matchRepository, as in podman.
    let error = rule.check(&by_digest, "r.example/m").unwrap_err();
    assert!(error.reason.contains("use matchRepository"), "{error}");
}

#[test]
fn match_repository_ignores_tags_but_not_repositories() {
    let rule = SignedIdentity::MatchRepository;
    let image = reference("m:latest");
    assert!(rule.matches(&image, "docker.io/library/m"));
    assert!(rule.matches(&image, "m:v3"));
    let error = rule.check(&image, "docker.io/other/x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "identity docker.io/other/x does not match docker.io/library/m (matchRepository)"
    );
}

#[test]
fn signature_replayed_from_another_repository_is_rejected() {
    let keys = keys();
    let policy = policy_with(
        "r.example",
        sigstore(&keys.a, serde_json::json!({"type": "matchRepository"})),
    );
    // A genuine signature of r.example/public over the same content.
    let replayed = sig(KEY_A, &digest('a'), "r.example/public");
    let image = reference("r.example/private:v1");
    let decision = policy.evaluate(&image, &digest('a'), &[replayed], &FakeVerifier::default());
    assert!(!decision.is_accepted());
    assert!(
        decision.to_string().ends_with(
            "no signature satisfies it: signature 0: identity r.example/public does not match r.example/private (matchRepository)"
        ),
        "{decision}"
    );
}

#[test]
fn exact_reference_and_exact_repository_compare_with_the_configured_value() {
    let image = reference("mirror.example/m:v1");
    let exact = SignedIdentity::ExactReference {
        docker_reference: "vendor.example/m:v1".into(),
    };
    assert!(exact.matches(&image, "vendor.example/m:v1"));
    assert!(!exact.matches(&image, "mirror.example/m:v1"));
    assert!(!exact.matches(&image, "vendor.example/m:v2"));
    let repository = SignedIdentity::ExactRepository {
        docker_repository: "vendor.example/m".into(),
    };
    assert!(repository.matches(&image, "vendor.example/m:v9"));
    assert!(!repository.matches(&image, "mirror.example/m:v1"));

    // Loaded from JSON, the values are normalized.
    let keys = keys();
    let policy = policy_with(
        "",
        sigstore(
            &keys.a,
            serde_json::json!({"type": "exactReference", "dockerReference": "busybox:1"}),
        ),
    );
    let Requirement::SigstoreSigned {
        signed_identity, ..
    } = &policy.transport("docker").unwrap()[""][0]
    else {
        panic!()
    };
    assert_eq!(
        signed_identity,
        &SignedIdentity::ExactReference {
            docker_reference: "docker.io/library/busybox:1".into()
        }
    );
}

#[test]
fn remap_identity_replaces_prefixes_on_component_boundaries() {
    let rule = SignedIdentity::RemapIdentity {
        prefix: "example.com/ns".into(),
        signed_prefix: "vendor.example/products".into(),
    };
    assert!(rule.matches(
        &reference("example.com/ns/a:v1"),
        "vendor.example/products/a:v1"
    ));
    assert!(!rule.matches(&reference("example.com/ns/a:v1"), "example.com/ns/a:v1"));
    assert!(!rule.matches(
        &reference("example.com/ns/a:v1"),
        "vendor.example/products/a:v2"
    ));
    // `example.com/nsx` is not under `example.com/ns`: not remapped.
    let nsx = reference("example.com/nsx/a:v1");
    assert!(!rule.matches(&nsx, "vendor.example/productsx/a:v1"));
    assert!(!rule.matches(&nsx, "vendor.example/products/nsx/a:v1"));
    assert!(rule.matches(&nsx, "example.com/nsx/a:v1"));
    // By digest the repositories must match after remapping.
    let by_digest = reference(&format!("example.com/ns/a@{}", digest('a')));
    assert!(rule.matches(&by_digest, "vendor.example/products/a:v1"));
    assert!(!rule.matches(&by_digest, "vendor.example/products/b:v1"));

    // A host prefix, and a mirror of Docker Hub.
    let host = SignedIdentity::RemapIdentity {
        prefix: "mirror.example:5000".into(),
        signed_prefix: "docker.io".into(),
    };
    assert!(host.matches(
        &reference("mirror.example:5000/library/busybox:1"),
        "busybox:1"
    ));
    assert!(!host.matches(
        &reference("mirror.example:5001/library/busybox:1"),
        "busybox:1"
    ));
}

#[test]
fn an_unparsable_signed_identity_is_a_mismatch_with_a_reason() {
    let image = reference("r.example/m:v1");
    for rule in [SignedIdentity::MatchExact, SignedIdentity::MatchRepository] {
        let error = rule.check(&image, "NOT A REFERENCE").unwrap_err();
        assert!(error.reason.contains("is not a reference"), "{error}");
    }
}

// --- evaluation ----------------------------------------------------------------

#[test]
fn every_requirement_must_be_satisfied() {
    let policy =
        Policy::from_json(br#"{"default":[{"type":"insecureAcceptAnything"},{"type":"reject"}]}"#)
            .unwrap();
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[] as &[FakeSig],
        &FakeVerifier::default(),
    );
    let rejection = decision.rejection().unwrap();
    assert_eq!(
        (rejection.requirement, rejection.requirement_type),
        (1, "reject")
    );

    let keys = keys();
    let both_keys = serde_json::json!({"type": "sigstoreSigned", "keyPath": keys.b, "signedIdentity": {"type": "matchRepository"}});
    let json = serde_json::json!({"default": [sigstore(&keys.a, serde_json::json!({"type": "matchRepository"})), both_keys]});
    let policy = Policy::from_json(json.to_string().as_bytes()).unwrap();
    let image = reference("m");
    let only_a = [sig(KEY_A, &digest('a'), "m")];
    let decision = policy.evaluate(&image, &digest('a'), &only_a, &FakeVerifier::default());
    assert_eq!(decision.rejection().unwrap().requirement, 1, "{decision}");
    let a_and_b = [sig(KEY_A, &digest('a'), "m"), sig(KEY_B, &digest('a'), "m")];
    let decision = policy.evaluate(&image, &digest('a'), &a_and_b, &FakeVerifier::default());
    let Outcome::Accepted(satisfied) = &decision.outcome else {
        panic!("{decision}")
    };
    let candidates: Vec<_> = satisfied
        .iter()
        .map(|s| match &s.by {
            Satisfaction::Signature { candidate, .. }
            | Satisfaction::ModelSignature { candidate, .. }
            | Satisfaction::ScanReport { candidate, .. } => *candidate,
            Satisfaction::AcceptAnything => usize::MAX,
        })
        .collect();
    assert_eq!(candidates, [0, 1]);
}

#[test]
fn each_candidate_failure_is_explained() {
    let keys = keys();
    let policy = policy_with(
        "",
        sigstore(&keys.a, serde_json::json!({"type": "matchRepository"})),
    );
    let image = reference("r.example/m:v1");
    let candidates = [
        sig(KEY_B, &digest('a'), "r.example/m"),
        sig(KEY_A, &digest('b'), "r.example/m"),
        FakeSig {
            identity: None,
            ..sig(KEY_A, &digest('a'), "")
        },
        FakeSig {
            malformed: true,
            ..sig(KEY_A, &digest('a'), "r.example/m")
        },
    ];
    let decision = policy.evaluate(&image, &digest('a'), &candidates, &FakeVerifier::default());
    let RejectReason::NoCandidate(failures) = rejection_reason(&decision) else {
        panic!("{decision}")
    };
    let reasons: Vec<_> = failures.iter().map(|f| f.reason.clone()).collect();
    assert_eq!(
        reasons,
        [
            CandidateReason::NoKeyVerifies,
            CandidateReason::DigestMismatch {
                signed: digest('b'),
                expected: digest('a')
            },
            CandidateReason::NoIdentity("matchRepository"),
            CandidateReason::Malformed("not a cosign payload".into()),
        ]
    );
    let message = decision.to_string();
    for part in [
        "rejected by transports.docker[\"\"][0] (sigstoreSigned) of inline policy",
        "signature 0: no key verifies it",
        &format!(
            "signature 1: signed digest {} is not {}",
            digest('b'),
            digest('a')
        ),
        "signature 2: it claims no identity (matchRepository needs one)",
        "signature 3: malformed: not a cosign payload",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

#[test]
fn no_signatures_is_a_rejection() {
    let keys = keys();
    let policy = policy_with(
        "",
        sigstore(&keys.a, serde_json::json!({"type": "matchRepository"})),
    );
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[] as &[FakeSig],
        &FakeVerifier::default(),
    );
    assert!(matches!(
        rejection_reason(&decision),
        RejectReason::NoSignatures
    ));
    assert!(
        decision.to_string().ends_with("no signatures found"),
        "{decision}"
    );
}

#[test]
fn keys_come_from_key_paths_and_key_data() {
    let keys = keys();
    let verifier = FakeVerifier::default();
    let json = serde_json::json!({"default": [{"type": "sigstoreSigned", "keyPaths": [keys.a, keys.b], "signedIdentity": {"type": "matchRepository"}}]});
    let policy = Policy::from_json(json.to_string().as_bytes()).unwrap();
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[sig(KEY_B, &digest('a'), "m")],
        &verifier,
    );
    assert!(decision.is_accepted(), "{decision}");
    assert_eq!(
        *verifier.seen_keys.borrow(),
        [KEY_A.to_vec(), KEY_B.to_vec()]
    );

    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(KEY_B);
    let json = serde_json::json!({"default": [{"type": "sigstoreSigned", "keyData": data, "signedIdentity": {"type": "matchRepository"}}]});
    let policy = Policy::from_json(json.to_string().as_bytes()).unwrap();
    let Requirement::SigstoreSigned { trust_root, .. } = &policy.default_requirements()[0] else {
        panic!()
    };
    assert_eq!(trust_root, &TrustRoot::KeyData(KEY_B.to_vec()));
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[sig(KEY_B, &digest('a'), "m")],
        &verifier,
    );
    assert!(decision.is_accepted(), "{decision}");
    assert_eq!(*verifier.seen_keys.borrow(), [KEY_B.to_vec()]);
}

#[test]
fn an_unreadable_or_oversized_key_rejects_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pub");
    let policy = policy_with(
        "",
        sigstore(&missing, serde_json::json!({"type": "matchRepository"})),
    );
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[sig(KEY_A, &digest('a'), "m")],
        &FakeVerifier::default(),
    );
    assert!(matches!(rejection_reason(&decision), RejectReason::Key(_)));
    assert!(
        decision
            .to_string()
            .contains(&format!("cannot read key file {}", missing.display())),
        "{decision}"
    );

    let big = dir.path().join("big.pub");
    fs::write(&big, vec![b'a'; 64 * 1024 + 1]).unwrap();
    let policy = policy_with(
        "",
        sigstore(&big, serde_json::json!({"type": "matchRepository"})),
    );
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[sig(KEY_A, &digest('a'), "m")],
        &FakeVerifier::default(),
    );
    assert!(
        decision.to_string().contains("is larger than 65536 bytes"),
        "{decision}"
    );
}

#[test]
fn gpg_and_keyless_requirements_never_accept() {
    let keys = keys();
    let verifier = FakeVerifier::default();
    let good = [sig(KEY_A, &digest('a'), "m")];
    for (requirement, message) in [
        (
            serde_json::json!({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/gpg.pub"}),
            "GPG signatures are not supported",
        ),
        (
            serde_json::json!({"type": "sigstoreSigned", "fulcio": {"caPath": "/ca.pem", "oidcIssuer": "https://x", "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/r.pub"}),
            "keyless (Fulcio) verification is not supported (the requirement sets fulcio)",
        ),
        (
            serde_json::json!({"type": "sigstoreSigned", "keyPath": keys.a, "rekorPublicKeyData": "eA==", "signedIdentity": {"type": "matchRepository"}}),
            "keyless (Fulcio) verification is not supported (the requirement sets rekorPublicKeyData)",
        ),
        (
            serde_json::json!({"type": "sigstoreSigned", "pki": {"caRootsPath": "/roots.pem"}}),
            "keyless (Fulcio) verification is not supported (the requirement sets pki)",
        ),
    ] {
        let policy = policy_with("", requirement);
        let decision = policy.evaluate(&reference("m"), &digest('a'), &good, &verifier);
        assert!(!decision.is_accepted());
        assert!(decision.to_string().ends_with(message), "{decision}");
    }
}

// --- load errors -----------------------------------------------------------------

#[test]
fn unknown_fields_types_and_keys_are_errors_with_their_location() {
    let error = load_error(
        r#"{"default":[{"type":"reject"}],"transports":{"docker":{"registry.example.com/ns":[{"type":"sigstoreSigned","keyPth":"/k.pub"}]}}}"#,
    );
    assert!(
        error.starts_with("inline policy: transports.docker[\"registry.example.com/ns\"][0]: unknown field `keyPth`"),
        "{error}"
    );
    let error = load_error(r#"{"default":[{"type":"acceptEverything"}]}"#);
    assert!(
        error.contains("default[0].type: unknown variant `acceptEverything`"),
        "{error}"
    );
    let error = load_error(r#"{"default":[{"type":"reject","why":"no"}]}"#);
    assert!(error.contains("default[0]: unknown field `why`"), "{error}");
    let error = load_error(r#"{"default":[{"type":"insecureAcceptAnything"}],"defaults":[]}"#);
    assert!(
        error.starts_with("inline policy: top level: unknown field `defaults`"),
        "{error}"
    );
    let error = load_error(r#"{"transports":{}}"#);
    assert!(error.contains("missing field `default`"), "{error}");
    let error = load_error(r#"{"default":[{"keyPath":"/k"}]}"#);
    assert!(error.contains("missing field `type`"), "{error}");
    let error = load_error(
        r#"{"default":[{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"a.example","signedPrefx":"b.example"}}]}"#,
    );
    assert!(
        error.contains("default[0]: unknown field `signedPrefx`"),
        "{error}"
    );
    let error = load_error(
        r#"{"default":[{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"matchEverything"}}]}"#,
    );
    assert!(
        error.contains("unknown variant `matchEverything`"),
        "{error}"
    );
}

#[test]
fn deeply_nested_json_is_an_error() {
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let error = load_error(&format!(
        r#"{{"default":[{{"type":"sigstoreSigned","fulcio":{nested}}}]}}"#
    ));
    assert!(error.contains("recursion limit exceeded"), "{error}");
}

#[test]
fn duplicated_keys_are_errors() {
    let error = load_error(
        r#"{"default":[{"type":"reject"}],"transports":{"docker":{"r.example":[{"type":"reject"}],"r.example":[{"type":"insecureAcceptAnything"}]}}}"#,
    );
    assert!(
        error.contains("transports.docker: \"r.example\" is given twice"),
        "{error}"
    );
    let error =
        load_error(r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","keyPath":"/b"}]}"#);
    assert!(error.contains("duplicate field `keyPath`"), "{error}");
    // The same type given twice, and the same top-level key: never the laxer one.
    let error = load_error(r#"{"default":[{"type":"reject","type":"insecureAcceptAnything"}]}"#);
    assert!(error.contains("duplicate field `type`"), "{error}");
    let error = load_error(
        r#"{"default":[{"type":"reject"}],"default":[{"type":"insecureAcceptAnything"}]}"#,
    );
    assert!(error.contains("duplicate field `default`"), "{error}");
}

#[test]
fn empty_requirement_lists_are_errors() {
    let error = load_error(r#"{"default":[]}"#);
    assert!(
        error.starts_with("inline policy: default: an empty requirement list"),
        "{error}"
    );
    let error =
        load_error(r#"{"default":[{"type":"reject"}],"transports":{"docker":{"r.example":[]}}}"#);
    assert!(
        error.contains("transports.docker[\"r.example\"]: an empty requirement list"),
        "{error}"
    );
}

#[test]
fn key_fields_are_checked() {
    let cases = [
        (
            r#"{"type":"sigstoreSigned","keyPath":"/k","keyData":"eA=="}"#,
            "exactly one of keyPath, keyPaths, keyData: keyPath and keyData are set",
        ),
        (
            r#"{"type":"sigstoreSigned"}"#,
            "exactly one of keyPath, keyPaths, keyData: none is set",
        ),
        (
            r#"{"type":"sigstoreSigned","keyPath":"keys/cosign.pub"}"#,
            "keyPath \"keys/cosign.pub\" is not an absolute path",
        ),
        (
            r#"{"type":"sigstoreSigned","keyPaths":["/a","b"]}"#,
            "keyPaths entry \"b\" is not an absolute path",
        ),
        (
            r#"{"type":"sigstoreSigned","keyPaths":[]}"#,
            "keyPaths is empty",
        ),
        (
            r#"{"type":"sigstoreSigned","keyData":"not base64!"}"#,
            "keyData is not base64",
        ),
        (
            r#"{"type":"sigstoreSigned","keyData":""}"#,
            "keyData is empty",
        ),
    ];
    for (requirement, expected) in cases {
        let error = load_error(&format!(r#"{{"default":[{requirement}]}}"#));
        assert!(error.starts_with("inline policy: default[0]: "), "{error}");
        assert!(error.contains(expected), "{requirement}: {error}");
    }
}

#[test]
fn scopes_and_identities_are_checked() {
    let scope_error = |scope: &str| {
        load_error(&format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{{scope:?}:[{{"type":"reject"}}]}}}}}}"#
        ))
    };
    let error = scope_error("busybox");
    assert!(
        error.contains("transports.docker[\"busybox\"]: invalid scope"),
        "{error}"
    );
    assert!(error.contains("fully expanded"), "{error}");
    assert!(scope_error("example*.com").contains("wildcard"));
    assert!(scope_error("r.example/UPPER").contains("lowercase"));

    let identity_error = |identity: &str| {
        load_error(&format!(
            r#"{{"default":[{{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{identity}}}]}}"#
        ))
    };
    let error = identity_error(r#"{"type":"exactReference","dockerReference":"r.example/m"}"#);
    assert!(
        error.contains(
            "default[0].signedIdentity: dockerReference \"r.example/m\" needs a tag or digest"
        ),
        "{error}"
    );
    let error = identity_error(r#"{"type":"exactRepository","dockerRepository":"r.example/m:v1"}"#);
    assert!(error.contains("without tag or digest"), "{error}");
    let error = identity_error(r#"{"type":"exactReference","dockerReference":"Not/Valid:v1"}"#);
    assert!(error.contains("is not a reference"), "{error}");
    let error = identity_error(
        r#"{"type":"remapIdentity","prefix":"library","signedPrefix":"docker.io/library"}"#,
    );
    assert!(
        error.contains("prefix: \"library\" does not start with a registry host"),
        "{error}"
    );
    let error = identity_error(
        r#"{"type":"remapIdentity","prefix":"r.example/ns","signedPrefix":"r.example/ns:v1"}"#,
    );
    assert!(error.contains("signedPrefix"), "{error}");
}

#[test]
fn json_errors() {
    for (input, expected) in [
        (
            "not json",
            "inline policy is not valid JSON: expected ident",
        ),
        (
            r#"{"default":[{"type":"reject"}]"#,
            "inline policy is not valid JSON: EOF",
        ),
        (
            r#"{"default":[{"type":"reject"}]} {}"#,
            "inline policy is not valid JSON: trailing characters",
        ),
        (
            r#"{"default":{"type":"reject"}}"#,
            "inline policy: default: invalid type: map, expected a sequence",
        ),
    ] {
        let error = load_error(input);
        assert!(error.starts_with(expected), "{input}: {error}");
    }
}

// --- files and discovery ------------------------------------------------------------

#[test]
fn policy_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.json");

    fs::write(&path, "{not json").unwrap();
    let error = Policy::from_file(&path).unwrap_err();
    assert!(matches!(error, PolicyError::Syntax { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{} is not valid JSON", path.display())),
        "{error}"
    );

    let mut big = br#"{"default":[{"type":"reject"}]}"#.to_vec();
    big.resize(4 * 1024 * 1024 + 1, b' ');
    fs::write(&path, &big).unwrap();
    let error = Policy::from_file(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "policy file {} is larger than 4194304 bytes",
            path.display()
        )
    );

    let missing = dir.path().join("nope.json");
    let error = Policy::discover(Some(&missing)).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("policy file {} does not exist", missing.display())
    );

    let error = Policy::from_file(dir.path()).unwrap_err();
    assert!(matches!(error, PolicyError::NotAFile { .. }), "{error}");
}

fn write_policy(path: &Path, requirement: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(
        path,
        format!(r#"{{"default":[{{"type":"{requirement}"}}]}}"#),
    )
    .unwrap();
}

#[test]
fn discovery_order() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    let system = dir.path().join("etc/containers/policy.json");
    let explicit = dir.path().join("explicit.json");
    let user = xdg.join("ferry/policy.json");
    let locations = PolicyLocations {
        system: system.clone(),
        ..PolicyLocations::from_env(Some(xdg.clone().into()), None)
    };
    assert_eq!(locations.user.as_deref(), Some(user.as_path()));

    // Nothing anywhere: accept anything, and say so.
    let policy = Policy::discover_in(None, &locations).unwrap();
    assert_eq!(
        policy.source(),
        &PolicySource::NotFound {
            searched: vec![user.clone(), system.clone()]
        }
    );
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[] as &[FakeSig],
        &FakeVerifier::default(),
    );
    assert!(decision.is_accepted());
    assert_eq!(
        decision.to_string(),
        format!(
            "accepted by default of no policy file (looked at {}, {}), so anything is accepted",
            user.display(),
            system.display()
        )
    );

    write_policy(&system, "reject");
    let policy = Policy::discover_in(None, &locations).unwrap();
    assert_eq!(policy.source(), &PolicySource::System(system.clone()));
    assert_eq!(policy.default_requirements(), [Requirement::Reject]);

    write_policy(&user, "insecureAcceptAnything");
    let policy = Policy::discover_in(None, &locations).unwrap();
    assert_eq!(policy.source(), &PolicySource::User(user.clone()));

    write_policy(&explicit, "reject");
    let policy = Policy::discover_in(Some(&explicit), &locations).unwrap();
    assert_eq!(policy.source(), &PolicySource::Explicit(explicit.clone()));

    // An invalid user policy is an error, not a fall back to the system's.
    fs::write(&user, "{}").unwrap();
    let error = Policy::discover_in(None, &locations).unwrap_err();
    assert!(
        error.to_string().starts_with(&user.display().to_string()),
        "{error}"
    );
}

#[test]
fn user_location_follows_xdg_then_home() {
    let home = Some("/home/u".into());
    assert_eq!(
        PolicyLocations::from_env(Some("/xdg".into()), home.clone()).user,
        Some(PathBuf::from("/xdg/ferry/policy.json"))
    );
    // A relative or empty XDG_CONFIG_HOME is ignored, as the XDG spec says.
    for xdg in ["relative/dir", ""] {
        assert_eq!(
            PolicyLocations::from_env(Some(xdg.into()), home.clone()).user,
            Some(PathBuf::from("/home/u/.config/ferry/policy.json"))
        );
    }
    let nowhere = PolicyLocations::from_env(None, None);
    assert_eq!(nowhere.user, None);
    assert_eq!(nowhere.system, PathBuf::from("/etc/containers/policy.json"));
}

#[test]
fn signed_identity_defaults_to_match_repo_digest_or_exact() {
    let keys = keys();
    let json = serde_json::json!({"default": [{"type": "sigstoreSigned", "keyPath": keys.a}]});
    let policy = Policy::from_json(json.to_string().as_bytes()).unwrap();
    let Requirement::SigstoreSigned {
        signed_identity, ..
    } = &policy.default_requirements()[0]
    else {
        panic!()
    };
    assert_eq!(signed_identity, &SignedIdentity::MatchRepoDigestOrExact);

    let image = reference("r.example/m:v1");
    let verifier = FakeVerifier::default();
    let tagged = [sig(KEY_A, &digest('a'), "r.example/m:v1")];
    assert!(
        policy
            .evaluate(&image, &digest('a'), &tagged, &verifier)
            .is_accepted()
    );
    // A cosign claim names the repository only: refused, with the way out.
    let cosign = [sig(KEY_A, &digest('a'), "r.example/m")];
    let decision = policy.evaluate(&image, &digest('a'), &cosign, &verifier);
    assert!(
        decision.to_string().contains("use matchRepository"),
        "{decision}"
    );
}

// --- modelSigned ----------------------------------------------------------------

#[test]
fn model_signed_needs_a_model_signature_by_a_key_over_the_artifacts_files() {
    let keys = keys();
    let policy = policy_with(
        "r.example",
        serde_json::json!({"type": "modelSigned", "keyPath": keys.a}),
    );
    assert_eq!(
        policy.transport("docker").unwrap()["r.example"],
        [Requirement::ModelSigned {
            trust_root: TrustRoot::KeyPaths(vec![keys.a.clone()])
        }]
    );
    let image = reference("r.example/m:v1");
    let verifier = FakeVerifier::default();
    let judge =
        |candidates: &[FakeSig]| policy.evaluate(&image, &digest('a'), candidates, &verifier);

    let accepted = judge(&[
        sig(KEY_A, &digest('a'), "r.example/m"),
        model_sig(KEY_A, true),
    ]);
    let Outcome::Accepted(satisfied) = &accepted.outcome else {
        panic!("{accepted}")
    };
    assert!(
        matches!(
            satisfied[0].by,
            Satisfaction::ModelSignature { candidate: 1, .. }
        ),
        "{satisfied:?}"
    );

    // A manifest signature alone is not a model signature.
    let decision = judge(&[sig(KEY_A, &digest('a'), "r.example/m")]);
    assert!(
        decision.to_string().contains("not a model signature"),
        "{decision}"
    );
    // Another key; files that differ (named); nothing at all.
    let decision = judge(&[model_sig(KEY_B, true)]);
    assert!(
        decision.to_string().contains("no key verifies it"),
        "{decision}"
    );
    let decision = judge(&[model_sig(KEY_A, false)]);
    assert!(decision.to_string().contains("config.json"), "{decision}");
    let decision = judge(&[]);
    assert!(
        matches!(rejection_reason(&decision), RejectReason::NoSignatures),
        "{decision}"
    );
}

#[test]
fn model_signed_fields_are_checked() {
    for (requirement, expected) in [
        (
            r#"{"type":"modelSigned"}"#,
            "exactly one of keyPath, keyPaths, keyData: none is set",
        ),
        (
            r#"{"type":"modelSigned","keyPath":"rel.pub"}"#,
            "is not an absolute path",
        ),
        (
            r#"{"type":"modelSigned","keyPath":"/k.pub","signedIdentity":{"type":"matchRepository"}}"#,
            "unknown field `signedIdentity`",
        ),
    ] {
        let error = load_error(&format!(r#"{{"default":[{requirement}]}}"#));
        assert!(error.contains(expected), "{requirement}: {error}");
    }
}

/// A verifier that cannot see files (the default `verify_model`) never
/// satisfies `modelSigned`.
#[test]
fn a_verifier_without_files_never_satisfies_model_signed() {
    struct ManifestOnly;
    impl SignatureVerifier<FakeSig> for ManifestOnly {
        fn verify(&self, _: &FakeSig, _: &[KeyMaterial]) -> Result<Option<Signed>, String> {
            Ok(None)
        }
    }
    let keys = keys();
    let policy = policy_with(
        "",
        serde_json::json!({"type": "modelSigned", "keyPath": keys.a}),
    );
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[model_sig(KEY_A, true)],
        &ManifestOnly,
    );
    assert!(!decision.is_accepted(), "{decision}");
    assert!(
        decision
            .to_string()
            .contains("cannot check model signatures"),
        "{decision}"
    );
}

#[test]
fn scanned_fields_parse_and_a_verifier_without_reports_never_satisfies_them() {
    let keys = keys();
    let policy = policy_with(
        "",
        serde_json::json!({"type": "scanned", "keyPath": keys.a, "allowSuspicious": true}),
    );
    assert_eq!(
        policy.transport("docker").unwrap()[""],
        [Requirement::Scanned {
            trust_root: TrustRoot::KeyPaths(vec![keys.a.clone()]),
            allow_suspicious: true,
        }]
    );
    let decision = policy.evaluate(
        &reference("m"),
        &digest('a'),
        &[sig(KEY_A, &digest('a'), "m")],
        &FakeVerifier::default(),
    );
    assert!(!decision.is_accepted());
    assert!(
        decision.to_string().contains("cannot check scan reports"),
        "{decision}"
    );
    let error = load_error(r#"{"default":[{"type":"scanned","keyPath":"/k","verdict":"safe"}]}"#);
    assert!(error.contains("unknown field `verdict`"), "{error}");
}

/// Scan reports as the fake verifier sees them: by KEY_A, with a verdict.
struct FakeScans;
impl SignatureVerifier<(&'static str, &'static [u8])> for FakeScans {
    fn verify(
        &self,
        _: &(&'static str, &'static [u8]),
        _: &[KeyMaterial],
    ) -> Result<Option<Signed>, String> {
        Err("not a signature".into())
    }
    fn verify_scan(
        &self,
        (verdict, key): &(&'static str, &'static [u8]),
        keys: &[KeyMaterial],
    ) -> Result<Option<ferry_sign::policy::ScanAttested>, String> {
        Ok(keys
            .iter()
            .any(|k| k.pem == *key)
            .then(|| ferry_sign::policy::ScanAttested {
                verdict: verdict.to_string(),
                key: "a".into(),
            }))
    }
}

#[test]
fn a_trusted_report_of_danger_outweighs_a_clean_one() {
    let keys = keys();
    let policy = policy_with(
        "",
        serde_json::json!({"type": "scanned", "keyPath": keys.a}),
    );
    let judge = |reports: &[(&'static str, &'static [u8])]| {
        policy.evaluate(&reference("m"), &digest('a'), reports, &FakeScans)
    };
    assert!(judge(&[("safe", KEY_A)]).is_accepted());
    assert!(!judge(&[("suspicious", KEY_A)]).is_accepted());
    let vetoed = judge(&[("safe", KEY_A), ("dangerous", KEY_A)]);
    assert!(!vetoed.is_accepted());
    assert!(
        vetoed.to_string().contains("found dangerous files"),
        "{vetoed}"
    );
    // A report by an untrusted key vetoes nothing.
    assert!(judge(&[("safe", KEY_A), ("dangerous", KEY_B)]).is_accepted());
}
