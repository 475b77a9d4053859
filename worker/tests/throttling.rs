//! Throttling, which moto cannot produce: Lambda answers TooManyRequestsException, through
//! `aws-smithy-mocks`. Throttling is retried with backoff and jitter by the retry policy the
//! binaries use, and when it outlasts the retries it is classified transient, never permanent.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use auto_lambda_worker::deploy::{self, DeployError};
use auto_lambda_worker::error::{Class, JobError};
use auto_lambda_worker::manifest::{self, Manifest};
use aws_sdk_lambda::operation::create_function::CreateFunctionError;
use aws_sdk_lambda::operation::get_function::{GetFunctionError, GetFunctionOutput};
use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeError;
use aws_sdk_lambda::types::error::{
    InvalidParameterValueException, ResourceConflictException, TooManyRequestsException,
};
use aws_sdk_lambda::types::FunctionConfiguration;
use aws_sdk_lambda::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::error::ErrorMetadata;

fn throttled() -> GetFunctionError {
    GetFunctionError::TooManyRequestsException(
        TooManyRequestsException::builder()
            .message("Rate exceeded")
            .meta(
                ErrorMetadata::builder()
                    .code("TooManyRequestsException")
                    .message("Rate exceeded")
                    .build(),
            )
            .build(),
    )
}

fn spec() -> manifest::FunctionSpec {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "").unwrap();
    manifest::resolve(
        Manifest::default(),
        dir.path(),
        "throttled-fn",
        "",
        &manifest::Defaults::default(),
    )
    .unwrap()
}

/// The binaries' retry policy, with a short first backoff so the test is quick.
fn policy(c: aws_sdk_lambda::config::Builder) -> aws_sdk_lambda::config::Builder {
    c.retry_config(auto_lambda_common::aws::retry_config().with_initial_backoff(Duration::from_millis(20)))
}

#[tokio::test]
async fn throttling_is_retried_with_backoff() {
    let rule = mock!(Client::get_function)
        .sequence()
        .error(throttled)
        .times(2)
        .output(|| {
            GetFunctionOutput::builder()
                .configuration(
                    FunctionConfiguration::builder()
                        .function_name("throttled-fn")
                        .code_sha256("abc")
                        .build(),
                )
                .build()
        })
        .build();
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&rule], policy);
    let started = Instant::now();
    let state = deploy::describe(&lambda, &spec(), "abc", "arn:aws:iam::123456789012:role/r")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.code_sha256, "abc");
    assert_eq!(rule.num_calls(), 3, "two throttled attempts, then success");
    assert!(started.elapsed() >= Duration::from_millis(5), "the retries backed off");
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_transient() {
    let rule = mock!(Client::get_function)
        .sequence()
        .error(throttled)
        .times(10)
        .build();
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&rule], policy);
    let err = deploy::describe(&lambda, &spec(), "abc", "arn:aws:iam::123456789012:role/r")
        .await
        .unwrap_err();
    assert_eq!(rule.num_calls(), 5, "the binaries' policy makes five attempts");
    let job = JobError::from(err);
    assert_eq!(job.class(), Class::Transient, "never permanent: {job}");
    assert!(
        job.to_string().contains("TooManyRequestsException"),
        "in plain words: {job}"
    );
}

#[tokio::test]
async fn lambda_errors_are_classified_by_kind() {
    // Lambda busy with another update of the same function: transient.
    let conflict = mock!(Client::update_function_code).then_error(|| {
        UpdateFunctionCodeError::ResourceConflictException(
            ResourceConflictException::builder()
                .message("An update is in progress")
                .build(),
        )
    });
    // An invalid request (e.g. a role Lambda cannot assume): permanent.
    let invalid = mock!(Client::create_function).then_error(|| {
        CreateFunctionError::InvalidParameterValueException(
            InvalidParameterValueException::builder().message("bad role").build(),
        )
    });
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&conflict, &invalid], policy);
    let err = lambda
        .update_function_code()
        .function_name("f")
        .send()
        .await
        .unwrap_err();
    let class = JobError::from(DeployError::UpdateCode {
        function: "f".into(),
        source: Box::new(err),
    })
    .class();
    assert_eq!(class, Class::Transient);
    let err = lambda.create_function().function_name("f").send().await.unwrap_err();
    let class = JobError::from(DeployError::Create {
        function: "f".into(),
        source: Box::new(err),
    })
    .class();
    assert_eq!(class, Class::Permanent);
}

