//! One job: a queue message, the uploads it announces, and what happened to each.
//!
//! For each upload: fetch the exact object, unpack it, resolve its manifest, build its
//! dependencies, package it, verify the package will start, check it is not older than what
//! the function already runs, deploy it, move the alias (or start a gradual deploy), make its
//! function URL, write the status report and send the deployment event. The caller deletes
//! the message only when every upload has a final report. A message may also be the next
//! step of a gradual deploy ([`crate::traffic`]), which updates the report it started.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::artifact;
use crate::coalesce::InHand;
use crate::config::Config;
use crate::deploy::{self, Change, Code, FunctionState};
use crate::deps::{cache::Hit, Builder};
use crate::error::{Class, JobError};
use crate::event::{self, Notification, ObjectCreated};
use crate::manifest::{self, FunctionSpec};
use crate::package::{self, Package};
use crate::queue::{self, Queue, Received};
use crate::report::{self, Outcome, Source, StatusReport};
use crate::traffic::{self, ShiftStatus, Step};

/// Tag on each function: the ordering token of the upload it runs (see [`order_token`]).
pub const TAG_ORDER: &str = "auto-lambda:order";
/// Tag on each function: the upload it runs, `key#versionId-or-ETag`.
pub const TAG_SOURCE: &str = "auto-lambda:source";

/// What the worker needs to run jobs.
#[derive(Debug, Clone)]
pub struct Context {
    pub s3: aws_sdk_s3::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub queue: Queue,
    pub config: Arc<Config>,
    pub in_hand: Arc<InHand>,
    pub builder: Arc<Builder>,
    pub verifier: Arc<crate::verify::Verifier>,
    /// Set when this instance manages its own scale-in protection.
    pub protection: Option<Arc<crate::protection::Protection>>,
    /// Where deployment events go.
    pub notifier: crate::notify::Notifier,
    /// Reads the alarms that guard gradual deploys.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

/// What to do with a message once its job is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Every upload has a final outcome on record.
    Delete,
    /// Something transient failed; let the message reappear after this delay.
    RetryAfter(Duration),
}

/// Works one message to the end and says what to do with it. Never fails: every error is
/// classified, logged and, where there is an upload to speak of, reported.
#[tracing::instrument(skip_all, fields(message_id = %message.message_id, attempt = message.receive_count))]
pub async fn handle(ctx: &Context, message: &Received) -> Disposition {
    let objects = match event::parse(&message.body) {
        Ok(Notification::Created(objects)) => objects,
        Ok(Notification::Ignored(reason)) => {
            tracing::info!(%reason, "Ignoring message.");
            return Disposition::Delete;
        }
        Ok(Notification::ShiftStep(step)) => return traffic::work_step(ctx, message, *step).await,
        Err(err) => {
            // No upload to report on: the log and the metric are the report. Retrying cannot help.
            tracing::warn!(error = %err, body = %truncate(&message.body, 200), "Removing a message that is not an S3 event.");
            crate::metrics::record_outcome("not-an-event");
            return Disposition::Delete;
        }
    };
    let mut disposition = Disposition::Delete;
    for object in objects {
        if let Some(reason) = skip_reason(&ctx.config, &object) {
            tracing::info!(bucket = %object.bucket, key = %object.key, %reason, "Ignoring object.");
            continue;
        }
        if let Disposition::RetryAfter(delay) = work_object(ctx, message, &object).await {
            disposition = Disposition::RetryAfter(delay);
        }
    }
    disposition
}

fn skip_reason(config: &Config, object: &ObjectCreated) -> Option<String> {
    if !config.allowed_buckets.is_empty() && !config.allowed_buckets.contains(&object.bucket) {
        return Some(format!("bucket `{}` is not one of --allowed-buckets", object.bucket));
    }
    if !object.key.starts_with(&config.source_prefix) {
        return Some(format!("outside the source prefix `{}`", config.source_prefix));
    }
    if !object.key.ends_with(".zip") {
        return Some("not a .zip".into());
    }
    None
}

