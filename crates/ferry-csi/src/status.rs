//! Errors as the gRPC status codes the CSI spec asks for: what kubelet and
//! the sidecars retry, and what they report to the user, depend on them.

use tonic::{Code, Status};

use ferry_mount::MountError;
use ferry_registry::ClientError;
use ferry_registry::admission::AdmissionError;
use ferry_store::StoreError;

/// `InvalidArgument` with `message`.
pub fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}

/// A registry error: a missing artifact is `NotFound`, an unreachable or
/// overloaded registry `Unavailable` (kubelet retries), refused credentials
/// `PermissionDenied`.
pub fn from_client(error: &ClientError) -> Status {
    let code = match error {
        ClientError::NotFound(_) => Code::NotFound,
        ClientError::Unreachable { .. } => Code::Unavailable,
        ClientError::Status { status, .. } if *status == 429 || *status >= 500 => Code::Unavailable,
        ClientError::Unauthorized { .. } => Code::PermissionDenied,
        ClientError::InvalidInput { .. } => Code::InvalidArgument,
        ClientError::Store(store) => return from_store(store),
        _ => Code::Internal,
    };
    Status::new(code, error.to_string())
}

/// A policy decision: a rejection is `PermissionDenied` with the reason,
/// an unreadable policy `FailedPrecondition`.
pub fn from_admission(error: &AdmissionError) -> Status {
    match error {
        AdmissionError::Rejected { .. } => Status::permission_denied(error.to_string()),
        AdmissionError::Policy(_) | AdmissionError::Unnamed(_) => {
            Status::failed_precondition(error.to_string())
        }
        AdmissionError::Client(client) => from_client(client),
        AdmissionError::Store(store) => from_store(store),
    }
}

/// A store error: an artifact the store lacks (with `pullPolicy: Never`)
/// is `NotFound`; a malformed reference or glob `InvalidArgument`.
pub fn from_store(error: &StoreError) -> Status {
    let code = match error {
        StoreError::NotFound(_) => Code::NotFound,
        StoreError::InvalidReference { .. } | StoreError::InvalidGlob { .. } => {
            Code::InvalidArgument
        }
        StoreError::InUse { .. } => Code::Aborted,
        _ => Code::Internal,
    };
    Status::new(code, error.to_string())
}

/// A mount error: a subpath the volume lacks is `NotFound`, a bad subpath
/// or target `InvalidArgument`, something else mounted there
/// `AlreadyExists`.
pub fn from_mount(error: &MountError) -> Status {
    let code = match error {
        MountError::Store(store) => return from_store(store),
        MountError::SubpathMissing { .. } => Code::NotFound,
        MountError::InvalidSubpath { .. } | MountError::InvalidTarget { .. } => {
            Code::InvalidArgument
        }
        MountError::AlreadyMounted { .. } => Code::AlreadyExists,
        MountError::Busy { .. } => Code::Aborted,
        _ => Code::Internal,
    };
    Status::new(code, error.to_string())
}

/// Local I/O (records, the target): `Internal`.
pub fn from_io(what: &str, error: &std::io::Error) -> Status {
    Status::internal(format!("{what}: {error}"))
}
