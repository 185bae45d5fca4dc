//! What the user can do about an error, printed as `hint: ...` after it.

use ferry_mount::MountError;
use ferry_registry::ClientError;
use ferry_registry::admission::AdmissionError;
use ferry_registry::error::NetCause;
use ferry_store::StoreError;

/// A hint for the first error in `error`'s chain that ferry knows.
pub fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            client_hint(e)
        } else if let Some(e) = cause.downcast_ref::<AdmissionError>() {
            admission_hint(e)
        } else if let Some(e) = cause.downcast_ref::<MountError>() {
            mount_hint(e)
        } else {
            cause.downcast_ref::<StoreError>().and_then(store_hint)
        }
    })
}

fn admission_hint(error: &AdmissionError) -> Option<String> {
    match error {
        AdmissionError::Client(e) => client_hint(e),
        AdmissionError::Store(e) => store_hint(e),
        AdmissionError::Rejected { .. } => Some(
            "`ferry verify REF --key KEY` lists the artifact's signatures and why each does or does not verify"
                .to_string(),
        ),
        AdmissionError::Policy(_) | AdmissionError::Unnamed(_) => None,
    }
}

fn client_hint(error: &ClientError) -> Option<String> {
    match error {
        ClientError::Store(e) => store_hint(e),
        ClientError::Unauthorized { registry } => Some(format!(
            "ferry reads credentials from Docker's config.json ($DOCKER_CONFIG, else ~/.docker); \
             `ferry login {registry} -u USER` checks and stores them"
        )),
        ClientError::Unreachable {
            registry, cause, ..
        } => Some(unreachable_hint(registry, *cause)),
        ClientError::NotFound { .. } => Some(
            "check the repository name and the tag or digest; the registry has no such manifest"
                .to_string(),
        ),
        ClientError::Status {
            registry, status, ..
        } => match status {
            403 => Some(format!(
                "{registry} denied access: the account you are logged in with may not use this repository"
            )),
            429 | 500.. => Some(format!(
                "{registry} is overloaded or failing; ferry already retried, try again later"
            )),
            _ => None,
        },
        _ => None,
    }
}

/// TLS trouble has its own remedies; anything else is about the address.
fn unreachable_hint(registry: &str, cause: NetCause) -> String {
    match cause {
        NetCause::Certificate | NetCause::Tls => format!(
            "{registry}'s TLS certificate is not trusted: pass --ca-file FILE with the CA that \
             signed it, or --insecure to skip verification (--plain-http if it serves plain HTTP)"
        ),
        NetCause::Dns => {
            format!(
                "the name {registry} does not resolve: check the registry part of the reference"
            )
        }
        NetCause::Refused | NetCause::Interrupted => format!(
            "check that a registry listens at {registry} (for a plain-HTTP registry that is not \
             on loopback, pass --plain-http)"
        ),
    }
}

fn mount_hint(error: &MountError) -> Option<String> {
    match error {
        MountError::Store(e) => store_hint(e),
        MountError::Busy { .. } => Some(
            "stop what uses it (`fuser -vm TARGET` lists it), then run `ferry umount` again".into(),
        ),
        MountError::NotMounted(_) => {
            Some("run `ferry mounts` to see the volumes ferry mounted".into())
        }
        _ => None,
    }
}

fn store_hint(error: &StoreError) -> Option<String> {
    let text = match error.innermost() {
        StoreError::InUse { .. } => {
            "unmount it first (`ferry mounts` lists volumes), or pass --force"
        }
        StoreError::NotFound(_) => "run `ferry ls` to see what the store holds",
        StoreError::CorruptIndex { .. } => {
            "run `ferry fsck`; restore index.json from a backup or re-pack the models"
        }
        StoreError::DigestMismatch { .. }
        | StoreError::SizeMismatch { .. }
        | StoreError::LongerThanDeclared { .. } => {
            "run `ferry fsck --repair`: it deletes corrupt blobs and fetches them again from their registry"
        }
        StoreError::InvalidReference { .. } => {
            "a reference looks like registry.example.com/org/name:tag or name@sha256:<64 hex digits>"
        }
        StoreError::ChangedWhilePacking(_) => {
            "something is writing to the model: pack again once it is done"
        }
        StoreError::UnmatchedGlob { .. } => {
            "fix or remove that line of the Modelfile (`ferry init --force` writes a new one)"
        }
        _ => return None,
    };
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_failures_suggest_ca_file_and_insecure() {
        let error = anyhow::Error::new(ClientError::Unreachable {
            registry: "r.example:443".into(),
            cause: NetCause::Certificate,
            source: "invalid peer certificate: UnknownIssuer".into(),
        });
        let hint = hint(&error).expect("a hint");
        assert!(
            hint.contains("--ca-file") && hint.contains("--insecure"),
            "{hint}"
        );
    }

    #[test]
    fn a_store_error_inside_a_client_error_gets_the_store_hint() {
        let error = anyhow::Error::new(ClientError::Store(StoreError::NotFound(
            "docker.io/library/missing:v1".into(),
        )))
        .context("pushing");
        assert_eq!(
            hint(&error).as_deref(),
            Some("run `ferry ls` to see what the store holds")
        );
    }

    #[test]
    fn auth_failures_point_at_ferry_login() {
        let error = anyhow::Error::new(ClientError::Unauthorized {
            registry: "localhost:5000".into(),
        });
        let hint = hint(&error).expect("a hint");
        assert!(hint.contains("ferry login localhost:5000"), "{hint}");
    }
}
