//! Keys: cosign's encrypted format, plain PEM keys, generation, signing.

use ferry_sign::{PrivateKey, PublicKey, SignError, generate};

use crate::common::vector_text;

#[test]
fn cosign_encrypted_key_vector_decrypts_with_the_empty_password() {
    let (Some(key), Some(public)) = (
        vector_text("cosign-encrypted-key/cosign.key"),
        vector_text("cosign-encrypted-key/cosign.pub"),
    ) else {
        return;
    };
    let private = PrivateKey::from_pem(&key, b"").unwrap();
    let public = PublicKey::from_pem(&public).unwrap();
    assert_eq!(private.public_key(), public);
    let signature = private.sign(b"payload");
    public.verify(b"payload", &signature).unwrap();
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    let Some(key) = vector_text("cosign-encrypted-key/cosign.key") else {
        return;
    };
    let err = PrivateKey::from_pem(&key, b"not the password").unwrap_err();
    assert!(matches!(err, SignError::WrongPassword), "{err}");
    assert_eq!(err.to_string(), "wrong password or corrupted key");
}

#[test]
fn generated_keys_round_trip_through_the_encrypted_format() {
    let pair = generate().unwrap();
    let pem = pair.to_encrypted_pem(b"hunter2").unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    let read = PrivateKey::from_pem(&pem, b"hunter2").unwrap();
    let public = PublicKey::from_pem(&pair.public_pem()).unwrap();
    assert_eq!(read.public_key(), public);
    let signature = read.sign(b"message");
    public.verify(b"message", &signature).unwrap();
    assert!(public.verify(b"other message", &signature).is_err());
}

#[test]
fn the_model_signing_hint_is_the_sha256_of_the_pem() {
    let Some(text) = vector_text("model-signing-ec-key/signing-key-pub.pem") else {
        return;
    };
    let key = PublicKey::from_pem(&text).unwrap();
    assert_eq!(key.to_pem(), text);
    assert_eq!(
        key.model_signing_hint(),
        "e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e"
    );
}

