//! SDK errors in plain words, and whether one may pass by itself. A leaf: the stages' error
//! types format their SDK errors with [`describe`], and `crate::error` classifies with
//! [`is_transient`]; this module imports nothing from the crate, so the imports run one way.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// True when the call never got a proper answer (timeout, connection, unparseable response),
/// or the service answered 5xx or 429, or it answered an error `transient_service_error`
/// accepts. A request the SDK could not even build is never transient.
pub fn is_transient<E>(err: &SdkError<E, HttpResponse>, transient_service_error: impl Fn(&E) -> bool) -> bool {
    match err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(ctx) => {
            let code = ctx.raw().status().as_u16();
            code >= 500 || code == 429 || transient_service_error(ctx.err())
        }
        // TimeoutError, DispatchFailure, ResponseError; SdkError is non-exhaustive, and a
        // future variant is a failure to get an answer too.
        _ => true,
    }
}

/// An SDK error in plain words: the service's error code and message when it answered
/// (`NoSuchKey: The specified key does not exist.`), the whole cause chain otherwise
/// (`dispatch failure: … connection refused`).
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(ctx) = err {
        let e = ctx.err();
        let status = ctx.raw().status().as_u16();
        return match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => format!("{code} (HTTP {status})"),
            (None, _) => format!(
                "HTTP {status}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(e)
            ),
        };
    }
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}

/// The HTTP status of the response, when there was one.
pub fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Service error codes that pass by themselves on any AWS API the worker calls: a throttle, a
/// service fault, a concurrent change (Lambda's ResourceConflictException while a function
/// or alias is being updated, PreconditionFailedException when another worker changed it
/// first: re-read and try again).
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

/// One AWS call that failed, in plain words, with whether it may pass by itself (see
/// [`RETRYABLE_CODES`] and [`is_transient`]); `crate::error` classifies by that. For the
/// calls that need no error handling of their own (function URLs, alias routing, alarms,
/// step messages): the caller keeps the SDK error as the source.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action}: {message}")]
pub struct CallError {
    /// What was being done, e.g. `create the function URL of orders:live`.
    pub action: String,
    pub message: String,
    pub transient: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl CallError {
    pub fn new<E>(action: impl Into<String>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let transient = is_transient(&err, |e| e.code().is_some_and(|c| RETRYABLE_CODES.contains(&c)));
        Self {
            action: action.into(),
            message: describe(&err),
            transient,
            source: Box::new(err),
        }
    }
}
