//! Lambda: creating or updating a function from a package, waiting until Lambda has applied
//! the change, and publishing a version ([`crate::traffic`] then moves the alias).
//!
//! Every update carries the `RevisionId` read just before it, so that when two workers race
//! on one function only one update lands; the other fails with `PreconditionFailed`, which is
//! classified transient, and its job re-reads the function before trying again.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::operation::create_function::CreateFunctionError;
use aws_sdk_lambda::operation::get_function::{GetFunctionError, GetFunctionOutput};
use aws_sdk_lambda::operation::publish_version::PublishVersionError;
use aws_sdk_lambda::operation::tag_resource::TagResourceError;
use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeError;
use aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::waiters::error::WaiterError;

use crate::manifest::FunctionSpec;
use crate::package::Package;

/// Largest zip Lambda accepts inline in a CreateFunction/UpdateFunctionCode request.
pub const MAX_DIRECT_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;

/// How long to wait for Lambda to finish applying a change.
const WAIT: Duration = Duration::from_secs(300);

type Sdk<E> = Box<SdkError<E, HttpResponse>>;

/// Why a deployment failed. Classified in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot read function {function}: {}", crate::sdk_error::describe(source))]
    Get {
        function: String,
        source: Sdk<GetFunctionError>,
    },
    #[error("cannot create function {function}: {}", crate::sdk_error::describe(source))]
    Create {
        function: String,
        source: Sdk<CreateFunctionError>,
    },
    #[error("cannot update the code of {function}: {}", crate::sdk_error::describe(source))]
    UpdateCode {
        function: String,
        source: Sdk<UpdateFunctionCodeError>,
    },
    #[error(
        "cannot update the configuration of {function}: {}",
        crate::sdk_error::describe(source)
    )]
    UpdateConfig {
        function: String,
        source: Sdk<UpdateFunctionConfigurationError>,
    },
    #[error("cannot tag {function}: {}", crate::sdk_error::describe(source))]
    Tag {
        function: String,
        source: Sdk<TagResourceError>,
    },
    #[error("cannot publish a version of {function}: {}", crate::sdk_error::describe(source))]
    Publish {
        function: String,
        source: Sdk<PublishVersionError>,
    },
    #[error("Lambda did not finish updating {function} in time")]
    WaitTimedOut { function: String },
    #[error("Lambda failed to apply the change to {function}: {reason}")]
    UpdateFailed {
        function: String,
        reason: String,
        /// Lambda's reason code (`LastUpdateStatusReasonCode` or `StateReasonCode`), which
        /// [`crate::error`] classifies: some pass by themselves (InternalError, an ENI or IP
        /// shortage, a role whose policy has not propagated yet).
        code: Option<String>,
    },
    #[error(
        "waiting on {function} failed: {}",
        aws_smithy_types::error::display::DisplayErrorContext(source)
    )]
    WaitFailed {
        function: String,
        #[source]
        source: Box<WaiterError<GetFunctionOutput, GetFunctionError>>,
    },
    #[error("cannot read the package: {0}")]
    ReadPackage(#[source] std::io::Error),
}

/// Where Lambda takes the package from: inline (at most [`MAX_DIRECT_UPLOAD_BYTES`]), or from S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Inline(std::path::PathBuf),
    S3 { bucket: String, key: String },
}

impl Code {
    fn s3_bucket(&self) -> Option<String> {
        match self {
            Code::S3 { bucket, .. } => Some(bucket.clone()),
            Code::Inline(_) => None,
        }
    }

    fn s3_key(&self) -> Option<String> {
        match self {
            Code::S3 { key, .. } => Some(key.clone()),
            Code::Inline(_) => None,
        }
    }
}

