//! The status report: one JSON object per upload, written to the same bucket under the status
//! prefix, so that the uploader learns what happened without access to the workers.
//!
//! Key: `<status-prefix><source key>/<versionId or ETag>.json`, e.g.
//! `status/apps/hello-api.zip/0a1b2c….json`. One report per upload means a late, stale event
//! can never overwrite the report of a newer one. A transient failure writes a report with
//! `"will_retry": true`, which the final outcome later replaces.

use std::collections::BTreeMap;

use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use serde::Serialize;

use crate::event::ObjectCreated;

/// How an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The function now runs this upload.
    Deployed,
    /// The function already ran exactly this package and configuration.
    Unchanged,
    /// A newer upload of the same key was already deployed, or replaced this one in S3.
    StaleSkipped,
    /// See `error`.
    Failed,
    /// A gradual deploy is moving traffic to this upload's version; `shift` tells how far.
    /// Not final: later steps replace it with `deployed`, `rolled-back` or `stale-skipped`.
    Shifting,
    /// An alarm went off during a gradual deploy; the alias serves the previous version again
    /// (`error` names the alarm).
    RolledBack,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::Unchanged => "unchanged",
            Outcome::StaleSkipped => "stale-skipped",
            Outcome::Failed => "failed",
            Outcome::Shifting => "shifting",
            Outcome::RolledBack => "rolled-back",
        }
    }
}

/// The upload a report is about.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub sequencer: Option<String>,
    pub event_time: Option<String>,
}

impl From<&ObjectCreated> for Source {
    fn from(o: &ObjectCreated) -> Self {
        Self {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            version_id: o.version_id.clone(),
            etag: o.etag.clone(),
            sequencer: o.sequencer.clone(),
            event_time: o.event_time.clone(),
        }
    }
}

/// What the uploader reads.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub outcome: Outcome,
    pub source: Source,
    pub function_name: Option<String>,
    pub function_arn: Option<String>,
    pub version: Option<String>,
    pub alias: Option<String>,
    /// The function URL on the alias, when lambda.toml has `[url]`.
    pub url: Option<String>,
    /// A gradual deploy's progress, when one runs for this upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<crate::traffic::ShiftStatus>,
    pub code_sha256: Option<String>,
    pub package_bytes: Option<u64>,
    /// Milliseconds per stage: download, unpack, build, package, verify, deploy.
    pub timings_ms: BTreeMap<&'static str, u64>,
    /// The error in plain words, for failed and stale-skipped outcomes.
    pub error: Option<String>,
    /// `permanent` (fix the upload) or `transient` (the worker retries).
    pub error_class: Option<&'static str>,
    pub will_retry: bool,
    /// Last 16 KiB of the dependency build's output (or of a failed load check's), when
    /// one ran.
    pub build_log_tail: Option<String>,
    /// The whole of that output, as an S3 URI: `s3://<bucket>/<status-prefix><key>/<id>.log`
    /// (see [`log_key_for`]). Absent when nothing was built, or when storing it failed (the
    /// worker's log says why; the tail is still here).
    pub build_log: Option<String>,
    /// Where the native dependencies came from: `built`, `cache-local`, `cache-shared`.
    pub dependencies: Option<&'static str>,
    /// Which file the dependencies came from: `requirements.txt`, `uv.lock`, `poetry.lock`,
    /// `pylock.toml`, `pyproject.toml (unlocked)`, `package-lock.json`.
    pub dependencies_from: Option<&'static str>,
    /// What installed them: `uv`, `pip` or `npm`.
    pub installer: Option<&'static str>,
    /// Where, when built now: `worker` (prebuilt wheels only, no container) or `container`.
    pub built_on: Option<&'static str>,
    /// What verification proved before the deploy, check → result, e.g. `import: ok (Python
    /// 3.13.5)`, `handler: app.handler callable`, `elf: 3 files, x86_64, glibc ≤ 2.28`.
    pub checks: crate::verify::Checks,
    /// Entries of the upload left out of the package: macOS Finder metadata (`__MACOSX/`,
    /// `._*`, `.DS_Store`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_files: Vec<String>,
    pub message_id: String,
    pub attempt: u32,
    pub finished_at: String,
}

/// Where the report for `source` goes.
pub fn key_for(status_prefix: &str, source: &Source) -> String {
    format!("{}.json", stem_for(status_prefix, source))
}

