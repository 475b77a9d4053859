//! The one place that decides what a failure means for the message behind it.
//!
//! * **Permanent**: the upload itself is wrong (not a zip, bad manifest, invalid name,
//!   unsupported runtime, a package that would not start) or AWS refused the request as invalid. Retrying cannot help: the job
//!   is reported failed once and its message deleted.
//! * **Transient**: throttling, 5xx, network trouble, Lambda's "update in progress", a lost
//!   `RevisionId` race, a full disk, a build image whose interpreter is not the runtime's. The message goes back to the queue with a backoff delay;
//!   if it keeps failing, the queue's redrive policy moves it to the dead-letter queue.
//!
//! SDK errors are classified with the generated `is_*` methods and HTTP status codes, never by
//! matching message text.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::artifact::ArtifactError;
use crate::deploy::DeployError;
use crate::deps::source::SourceError;
use crate::deps::BuildError;
use crate::event::EventError;
use crate::manifest::ManifestError;
use crate::package::PackageError;
use crate::sandbox::ContainerError;
use crate::sdk_error::CallError;
use crate::traffic::ShiftError;
use crate::verify::VerifyError;

/// What to do with a failed job's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Permanent,
    Transient,
}

/// Any failure of one job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// A function URL call (see `sdk_error::CallError`).
    #[error(transparent)]
    Call(#[from] crate::sdk_error::CallError),
    #[error(transparent)]
    Shift(#[from] crate::traffic::ShiftError),
    #[error("cannot prepare the job's work directory: {0}")]
    WorkDir(#[source] std::io::Error),
    #[error("the job was interrupted by shutdown")]
    Interrupted,
    #[error("the worker hit an internal error (a panic: {0}) and will try this upload again; if it persists, report it with this message")]
    Panicked(String),
    #[error("the job ran out of time in its {stage} stage (--job-timeout-secs: {after:?}); it was cancelled and will be retried")]
    DeadlineExceeded {
        stage: &'static str,
        after: std::time::Duration,
    },
}

impl JobError {
    /// Permanent or transient: see the module docs.
    pub fn class(&self) -> Class {
        use Class::{Permanent, Transient};
        match self {
            JobError::Event(_) | JobError::Manifest(_) => Permanent,
            JobError::Artifact(e) => match e {
                ArtifactError::Download { source, .. } => {
                    // NoSuchKey: the object is gone; nothing will bring it back.
                    let gone = source.as_service_error().is_some_and(|e| e.is_no_such_key());
                    if gone {
                        Permanent
                    } else {
                        sdk(source, |_| false)
                    }
                }
                // Classified like every other S3 call: AccessDenied or NoSuchBucket on the
                // artifacts prefix is the fleet's configuration and will not pass by retrying.
                ArtifactError::Upload { source, .. } => sdk(source, |_| false),
                ArtifactError::Stream { .. } => Transient,
                ArtifactError::Write { source, .. } | ArtifactError::ReadPackage { source, .. } => io(source),
                ArtifactError::ZipTooLarge { .. }
                | ArtifactError::NotAZip(_)
                | ArtifactError::Empty
                | ArtifactError::TooManyEntries { .. }
                | ArtifactError::UnpackedTooLarge { .. }
                | ArtifactError::Bomb { .. }
                | ArtifactError::UnsafePath { .. }
                | ArtifactError::Duplicate(_)
                | ArtifactError::SymlinkEscape { .. } => Permanent,
            },
            JobError::Build(e) => match e {
                // The engine or the image registry is unavailable: an operator's problem, not the upload's.
                BuildError::Container(
                    ContainerError::Engine(_)
                    | ContainerError::Image { .. }
                    | ContainerError::PullTimedOut { .. }
                    | ContainerError::Run(_)
                    | ContainerError::Killed { .. }
                    | ContainerError::ExecTimedOut(_),
                ) => Transient,
                BuildError::Container(
                    ContainerError::Failed { .. } | ContainerError::OutOfMemory { .. } | ContainerError::TimedOut(..),
                ) => Permanent,
                BuildError::Source(source) => match source {
                    SourceError::Invalid { .. } | SourceError::Editable { .. } | SourceError::OutsidePath { .. } => {
                        Permanent
                    }
                    // The worker lacks a tool: fix the fleet, keep the upload.
                    SourceError::NoUv { .. } => Transient,
                    SourceError::Io { source, .. } => io(source),
                },
                BuildError::Spawn { .. } => Transient,
                BuildError::Io(source) => io(source),
                BuildError::Package(e) => package(e),
                BuildError::Architecture { .. }
                | BuildError::NoLockFile
                | BuildError::Unsupported(_)
                | BuildError::NoWheel { .. }
                | BuildError::Install { .. }
                | BuildError::InstallTimedOut { .. } => Permanent,
            },
            JobError::Package(e) => package(e),
            JobError::Verify(e) => match e {
                // The package itself would not start: the upload must change.
                VerifyError::ForeignBinary { .. }
                | VerifyError::WrongMachine { .. }
                | VerifyError::Glibc { .. }
                | VerifyError::CpythonVersion { .. }
                | VerifyError::Corrupt { .. }
                | VerifyError::Bootstrap(_)
                | VerifyError::Handler { .. }
                | VerifyError::TimedOut(..) => Permanent,
                // The fleet is misconfigured or Docker is unwell: the upload is fine, so keep
                // its message; it reaches the dead-letter queue if nobody fixes the fleet.
                VerifyError::Interpreter { .. } | VerifyError::Container(_) => Transient,
                // Staging the package is the worker's business, whatever the error.
                VerifyError::Io(_) => Transient,
                VerifyError::Zip(zip::result::ZipError::Io(source)) => io(source),
                VerifyError::Zip(_) => Permanent,
            },
            JobError::Deploy(e) => deploy(e),
            JobError::Call(e) | JobError::Shift(ShiftError::Call(e)) => call(e),
            JobError::Shift(ShiftError::MissingAlarms { .. } | ShiftError::Blocked(_)) => Permanent,
            JobError::WorkDir(source) => io(source),
            JobError::Interrupted | JobError::DeadlineExceeded { .. } | JobError::Panicked(_) => Transient,
        }
    }

    /// The output of the build (or of the load check) that failed, when there is one.
    pub fn build_log(&self) -> Option<&str> {
        match self {
            JobError::Build(e) => e.log(),
            JobError::Verify(e) => e.log(),
            _ => None,
        }
    }

    /// True when the object the event named has been replaced by a newer upload under the same
    /// key (`If-Match` on the event's ETag failed): the newer upload's own event will deploy it.
    pub fn is_superseded(&self) -> bool {
        match self {
            JobError::Artifact(ArtifactError::Download { source, .. }) => crate::sdk_error::status(source) == Some(412),
            _ => false,
        }
    }
}

fn package(e: &PackageError) -> Class {
    match e {
        PackageError::Read { source, .. } | PackageError::Write(source) => io(source),
        PackageError::Zip(zip::result::ZipError::Io(source)) => io(source),
        PackageError::Zip(_) | PackageError::NotUtf8(_) | PackageError::TooLarge { .. } => Class::Permanent,
    }
}

/// Service error codes that pass by themselves on the calls of [`CallError`]: a throttle, a
/// service fault, a concurrent change (Lambda's ResourceConflictException while a function or
/// alias is being updated, or an AddPermission racing another; PreconditionFailedException
/// when another worker changed the alias first: re-read and try again).
const RETRYABLE_CODES: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "ServiceException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "ResourceConflictException",
    "PreconditionFailedException",
];

fn call(e: &CallError) -> Class {
    if e.unanswered || e.code.as_deref().is_some_and(|c| RETRYABLE_CODES.contains(&c)) {
        Class::Transient
    } else {
        Class::Permanent
    }
}

fn deploy(e: &DeployError) -> Class {
    use aws_sdk_lambda::operation as op;
    match e {
        DeployError::Get { source, .. } => sdk(source, |e: &op::get_function::GetFunctionError| {
            e.is_too_many_requests_exception() || e.is_service_exception()
        }),
        DeployError::Create { source, .. } => {
            sdk(source, |e: &op::create_function::CreateFunctionError| {
                // A racing worker created it first: re-read and update on the next attempt.
                e.is_resource_conflict_exception() || e.is_too_many_requests_exception() || e.is_service_exception()
            })
        }
        DeployError::UpdateCode { source, .. } => {
            sdk(source, |e: &op::update_function_code::UpdateFunctionCodeError| {
                e.is_resource_conflict_exception()
                    || e.is_precondition_failed_exception()
                    || e.is_too_many_requests_exception()
                    || e.is_service_exception()
                    || e.is_resource_not_found_exception()
            })
        }
        DeployError::UpdateConfig { source, .. } => sdk(
            source,
            |e: &op::update_function_configuration::UpdateFunctionConfigurationError| {
                e.is_resource_conflict_exception()
                    || e.is_precondition_failed_exception()
                    || e.is_too_many_requests_exception()
                    || e.is_service_exception()
                    || e.is_resource_not_found_exception()
            },
        ),
        DeployError::Tag { source, .. } => sdk(source, |e: &op::tag_resource::TagResourceError| {
            e.is_resource_conflict_exception() || e.is_too_many_requests_exception() || e.is_service_exception()
        }),
        DeployError::Publish { source, .. } => sdk(source, |e: &op::publish_version::PublishVersionError| {
            // The worker sends only the function name and the CodeSha256 it deployed, so an
            // invalid parameter can only be that hash: another worker changed $LATEST between
            // our update and our publish. Lost a race: re-read and try again.
            e.is_invalid_parameter_value_exception()
                || e.is_resource_conflict_exception()
                || e.is_precondition_failed_exception()
                || e.is_too_many_requests_exception()
                || e.is_service_exception()
        }),
        DeployError::WaitTimedOut { .. } | DeployError::WaitFailed { .. } => Class::Transient,
        // Lambda's reason codes (API reference, FunctionConfiguration): these pass by
        // themselves or with the fleet's fix, not the upload's; the rest (a bad image, a
        // KMS key, a subnet that does not exist, ...) need a change.
        DeployError::UpdateFailed { code, .. } => match code.as_deref() {
            Some(
                "InternalError"
                | "EniLimitExceeded"
                | "SubnetOutOfIPAddresses"
                | "InsufficientRolePermissions"
                | "Creating"
                | "Idle"
                | "Restoring",
            ) => Class::Transient,
            _ => Class::Permanent,
        },
        DeployError::ReadPackage(source) => io(source),
    }
}

/// Classifies an SDK error: anything that never got a proper answer (timeout, connection,
/// unparseable response), a 5xx or a 429 is transient; a service error is transient only if
/// `transient_service_error` says so (see [`crate::sdk_error::is_transient`]).
pub fn sdk<E>(err: &SdkError<E, HttpResponse>, transient_service_error: impl Fn(&E) -> bool) -> Class {
    if crate::sdk_error::is_transient(err, transient_service_error) {
        Class::Transient
    } else {
        Class::Permanent
    }
}

/// A full disk or exhausted memory passes; anything else the filesystem refuses is about the
/// upload's content (a file where a directory must go, a name too long) and will not.
fn io(err: &std::io::Error) -> Class {
    use std::io::ErrorKind::*;
    match err.kind() {
        StorageFull | QuotaExceeded | OutOfMemory | Interrupted | TimedOut | WouldBlock | ResourceBusy => {
            Class::Transient
        }
        _ if err.raw_os_error() == Some(28) => Class::Transient, // ENOSPC on platforms that map it oddly
        _ => Class::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_problems_are_permanent() {
        assert_eq!(
            JobError::from(ArtifactError::NotAZip("x".into())).class(),
            Class::Permanent
        );
        assert_eq!(JobError::from(ManifestError::UnknownRuntime).class(), Class::Permanent);
        assert_eq!(
            JobError::from(EventError::NotAnEvent("x".into())).class(),
            Class::Permanent
        );
    }

    #[test]
    fn full_disk_is_transient() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(
            JobError::from(ArtifactError::Write {
                entry: "a".into(),
                source: full
            })
            .class(),
            Class::Transient
        );
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(JobError::WorkDir(enospc).class(), Class::Transient);
        let notdir = std::io::Error::from(std::io::ErrorKind::NotADirectory);
        assert_eq!(JobError::WorkDir(notdir).class(), Class::Permanent);
    }

    #[test]
    fn lambda_waits_are_transient_failures_are_not() {
        assert_eq!(
            JobError::from(DeployError::WaitTimedOut { function: "f".into() }).class(),
            Class::Transient
        );
        assert_eq!(
            JobError::from(DeployError::UpdateFailed {
                function: "f".into(),
                reason: "r".into(),
                code: Some("KMSKeyAccessDenied".into()),
            })
            .class(),
            Class::Permanent
        );
        assert_eq!(
            JobError::from(DeployError::UpdateFailed {
                function: "f".into(),
                reason: "Lambda was unable to create an ENI".into(),
                code: Some("EniLimitExceeded".into()),
            })
            .class(),
            Class::Transient
        );
    }
}