/// Per-stage timings of one upload, and the stage running now (shared, so that a job cut off
/// by its deadline can say where it was).
#[derive(Debug, Default)]
struct Timings {
    done: BTreeMap<&'static str, u64>,
    current: Arc<std::sync::Mutex<&'static str>>,
}

impl Timings {
    /// Runs `fut` as (part of) `stage`: a stage timed twice adds up.
    async fn time<T>(&mut self, stage: &'static str, fut: impl std::future::Future<Output = T>) -> T {
        *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = stage;
        let start = Instant::now();
        let out = fut.await;
        let elapsed = start.elapsed();
        crate::metrics::record_stage(stage, elapsed);
        *self.done.entry(stage).or_default() += elapsed.as_millis() as u64;
        out
    }
}

/// What a successful pass through the stages produced.
struct Done {
    outcome: Outcome,
    spec: FunctionSpec,
    package: Package,
    arn: Option<String>,
    version: Option<String>,
    note: Option<String>,
    /// `built`, `cache-local` or `cache-shared`, when the app has dependencies.
    dependencies: Option<&'static str>,
    /// The file they came from and the tool that installed them.
    dependencies_from: Option<&'static str>,
    installer: Option<&'static str>,
    built_on: Option<&'static str>,
    /// The dependency build's whole output, when a build ran now.
    build_log: Option<String>,
    checks: crate::verify::Checks,
    url: Option<String>,
    /// A gradual deploy started (or resumed), and its first step, sent once the report is.
    shift: Option<(ShiftStatus, Step)>,
}

impl Done {
    /// A newer upload of the same function wins; `note` says which and why.
    fn stale(spec: FunctionSpec, package: Package, arn: Option<String>, note: String) -> Done {
        Done {
            outcome: Outcome::StaleSkipped,
            arn,
            version: None,
            note: Some(note),
            spec,
            package,
            dependencies: None,
            dependencies_from: None,
            installer: None,
            built_on: None,
            build_log: None,
            checks: Default::default(),
            url: None,
            shift: None,
        }
    }
}

/// The longest a status report's PutObject may take (or the job deadline, if shorter): one
/// that never answers must not hold the job; the message is kept and the job runs again.
const REPORT_DEADLINE: Duration = Duration::from_secs(60);

/// Writes `report` within [`REPORT_DEADLINE`]; the error says why not, with its whole cause.
async fn write_report(ctx: &Context, report: &StatusReport) -> Result<String, String> {
    let within = ctx.config.job_timeout().min(REPORT_DEADLINE);
    match tokio::time::timeout(within, report::write(&ctx.s3, &ctx.config.status_prefix, report)).await {
        Ok(Ok(key)) => Ok(key),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "PutObject of the status report did not answer within {within:?}"
        )),
    }
}

/// How much of the build log the report itself carries (its end).
const REPORT_LOG_TAIL_BYTES: usize = 16 * 1024;

/// Stores the whole build log beside the report, within [`REPORT_DEADLINE`]; returns its S3
/// URI. A failure is logged and leaves the report without the link: the report (with the
/// log's tail) is what the job must write, the full log is a convenience.
async fn store_build_log(ctx: &Context, source: &Source, log: &str) -> Option<String> {
    let within = ctx.config.job_timeout().min(REPORT_DEADLINE);
    match tokio::time::timeout(
        within,
        report::write_log(&ctx.s3, &ctx.config.status_prefix, source, log),
    )
    .await
    {
        Ok(Ok(uri)) => Some(uri),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "Cannot store the full build log; the report keeps its tail.");
            None
        }
        Err(_) => {
            tracing::warn!(
                after_ms = within.as_millis() as u64,
                "Storing the full build log did not finish in time; the report keeps its tail."
            );
            None
        }
    }
}