/// Where the full build log for `source` goes: beside its report, ending `.log`.
pub fn log_key_for(status_prefix: &str, source: &Source) -> String {
    format!("{}.log", stem_for(status_prefix, source))
}

fn stem_for(status_prefix: &str, source: &Source) -> String {
    let id = source
        .version_id
        .as_deref()
        .or(source.etag.as_deref())
        .unwrap_or("unversioned");
    format!("{status_prefix}{}/{id}", source.key)
}

/// Writing a status report failed; the SDK's error is kept, with its whole cause chain.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the status report s3://{bucket}/{key}: {}",
    crate::sdk_error::describe(source)
)]
pub struct WriteError {
    pub bucket: String,
    pub key: String,
    #[source]
    pub source: Box<SdkError<PutObjectError, HttpResponse>>,
}

/// Writes the report; returns its key. The message is deleted only after this succeeds.
pub async fn write(s3: &aws_sdk_s3::Client, status_prefix: &str, report: &StatusReport) -> Result<String, WriteError> {
    let key = key_for(status_prefix, &report.source);
    let body = serde_json::to_vec_pretty(report).expect("a report always serialises");
    put(s3, &report.source.bucket, &key, "application/json", body).await?;
    Ok(key)
}

/// Reads the report at `bucket`/`key` as JSON, lets `change` edit it, and writes it back
/// unless `change` returns false; returns the new report, or `None` when nothing was written. For the steps of a gradual deploy, which change only the outcome,
/// `shift`, `error` and `finished_at` of a report a job wrote (the job writes it before it
/// sends the first step). A report that cannot be read is an error, never a blank start: on
/// AWS a missing key reads as AccessDenied without `s3:ListBucket`, and a passing fault must
/// not wipe a report's fields. One that is not JSON (written by hand) starts from `{}`.
pub async fn update(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    change: impl FnOnce(&mut serde_json::Value) -> bool,
) -> Result<Option<serde_json::Value>, String> {
    let mut report = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| format!("cannot read the status report s3://{bucket}/{key}: {e}"))?;
            serde_json::from_slice(&bytes.into_bytes()).unwrap_or_else(|_| serde_json::json!({}))
        }
        Err(e) => {
            return Err(format!(
                "cannot read the status report s3://{bucket}/{key}: {}",
                crate::sdk_error::describe(&e)
            ))
        }
    };
    if !change(&mut report) {
        return Ok(None);
    }
    if let Some(map) = report.as_object_mut() {
        map.insert("finished_at".into(), now_rfc3339().into());
        map.insert("will_retry".into(), false.into());
    }
    let body = serde_json::to_vec_pretty(&report).expect("JSON always serialises");
    put(s3, bucket, key, "application/json", body)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(report))
}

/// Stores the whole build log of `source` beside its report (`text/plain; charset=utf-8`);
/// returns its S3 URI, for [`StatusReport::build_log`].
pub async fn write_log(
    s3: &aws_sdk_s3::Client,
    status_prefix: &str,
    source: &Source,
    log: &str,
) -> Result<String, WriteError> {
    let key = log_key_for(status_prefix, source);
    put(
        s3,
        &source.bucket,
        &key,
        "text/plain; charset=utf-8",
        log.as_bytes().to_vec(),
    )
    .await?;
    Ok(format!("s3://{}/{key}", source.bucket))
}

async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(), WriteError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| WriteError {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source: Box::new(e),
        })?;
    Ok(())
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefers_version_then_etag() {
        let mut s = Source {
            bucket: "b".into(),
            key: "apps/a b.zip".into(),
            version_id: None,
            etag: Some("e1".into()),
            sequencer: None,
            event_time: None,
        };
        assert_eq!(key_for("status/", &s), "status/apps/a b.zip/e1.json");
        s.version_id = Some("v9".into());
        assert_eq!(key_for("status/", &s), "status/apps/a b.zip/v9.json");
        assert_eq!(log_key_for("status/", &s), "status/apps/a b.zip/v9.log");
    }

    #[test]
    fn outcome_serialises_kebab() {
        assert_eq!(
            serde_json::to_string(&Outcome::StaleSkipped).unwrap(),
            "\"stale-skipped\""
        );
    }
}