/// What Lambda says about a function before we touch it.
#[derive(Debug, Clone, Default)]
pub struct FunctionState {
    pub arn: String,
    pub code_sha256: String,
    pub revision_id: String,
    pub tags: HashMap<String, String>,
    /// The package and the architecture are what the spec asks (they change together:
    /// UpdateFunctionCode is the only call that sets the architecture).
    code_matches: bool,
    /// Runtime, handler, execution role, memory, timeout, description, environment and
    /// layers are what the spec and the worker's `--role-arn` ask.
    config_matches: bool,
}

/// What a deployment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    /// The function already ran this exact package and configuration.
    Unchanged,
}

/// The function as left by a deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub change: Change,
    pub function_arn: String,
    pub code_sha256: String,
    /// The published version, when the spec asks for one.
    pub version: Option<String>,
}

/// Reads the function, or `None` if it does not exist yet, and compares it with `spec`, the
/// package about to be deployed (its `code_sha256`, base64 SHA-256 as Lambda reports it) and
/// the execution role `role_arn`.
pub async fn describe(
    lambda: &aws_sdk_lambda::Client,
    spec: &FunctionSpec,
    code_sha256: &str,
    role_arn: &str,
) -> Result<Option<FunctionState>, DeployError> {
    match lambda.get_function().function_name(&spec.name).send().await {
        Ok(out) => Ok(Some(state_of(&out, spec, code_sha256, role_arn))),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(GetFunctionError::is_resource_not_found_exception) =>
        {
            Ok(None)
        }
        Err(err) => Err(DeployError::Get {
            function: spec.name.clone(),
            source: Box::new(err),
        }),
    }
}

fn state_of(out: &GetFunctionOutput, spec: &FunctionSpec, want_sha256: &str, role_arn: &str) -> FunctionState {
    let Some(cfg) = out.configuration() else {
        return FunctionState::default();
    };
    let env: BTreeMap<String, String> = cfg
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let layers: Vec<&str> = cfg.layers().iter().filter_map(|l| l.arn()).collect();
    let arch = cfg.architectures().first().map(|a| a.as_str()).unwrap_or("x86_64");
    let code_sha256 = cfg.code_sha256().unwrap_or_default();
    let code_matches = code_sha256 == want_sha256 && arch == spec.architecture.as_str();
    let config_matches = cfg.runtime().map(|r| r.as_str()) == Some(spec.runtime.as_str())
        && cfg.handler() == Some(spec.handler.as_str())
        && cfg.role() == Some(role_arn)
        && cfg.memory_size() == Some(spec.memory_mb)
        && cfg.timeout() == Some(spec.timeout_secs)
        && cfg.description().unwrap_or_default() == spec.description
        && env == spec.environment
        && layers == spec.layers.iter().map(String::as_str).collect::<Vec<_>>();
    FunctionState {
        arn: cfg.function_arn().unwrap_or_default().to_owned(),
        code_sha256: code_sha256.to_owned(),
        revision_id: cfg.revision_id().unwrap_or_default().to_owned(),
        tags: out.tags().cloned().unwrap_or_default(),
        code_matches,
        config_matches,
    }
}