/// A report of `object` that says nothing yet: failed, no details.
fn blank_report(object: &ObjectCreated, message: &Received) -> StatusReport {
    StatusReport {
        outcome: Outcome::Failed,
        source: Source::from(object),
        function_name: None,
        function_arn: None,
        version: None,
        alias: None,
        url: None,
        shift: None,
        code_sha256: None,
        package_bytes: None,
        timings_ms: BTreeMap::new(),
        error: None,
        error_class: None,
        will_retry: false,
        build_log_tail: None,
        build_log: None,
        dependencies: None,
        dependencies_from: None,
        installer: None,
        built_on: None,
        checks: Default::default(),
        dropped_files: Vec::new(),
        message_id: message.message_id.clone(),
        attempt: message.receive_count,
        finished_at: String::new(),
    }
}

/// What a panic said: its `&str` or `String` payload.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map_or_else(|| "a panic without a message".to_owned(), |s| (*s).to_owned()),
    }
}

#[tracing::instrument(skip_all, fields(key = %object.key))]
async fn work_object(ctx: &Context, message: &Received, object: &ObjectCreated) -> Disposition {
    let mut timings = Timings::default();
    let current = timings.current.clone();
    let mut dropped = Vec::new();
    let deadline = ctx.config.job_timeout();
    // Past the deadline the stages' future is dropped: containers are removed by their guards,
    // host installers killed (kill_on_drop), the coalescing claim released. A panic is a bug,
    // but one upload's bug must not take the worker down or leave its message hidden: it is
    // caught here, counted, and reported like any transient failure, so the upload is retried.
    let stages = std::panic::AssertUnwindSafe(run_stages(ctx, object, &mut timings, &mut dropped)).catch_unwind();
    let result = match tokio::time::timeout(deadline, stages).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let what = panic_message(panic);
            crate::metrics::record_panic();
            tracing::error!(panic = %what, "The job panicked (a bug in the worker); the upload will be retried.");
            Err(JobError::Panicked(what))
        }
        Err(_) => {
            let stage = *current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let stage = if stage.is_empty() { "download" } else { stage };
            Err(JobError::DeadlineExceeded { stage, after: deadline })
        }
    };
    let mut report = blank_report(object, message);
    let mut disposition = Disposition::Delete;
    let mut build_log = None;
    let mut first_step = None;
    match result {
        Ok(done) => {
            report.outcome = done.outcome;
            report.function_name = Some(done.spec.name.clone());
            report.function_arn = done.arn;
            report.version = done.version;
            report.alias = done.spec.alias.clone();
            report.url = done.url;
            if let Some((status, step)) = done.shift {
                report.shift = Some(status);
                first_step = Some(step);
            }
            report.code_sha256 = Some(done.package.code_sha256.clone());
            report.package_bytes = Some(done.package.size);
            report.error = done.note;
            report.dependencies = done.dependencies;
            report.dependencies_from = done.dependencies_from;
            report.installer = done.installer;
            report.built_on = done.built_on;
            build_log = done.build_log;
            report.checks = done.checks;
            tracing::info!(function = %done.spec.name, outcome = done.outcome.as_str(), version = ?report.version, code_sha256 = %done.package.code_sha256, "Job done.");
        }
        Err(err) if err.is_superseded() => {
            report.outcome = Outcome::StaleSkipped;
            report.error = Some(format!(
                "a newer upload replaced this object before it was fetched ({err})"
            ));
            tracing::info!(error = %err, "Skipping a superseded upload.");
        }
        Err(err) => {
            let class = err.class();
            report.error = Some(err.to_string());
            build_log = err.build_log().map(str::to_owned);
            report.error_class = Some(match class {
                Class::Permanent => "permanent",
                Class::Transient => "transient",
            });
            if class == Class::Transient {
                report.will_retry = true;
                let delay = queue::retry_delay(ctx.config.retry_base_secs, message.receive_count);
                disposition = Disposition::RetryAfter(delay);
                tracing::warn!(error = %err, retry_in_secs = delay.as_secs(), "Job failed; will retry.");
            } else {
                tracing::warn!(error = %err, "Job failed permanently; the upload must change.");
            }
        }
    }
    if let Some(log) = build_log.filter(|l| !l.is_empty()) {
        report.build_log_tail = Some(crate::deps::tail(&log, REPORT_LOG_TAIL_BYTES));
        report.build_log = store_build_log(ctx, &report.source, &log).await;
    }
    report.timings_ms = timings.done;
    report.dropped_files = dropped;
    report.finished_at = report::now_rfc3339();
    let outcome_label = if report.will_retry {
        "retrying"
    } else {
        report.outcome.as_str()
    };
    crate::metrics::record_outcome(outcome_label);
    match write_report(ctx, &report).await {
        Ok(key) => {
            tracing::debug!(%key, "Status report written.");
            // A gradual deploy's first step goes out only now, so that no step finds the
            // report missing; if it cannot, the job runs again and resumes the shift.
            if let Some(step) = &first_step {
                if let Err(err) = traffic::send_step(ctx, step).await {
                    tracing::warn!(error = %err, "Cannot send the first step of the shift; the upload will be retried.");
                    return Disposition::RetryAfter(queue::retry_delay(
                        ctx.config.retry_base_secs,
                        message.receive_count,
                    ));
                }
            }
            if !report.will_retry {
                let json = serde_json::to_value(&report).expect("a report always serialises");
                let event = match report.outcome {
                    Outcome::Shifting => "shift-started",
                    other => other.as_str(),
                };
                ctx.notifier.publish(event, &json).await;
            }
        }
        Err(err) => {
            // The outcome is not on record: keep the message so the job runs again.
            tracing::warn!(error = %err, "Cannot write the status report; the message will be retried.");
            if disposition == Disposition::Delete {
                disposition =
                    Disposition::RetryAfter(queue::retry_delay(ctx.config.retry_base_secs, message.receive_count));
            }
        }
    }
    disposition
}

