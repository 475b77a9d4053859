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

/// One AWS call that failed, in plain words, with what `crate::error` needs to classify it:
/// whether it got no proper answer (or a 5xx or 429), and the service's error code. For the
/// calls that need no error type of their own (function URLs, alias routing, alarms, step
/// messages); the SDK error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action}: {message}")]
pub struct CallError {
    /// What was being done, e.g. `create the function URL of orders:live`.
    pub action: String,
    /// The error in plain words ([`describe`]).
    pub message: String,
    /// The service's error code (`ResourceConflictException`), when it answered one.
    pub code: Option<String>,
    /// No proper answer (timeout, connection), or HTTP 5xx or 429: [`is_transient`] with no
    /// service error accepted.
    pub unanswered: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl CallError {
    /// Wraps the SDK error of the call that was to `action`.
    pub fn new<E>(action: impl Into<String>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Self {
            action: action.into(),
            message: describe(&err),
            code: err.as_service_error().and_then(|e| e.code()).map(str::to_owned),
            unanswered: is_transient(&err, |_| false),
            source: Box::new(err),
        }
    }
}