/// Makes the function run `package` (sent as `code`) with `spec`'s configuration, then
/// publishes a version if the spec asks. `current` is what [`describe`] returned just before, for
/// this package and role; `tags` are written on the function with the change. Only what
/// differs is sent: the code (with the architecture) when the package or the architecture
/// changed, the configuration when it or the role changed; both carry the RevisionId read
/// before, so a racing change by another worker fails with PreconditionFailed.
pub async fn upsert(
    lambda: &aws_sdk_lambda::Client,
    spec: &FunctionSpec,
    package: &Package,
    code: &Code,
    role_arn: &str,
    current: Option<FunctionState>,
    tags: &HashMap<String, String>,
) -> Result<Deployment, DeployError> {
    let function = spec.name.clone();
    let (change, arn) = match current {
        None => {
            let arn = create(lambda, spec, code, role_arn, tags).await?;
            (Change::Created, arn)
        }
        Some(state) if state.code_matches && state.config_matches => {
            // Nothing to change, but an earlier attempt may have stopped (or lost Lambda's reply)
            // between the change and the publish, so the tags are brought up to date and the
            // version published below all the same: PublishVersion returns the existing version
            // when nothing changed since it.
            if tags.iter().any(|(k, v)| state.tags.get(k) != Some(v)) {
                tag(lambda, &function, &state.arn, tags).await?;
            }
            (Change::Unchanged, state.arn)
        }
        Some(state) => {
            let mut revision = state.revision_id.clone();
            if !state.code_matches {
                // Architecture can only change together with the code, so the code goes first.
                tracing::info!(function = %function, "Updating the function's code.");
                let out = lambda
                    .update_function_code()
                    .function_name(&function)
                    .set_zip_file(inline(code).await?)
                    .set_s3_bucket(code.s3_bucket())
                    .set_s3_key(code.s3_key())
                    .architectures(Architecture::from(spec.architecture.as_str()))
                    .revision_id(&revision)
                    .send()
                    .await
                    .map_err(|e| DeployError::UpdateCode {
                        function: function.clone(),
                        source: Box::new(e),
                    })?;
                // The reply's RevisionId is already stale once the update completes (Lambda
                // gives the finished update a new one): take the waiter's.
                revision = wait_updated(lambda, &function)
                    .await?
                    .unwrap_or_else(|| out.revision_id().unwrap_or_default().to_owned());
            }
            if !state.config_matches {
                tracing::info!(function = %function, "Updating the function's configuration.");
                lambda
                    .update_function_configuration()
                    .function_name(&function)
                    .runtime(Runtime::from(spec.runtime.as_str()))
                    .handler(&spec.handler)
                    .role(role_arn)
                    .memory_size(spec.memory_mb)
                    .timeout(spec.timeout_secs)
                    .description(&spec.description)
                    .set_layers(Some(spec.layers.clone()))
                    .environment(environment(spec))
                    .revision_id(&revision)
                    .send()
                    .await
                    .map_err(|e| DeployError::UpdateConfig {
                        function: function.clone(),
                        source: Box::new(e),
                    })?;
                wait_updated(lambda, &function).await?;
            }
            tag(lambda, &function, &state.arn, tags).await?;
            (Change::Updated, state.arn)
        }
    };
    let version = if spec.publish {
        Some(publish(lambda, spec, package).await?)
    } else {
        None
    };
    Ok(Deployment {
        change,
        function_arn: arn,
        code_sha256: package.code_sha256.clone(),
        version,
    })
}

async fn tag(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    arn: &str,
    tags: &HashMap<String, String>,
) -> Result<(), DeployError> {
    lambda
        .tag_resource()
        .resource(arn)
        .set_tags(Some(tags.clone()))
        .send()
        .await
        .map_err(|e| DeployError::Tag {
            function: function.to_owned(),
            source: Box::new(e),
        })?;
    Ok(())
}

async fn create(
    lambda: &aws_sdk_lambda::Client,
    spec: &FunctionSpec,
    code: &Code,
    role_arn: &str,
    tags: &HashMap<String, String>,
) -> Result<String, DeployError> {
    let out = lambda
        .create_function()
        .function_name(&spec.name)
        .runtime(Runtime::from(spec.runtime.as_str()))
        .role(role_arn)
        .handler(&spec.handler)
        .code(
            FunctionCode::builder()
                .set_zip_file(inline(code).await?)
                .set_s3_bucket(code.s3_bucket())
                .set_s3_key(code.s3_key())
                .build(),
        )
        .architectures(Architecture::from(spec.architecture.as_str()))
        .memory_size(spec.memory_mb)
        .timeout(spec.timeout_secs)
        .description(&spec.description)
        .set_layers(Some(spec.layers.clone()))
        .environment(environment(spec))
        .set_tags(Some(tags.clone()))
        .send()
        .await
        .map_err(|e| DeployError::Create {
            function: spec.name.clone(),
            source: Box::new(e),
        })?;
    lambda
        .wait_until_function_active_v2()
        .function_name(&spec.name)
        .wait(WAIT)
        .await
        .map_err(|e| waiter_error(&spec.name, e))?;
    Ok(out.function_arn().unwrap_or_default().to_owned())
}