async fn run_stages(
    ctx: &Context,
    object: &ObjectCreated,
    timings: &mut Timings,
    dropped: &mut Vec<String>,
) -> Result<Done, JobError> {
    // Fault injection for the tests (feature `failpoints`, env FAILPOINTS=job-stages=...);
    // compiled out of a normal build.
    fail::fail_point!("job-stages");
    let config = &ctx.config;
    let work = match &config.work_dir {
        Some(dir) => tempfile::Builder::new().prefix("auto-lambda-").tempdir_in(dir),
        None => tempfile::Builder::new().prefix("auto-lambda-").tempdir(),
    }
    .map_err(JobError::WorkDir)?;
    let upload = work.path().join("upload.zip");
    let app = work.path().join("app");
    std::fs::create_dir(&app).map_err(JobError::WorkDir)?;

    timings
        .time(
            "download",
            artifact::fetch(&ctx.s3, object, &upload, config.max_zip_bytes),
        )
        .await?;
    let limits = config.limits();
    let (upload_c, app_c) = (upload.clone(), app.clone());
    let unpacked = timings
        .time("unpack", blocking(move || artifact::unpack(&upload_c, &app_c, &limits)))
        .await??;
    if !unpacked.dropped.is_empty() {
        tracing::info!(
            count = unpacked.dropped.len(),
            "Dropped macOS metadata from the upload."
        );
    }
    *dropped = unpacked.dropped;

    let spec = manifest::resolve(
        manifest::read(&app)?,
        &app,
        &default_name(&object.key),
        &config.function_prefix,
        &config.default_runtimes(),
    )?;
    // Before anything is built: the image that builds must be the runtime's interpreter.
    timings.time("verify", ctx.verifier.prepare(&spec)).await?;
    let deps = timings
        .time("build", ctx.builder.build(&app, &spec, work.path()))
        .await?;

    let out = work.path().join("package.zip");
    let app_c = app.clone();
    let deps_zip = deps.as_ref().map(|d| d.zip.clone());
    let package = timings
        .time(
            "package",
            blocking(move || package::build_with_deps(&app_c, deps_zip.as_deref(), &out)),
        )
        .await??;
    let checks = timings
        .time("verify", ctx.verifier.verify(&package.path, &spec))
        .await?;

    let mut done = timings
        .time("deploy", deploy_if_newer(ctx, object, spec, package))
        .await?;
    done.checks = checks;
    if let Some(deps) = deps {
        done.dependencies = Some(match deps.hit {
            None => "built",
            Some(Hit::Local) => "cache-local",
            Some(Hit::Shared) => "cache-shared",
        });
        done.dependencies_from = Some(deps.from);
        done.installer = Some(deps.installer);
        done.built_on = deps.built_on;
        done.build_log = Some(deps.log).filter(|l| !l.is_empty());
    }
    Ok(done)
}