#[test]
fn generated_keys_are_written_in_cosigns_exact_json_shape() {
    use base64::Engine as _;
    let pair = generate().unwrap();
    let pem = pair.to_encrypted_pem(b"").unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let json = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let json = String::from_utf8(json).unwrap();
    assert!(
        json.starts_with(r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#),
        "{json}"
    );
    assert!(
        json.contains(r#""cipher":{"name":"nacl/secretbox","nonce":""#),
        "{json}"
    );
    assert!(json.contains(r#""ciphertext":""#), "{json}");
    // PEM lines of 64 columns, as Go writes them.
    assert!(pem.lines().all(|l| l.len() <= 64));
    // The older label reads the same.
    let old = pem.replace("SIGSTORE PRIVATE KEY", "COSIGN PRIVATE KEY");
    let read = PrivateKey::from_pem(&old, b"").unwrap();
    assert_eq!(read.public_key(), pair.public);
}

#[test]
fn private_keys_are_redacted_in_debug_output() {
    let pair = generate().unwrap();
    assert_eq!(
        format!("{:?}", pair.private),
        "PrivateKey(ecdsa-p256, <redacted>)"
    );
}

#[test]
fn openssl_keys_on_every_curve_sign_with_the_matching_sha2() {
    use crate::common::{openssl, require_openssl};
    if !require_openssl() {
        return;
    }
    for (curve, digest, name) in [
        ("prime256v1", "-sha256", "ecdsa-p256"),
        ("secp384r1", "-sha384", "ecdsa-p384"),
        ("secp521r1", "-sha512", "ecdsa-p521"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        // Without -noout: an EC PARAMETERS block precedes the SEC1 key.
        let sec1 = openssl(&["ecparam", "-name", curve, "-genkey"]);
        std::fs::write(path("sec1.pem"), &sec1).unwrap();
        let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", &path("sec1.pem")]);
        let public = openssl(&["ec", "-in", &path("sec1.pem"), "-pubout"]);
        std::fs::write(path("key.pub"), &public).unwrap();
        let from_sec1 = PrivateKey::from_pem(std::str::from_utf8(&sec1).unwrap(), b"").unwrap();
        let from_pkcs8 = PrivateKey::from_pem(std::str::from_utf8(&pkcs8).unwrap(), b"").unwrap();
        let public = PublicKey::from_pem(std::str::from_utf8(&public).unwrap()).unwrap();
        assert_eq!(from_sec1.public_key(), public, "{curve}");
        assert_eq!(from_pkcs8.public_key(), public, "{curve}");
        assert_eq!(public.curve().name(), name);
        // openssl checks ferry's signature with the SHA-2 the curve calls for.
        std::fs::write(path("message"), b"message").unwrap();
        std::fs::write(path("sig"), from_pkcs8.sign(b"message")).unwrap();
        openssl(&[
            "dgst",
            digest,
            "-verify",
            &path("key.pub"),
            "-signature",
            &path("sig"),
            &path("message"),
        ]);
        // And ferry checks openssl's.
        let theirs = openssl(&["dgst", digest, "-sign", &path("sec1.pem"), &path("message")]);
        public.verify(b"message", &theirs).unwrap();
    }
}

/// Decrypts a cosign key on stdin with scrypt and NaCl's secretbox (PyNaCl)
/// and prints the public key PEM: an implementation independent of ferry's.
const PYTHON_DECRYPT: &str = r#"
import base64, hashlib, json, sys
import nacl.secret
from cryptography.hazmat.primitives import serialization
pem = sys.stdin.read()
body = "".join(l for l in pem.splitlines() if not l.startswith("-----"))
key = json.loads(base64.b64decode(body))
p = key["kdf"]["params"]
secret = hashlib.scrypt(sys.argv[1].encode(), salt=base64.b64decode(key["kdf"]["salt"]),
                        n=p["N"], r=p["r"], p=p["p"], dklen=32, maxmem=256 * 1024 * 1024)
der = nacl.secret.SecretBox(secret).decrypt(base64.b64decode(key["ciphertext"]),
                                            base64.b64decode(key["cipher"]["nonce"]))
private = serialization.load_der_private_key(der, password=None)
sys.stdout.write(private.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
"#;

/// Writes a P-384 key in cosign's encrypted format with PyNaCl; prints the
/// encrypted PEM, then the public key PEM.
const PYTHON_ENCRYPT: &str = r#"
import base64, hashlib, json, os, sys
import nacl.secret, nacl.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
private = ec.generate_private_key(ec.SECP384R1())
der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
salt, nonce = os.urandom(32), nacl.utils.random(24)
secret = hashlib.scrypt(sys.argv[1].encode(), salt=salt, n=32768, r=8, p=1, dklen=32,
                        maxmem=256 * 1024 * 1024)
ciphertext = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
body = json.dumps({"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
                           "salt": base64.b64encode(salt).decode()},
                   "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
                   "ciphertext": base64.b64encode(ciphertext).decode()})
b64 = base64.b64encode(body.encode()).decode()
lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
print("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n" + lines + "\n-----END ENCRYPTED COSIGN PRIVATE KEY-----")
sys.stdout.write(private.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
"#;

fn python(script: &str, password: &str, stdin: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .args(["-c", script, password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn an_independent_nacl_implementation_reads_and_writes_ferrys_key_format() {
    if !ferry_testkit::require::require_python(&["nacl.secret", "cryptography"]) {
        return;
    }
    // PyNaCl decrypts what ferry wrote.
    let pair = generate().unwrap();
    let pem = pair.to_encrypted_pem(b"s3cret").unwrap();
    assert_eq!(python(PYTHON_DECRYPT, "s3cret", &pem), pair.public_pem());
    // ferry decrypts what PyNaCl wrote (older label, N=32768, P-384).
    let output = python(PYTHON_ENCRYPT, "s3cret", "");
    let split = output.find("-----BEGIN PUBLIC KEY-----").unwrap();
    let (private_pem, public_pem) = output.split_at(split);
    let private = PrivateKey::from_pem(private_pem, b"s3cret").unwrap();
    assert_eq!(
        private.public_key(),
        PublicKey::from_pem(public_pem).unwrap()
    );
    assert_eq!(private.curve().name(), "ecdsa-p384");
    let err = PrivateKey::from_pem(private_pem, b"wrong").unwrap_err();
    assert!(matches!(err, SignError::WrongPassword), "{err}");
}