/// Publishes a version of exactly this package.
async fn publish(
    lambda: &aws_sdk_lambda::Client,
    spec: &FunctionSpec,
    package: &Package,
) -> Result<String, DeployError> {
    let function = &spec.name;
    let out = lambda
        .publish_version()
        .function_name(function)
        .code_sha256(&package.code_sha256)
        .send()
        .await
        .map_err(|e| DeployError::Publish {
            function: function.clone(),
            source: Box::new(e),
        })?;
    Ok(out.version().unwrap_or("$LATEST").to_owned())
}

/// Waits until Lambda has applied the last change; returns the function's RevisionId then.
async fn wait_updated(lambda: &aws_sdk_lambda::Client, function: &str) -> Result<Option<String>, DeployError> {
    let done = lambda
        .wait_until_function_updated_v2()
        .function_name(function)
        .wait(WAIT)
        .await
        .map_err(|e| waiter_error(function, e))?;
    Ok(done
        .as_result()
        .ok()
        .and_then(|out| out.configuration())
        .and_then(|c| c.revision_id())
        .map(str::to_owned))
}

/// Both waiters poll GetFunction. When Lambda reports the change as Failed, the report carries
/// Lambda's own reason: `LastUpdateStatusReason` for an update, `StateReason` for a new
/// function (API reference, FunctionConfiguration), with its reason code.
fn waiter_error(function: &str, err: WaiterError<GetFunctionOutput, GetFunctionError>) -> DeployError {
    let function = function.to_owned();
    match err {
        WaiterError::ExceededMaxWait(_) => DeployError::WaitTimedOut { function },
        WaiterError::FailureState(failed) => {
            let cfg = failed.final_poll().as_result().ok().and_then(|out| out.configuration());
            DeployError::UpdateFailed {
                function,
                reason: cfg
                    .and_then(failure_reason)
                    .unwrap_or_else(|| "Lambda reported the change as Failed and gave no reason".into()),
                code: cfg.and_then(failure_code),
            }
        }
        other => DeployError::WaitFailed {
            function,
            source: Box::new(other),
        },
    }
}

fn failure_reason(cfg: &aws_sdk_lambda::types::FunctionConfiguration) -> Option<String> {
    let (reason, code) = match cfg.last_update_status_reason() {
        Some(reason) => (
            reason,
            cfg.last_update_status_reason_code().map(|c| c.as_str().to_owned()),
        ),
        None => (
            cfg.state_reason()?,
            cfg.state_reason_code().map(|c| c.as_str().to_owned()),
        ),
    };
    Some(match code {
        Some(code) => format!("{reason} ({code})"),
        None => reason.to_owned(),
    })
}

fn failure_code(cfg: &aws_sdk_lambda::types::FunctionConfiguration) -> Option<String> {
    match cfg.last_update_status_reason_code() {
        Some(code) => Some(code.as_str().to_owned()),
        None => cfg.state_reason_code().map(|c| c.as_str().to_owned()),
    }
}

fn environment(spec: &FunctionSpec) -> Environment {
    Environment::builder()
        .set_variables(Some(spec.environment.clone().into_iter().collect()))
        .build()
}

/// The zip bytes for an inline upload; `None` when the code comes from S3.
async fn inline(code: &Code) -> Result<Option<Blob>, DeployError> {
    match code {
        Code::Inline(path) => tokio::fs::read(path)
            .await
            .map(|b| Some(Blob::new(b)))
            .map_err(DeployError::ReadPackage),
        Code::S3 { .. } => Ok(None),
    }
}