/// Deploys unless the function already runs a newer upload of the same key.
async fn deploy_if_newer(
    ctx: &Context,
    object: &ObjectCreated,
    spec: FunctionSpec,
    package: Package,
) -> Result<Done, JobError> {
    let ours = order_token(object);
    let claim = ctx.in_hand.claim(&spec.name, &ours).await;
    if let Some(newer) = claim.newer_in_hand() {
        let note = format!(
            "a newer upload of {} ({newer}) is in hand and will be deployed instead",
            spec.name
        );
        return Ok(Done::stale(spec, package, None, note));
    }
    let current = deploy::describe(&ctx.lambda, &spec, &package.code_sha256, &ctx.config.role_arn).await?;
    if let Some(state) = &current {
        if let Some(note) = newer_deployed(state, &ours, object) {
            return Ok(Done::stale(spec, package, Some(state.arn.clone()), note));
        }
        if state.tags.get(traffic::TAG_ROLLED_BACK) == Some(&ours) {
            // A redelivered event of an upload an alarm rolled back: never shift to it again.
            let note = "this upload's gradual deploy was rolled back by an alarm; upload it again to retry".to_owned();
            let mut done = Done::stale(spec, package, Some(state.arn.clone()), note);
            done.outcome = Outcome::RolledBack;
            return Ok(done);
        }
    }
    // Before anything changes: a missing alarm, or one that blocks, stops the deploy here.
    let ignored = traffic::check_alarms(ctx, &spec).await?;
    let source = tag_value(&format!(
        "{}#{}",
        object.key,
        object.version_id.as_deref().or(object.etag.as_deref()).unwrap_or("")
    ));
    // An earlier attempt of this very upload already changed the function (its reply was lost,
    // or the worker stopped before the end): finishing that is deploying it, not "unchanged".
    let ours_in_place = current
        .as_ref()
        .is_some_and(|state| state.tags.get(TAG_ORDER) == Some(&ours) && state.tags.get(TAG_SOURCE) == Some(&source));
    let tags_before = current.as_ref().map(|s| s.tags.clone()).unwrap_or_default();
    let mut tags = HashMap::new();
    let ours_token = ours.clone();
    tags.insert(TAG_ORDER.to_owned(), ours);
    tags.insert(TAG_SOURCE.to_owned(), source);
    let code = if package.size > ctx.config.inline_max_bytes {
        let key = artifact::store_package(
            &ctx.s3,
            &object.bucket,
            &ctx.config.artifact_prefix,
            &spec.name,
            &package,
        )
        .await?;
        Code::S3 {
            bucket: object.bucket.clone(),
            key,
        }
    } else {
        Code::Inline(package.path.clone())
    };
    let deployment = deploy::upsert(
        &ctx.lambda,
        &spec,
        &package,
        &code,
        &ctx.config.role_arn,
        current,
        &tags,
    )
    .await?;
    // A shift must be the job's last change, so that no failure after it leaves a shift
    // running under a `failed` report: the URL (on the alias, whatever version that serves)
    // goes first, unless the alias does not exist yet; then the release creates it, and no
    // shift starts (there is nothing to shift from).
    let url_first = match &spec.alias {
        Some(alias) if spec.url.is_some() => traffic::alias_exists(ctx, &spec.name, alias).await?,
        _ => true,
    };
    let mut url = None;
    if url_first {
        url = crate::function_url::reconcile(&ctx.lambda, &spec, &deployment.function_arn, &tags_before).await?;
    }
    let released = match &deployment.version {
        Some(version) => {
            let report_key = report::key_for(&ctx.config.status_prefix, &Source::from(object));
            traffic::release(ctx, &spec, version, ignored, &ours_token, &object.bucket, &report_key).await?
        }
        None => traffic::Released {
            shift: None,
            note: None,
        },
    };
    if !url_first {
        url = crate::function_url::reconcile(&ctx.lambda, &spec, &deployment.function_arn, &tags_before).await?;
    }
    let shift = released.shift;
    let outcome = match deployment.change {
        _ if shift.is_some() => Outcome::Shifting,
        Change::Created | Change::Updated => Outcome::Deployed,
        Change::Unchanged if ours_in_place => Outcome::Deployed,
        Change::Unchanged => Outcome::Unchanged,
    };
    Ok(Done {
        outcome,
        arn: Some(deployment.function_arn),
        version: deployment.version,
        note: released.note,
        spec,
        package,
        dependencies: None,
        dependencies_from: None,
        installer: None,
        built_on: None,
        build_log: None,
        checks: Default::default(),
        url,
        shift,
    })
}