#[tokio::test]
async fn a_lost_revision_race_is_retried_not_failed() {
    // Two workers read the same RevisionId; Lambda refuses the second update with
    // PreconditionFailedException. That job is retried (and then re-reads the function, finds the
    // newer ordering tag and reports stale-skipped), never reported as a permanent failure.
    use aws_sdk_lambda::types::error::PreconditionFailedException;
    let lost = mock!(Client::update_function_code).then_error(|| {
        UpdateFunctionCodeError::PreconditionFailedException(
            PreconditionFailedException::builder()
                .message("The Revision Id provided does not match the latest Revision Id.")
                .build(),
        )
    });
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&lost], policy);
    let err = lambda
        .update_function_code()
        .function_name("f")
        .revision_id("r1")
        .send()
        .await
        .unwrap_err();
    let job = JobError::from(DeployError::UpdateCode {
        function: "f".into(),
        source: Box::new(err),
    });
    assert_eq!(job.class(), Class::Transient, "{job}");
    assert!(job.to_string().contains("PreconditionFailedException"), "{job}");
}

#[tokio::test]
async fn a_failed_update_reports_lambdas_own_reason() {
    // moto never fails an update; Lambda does (a role it cannot assume, an ENI limit, a KMS
    // key it may not use), and says why in LastUpdateStatusReason. That reason, with its code,
    // is what the report must carry, not a sentence of ours.
    use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeOutput;
    use aws_sdk_lambda::types::{LastUpdateStatus, LastUpdateStatusReasonCode};
    let reads = mock!(Client::get_function)
        .sequence()
        .output(|| {
            GetFunctionOutput::builder()
                .configuration(
                    FunctionConfiguration::builder()
                        .function_name("throttled-fn")
                        .code_sha256("old")
                        .revision_id("r1")
                        .build(),
                )
                .build()
        })
        .output(|| {
            GetFunctionOutput::builder()
                .configuration(
                    FunctionConfiguration::builder()
                        .function_name("throttled-fn")
                        .last_update_status(LastUpdateStatus::Failed)
                        .last_update_status_reason(
                            "Lambda was unable to decrypt the environment variables because KMS access was denied.",
                        )
                        .last_update_status_reason_code(LastUpdateStatusReasonCode::KmsKeyAccessDenied)
                        .build(),
                )
                .build()
        })
        .build();
    let update = mock!(Client::update_function_code)
        .then_output(|| UpdateFunctionCodeOutput::builder().revision_id("r2").build());
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&reads, &update], policy);
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("p.zip");
    std::fs::write(&zip, b"PK").unwrap();
    let package = auto_lambda_worker::package::Package {
        path: zip.clone(),
        code_sha256: "new".into(),
        size: 2,
        entries: 1,
        unzipped_bytes: 2,
    };
    let role = "arn:aws:iam::123456789012:role/r";
    let current = deploy::describe(&lambda, &spec(), "new", role).await.unwrap();
    let err = deploy::upsert(
        &lambda,
        &spec(),
        &package,
        &deploy::Code::Inline(zip),
        role,
        current,
        &Default::default(),
    )
    .await
    .unwrap_err();
    let job = JobError::from(err);
    let text = job.to_string();
    assert!(text.contains("KMS access was denied"), "{text}");
    assert!(text.contains("KMSKeyAccessDenied"), "{text}");
    assert_eq!(job.class(), Class::Permanent, "{text}");
}
