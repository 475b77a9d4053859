//! The bucket: uploading an app and reading the worker's status reports.
//!
//! The worker files each upload's report at `<status prefix><key>/<id>.json`, where `id` is
//! the event's `versionId` on a versioned bucket and the object's ETag otherwise
//! (`auto_lambda_worker::report::key_for`). A report with `will_retry: true` is not final: the
//! worker is retrying a transient failure, and the final report replaces it.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

/// Why the bucket could not be used. Always an exit with [`crate::ExitCode::Aws`].
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot upload to s3://{bucket}/{key}: {message}")]
    Upload {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("cannot read s3://{bucket}/{key}: {message}")]
    Read {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("no status report for s3://{bucket}/{key} under {prefix}")]
    NoReport {
        bucket: String,
        key: String,
        prefix: String,
    },
}

/// An upload, and where its report will be.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// When S3 stored the object (its `Last-Modified`, whole seconds, S3's clock). A report
    /// whose event is older belongs to an earlier upload: on a bucket without versioning the
    /// same bytes have the same ETag, so their reports share a key until the worker rewrites it.
    pub stored_at: Option<aws_smithy_types::DateTime>,
    pub bucket: String,
    /// Report keys to look at, in order: by versionId (if the bucket gave one), by ETag.
    pub report_keys: Vec<String>,
}

/// Uploads the zip at `zip` as `key` (a single PUT, never multipart: a multipart upload sends
/// its event twice on some emulators, and an app is small).
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    zip: &Path,
    status_prefix: &str,
) -> Result<Uploaded, RemoteError> {
    let fail = |message: String| RemoteError::Upload {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message,
    };
    let body = ByteStream::from_path(zip).await.map_err(|e| fail(e.to_string()))?;
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/zip")
        .body(body)
        .send()
        .await
        .map_err(|e| fail(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()))?;
    current(s3, bucket, key, out.version_id(), status_prefix).await
}

/// The object now stored at `key` (the given version, or the latest), and where its report
/// will be: by versionId when the bucket keeps versions, else by ETag.
pub async fn current(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    status_prefix: &str,
) -> Result<Uploaded, RemoteError> {
    let mut head = s3.head_object().bucket(bucket).key(key);
    if let Some(v) = version_id {
        head = head.version_id(v);
    }
    let head = head.send().await.map_err(|e| {
        if e.as_service_error().is_some_and(|s| s.is_not_found()) {
            RemoteError::NoReport {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                prefix: format!("{status_prefix}{key}/ (no such upload)"),
            }
        } else {
            RemoteError::Read {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                message: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            }
        }
    })?;
    let mut ids = Vec::new();
    if let Some(v) = head.version_id().filter(|v| !v.is_empty() && *v != "null") {
        ids.push(v.to_owned());
    }
    if let Some(etag) = head.e_tag() {
        ids.push(etag.trim_matches('"').to_owned());
    }
    Ok(Uploaded {
        stored_at: head.last_modified().copied(),
        bucket: bucket.to_owned(),
        report_keys: ids
            .into_iter()
            .map(|id| format!("{status_prefix}{key}/{id}.json"))
            .collect(),
    })
}

/// Reads one report, `None` if it is not there (yet).
async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<Value>, RemoteError> {
    let fail = |message: String| RemoteError::Read {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message,
    };
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let bytes = out.body.collect().await.map_err(|e| fail(e.to_string()))?.into_bytes();
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| fail(e.to_string()))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(fail(
            aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
        )),
    }
}

/// Whether `report` is about an upload stored at or after `stored_at` (whole seconds): its
/// `source.event_time` is the S3 event's time, on S3's clock like `Last-Modified`.
fn is_for(report: &Value, stored_at: Option<aws_smithy_types::DateTime>) -> bool {
    use aws_smithy_types::date_time::Format;
    let (Some(stored_at), Some(event_time)) = (stored_at, report["source"]["event_time"].as_str()) else {
        return true;
    };
    aws_smithy_types::DateTime::from_str(event_time, Format::DateTime).map_or(true, |t| t.secs() >= stored_at.secs())
}

/// Whether a report is final (the worker will not replace it): not a failure it will retry,
/// and not a gradual deploy still `shifting`.
pub fn is_final(report: &Value) -> bool {
    !report["will_retry"].as_bool().unwrap_or(false) && report["outcome"] != "shifting"
}

/// Follows the report of `upload` until it is final or `timeout` passes. `progress` is called
/// about once a second with the time waited and the latest report, if any. `Ok(None)`: timed
/// out.
pub async fn wait(
    s3: &aws_sdk_s3::Client,
    upload: &Uploaded,
    timeout: Duration,
    mut progress: impl FnMut(Duration, Option<&Value>),
) -> Result<Option<Value>, RemoteError> {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut latest = None;
    loop {
        for key in &upload.report_keys {
            if let Some(report) = read(s3, &upload.bucket, key).await? {
                if !is_for(&report, upload.stored_at) {
                    continue; // an earlier upload's report, not yet replaced
                }
                if is_final(&report) {
                    return Ok(Some(report));
                }
                latest = Some(report);
                break;
            }
        }
        if started.elapsed() >= timeout {
            return Ok(None);
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            progress(started.elapsed(), latest.as_ref());
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The newest report filed for `key` (any upload of it), by the time the worker wrote it.
pub async fn latest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    status_prefix: &str,
) -> Result<Value, RemoteError> {
    let prefix = format!("{status_prefix}{key}/");
    let fail = |message: String| RemoteError::Read {
        bucket: bucket.to_owned(),
        key: prefix.clone(),
        message,
    };
    let mut newest: Option<(aws_smithy_types::DateTime, String)> = None;
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| fail(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()))?;
        for object in page.contents() {
            if let (Some(k), Some(modified)) = (object.key(), object.last_modified()) {
                if k.ends_with(".json") && newest.as_ref().is_none_or(|(t, _)| modified > t) {
                    newest = Some((*modified, k.to_owned()));
                }
            }
        }
    }
    let Some((_, report_key)) = newest else {
        return Err(RemoteError::NoReport {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            prefix,
        });
    };
    read(s3, bucket, &report_key)
        .await?
        .ok_or_else(|| RemoteError::NoReport {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            prefix: prefix.clone(),
        })
}