/// The ordering token of an upload. S3's `sequencer` orders events for one key; it is hex of
/// varying length, compared after left-padding. moto sends none, so the fallback is the event
/// time (millisecond resolution): uploads of one key less than a millisecond apart may then be
/// ordered either way, which only matters on the emulator.
pub fn order_token(object: &ObjectCreated) -> String {
    match (&object.sequencer, &object.event_time) {
        (Some(seq), _) => format!("seq:{:0>32}", seq.to_ascii_uppercase()),
        (None, Some(time)) => format!("time:{time}"),
        (None, None) => String::new(),
    }
}

/// If the function runs an upload newer than `ours`, says so.
fn newer_deployed(state: &FunctionState, ours: &str, object: &ObjectCreated) -> Option<String> {
    let theirs = state.tags.get(TAG_ORDER)?;
    let comparable = !ours.is_empty() && theirs.split(':').next() == ours.split(':').next();
    if comparable && theirs.as_str() > ours {
        let from = state.tags.get(TAG_SOURCE).map_or("", String::as_str);
        return Some(format!(
            "the function already runs a newer upload ({from}); {} was not deployed over it",
            object.key
        ));
    }
    None
}

/// Lambda tag values allow letters, digits, spaces and `_.:/=+-@`, up to 256 characters.
fn tag_value(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

/// The default function name: the key's file stem (`apps/hello-api.zip` → `hello-api`).
pub fn default_name(key: &str) -> String {
    Path::new(key)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(key)
        .to_owned()
}

/// Runs `f` on the blocking pool. A panic in it is carried on into this task, where
/// `work_object` catches it like any other panic of the job (reported transient, counted).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, JobError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(JobError::WorkDir(std::io::Error::other(err))),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(seq: Option<&str>, time: Option<&str>) -> ObjectCreated {
        ObjectCreated {
            bucket: "b".into(),
            key: "apps/a.zip".into(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: seq.map(Into::into),
            event_time: time.map(Into::into),
        }
    }

    #[test]
    fn sequencers_compare_after_padding() {
        let short = order_token(&obj(Some("FF"), None));
        let long = order_token(&obj(Some("0100"), None));
        assert!(long > short);
    }

    #[test]
    fn newer_deployment_blocks_older_event() {
        let mut state = FunctionState::default();
        state.tags.insert(
            TAG_ORDER.into(),
            order_token(&obj(None, Some("2026-11-23T07:00:02.000Z"))),
        );
        let older = obj(None, Some("2026-11-23T07:00:01.000Z"));
        assert!(newer_deployed(&state, &order_token(&older), &older).is_some());
        let newer = obj(None, Some("2026-11-23T07:00:03.000Z"));
        assert!(newer_deployed(&state, &order_token(&newer), &newer).is_none());
        // Tokens of different kinds are not compared.
        let seq = obj(Some("01"), None);
        assert!(newer_deployed(&state, &order_token(&seq), &seq).is_none());
    }

    #[test]
    fn names_and_tags() {
        assert_eq!(default_name("apps/hello-api.zip"), "hello-api");
        assert_eq!(tag_value("apps/é x#1?"), "apps/é x_1_");
    }
}
