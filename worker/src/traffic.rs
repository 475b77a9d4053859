//! Where the alias sends traffic once a version is published: all at once, or shifted in
//! steps (canary, linear) with weighted routing, checked against CloudWatch alarms while it
//! shifts and rolled back when one goes off.
//!
//! A shift holds no worker slot and no message for its length. Its state lives in two places
//! any worker can read: the alias itself (`FunctionVersion` is the stable version,
//! `RoutingConfig.AdditionalVersionWeights` the new version's share; Lambda API reference,
//! UpdateAlias) and a *step message* on the jobs queue, sent with `DelaySeconds` (SQS allows
//! up to 900 s; SQS developer guide, "Amazon SQS message timers"). A step message waits in
//! hops of at most [`ALARM_CHECK_SECS`] when the shift has alarms (each hop reads them, so an
//! alarm rolls back within a minute, not an interval) and [`MAX_HOP_SECS`] otherwise.
//! Whichever worker receives it decides with [`decide`] from the alias and the alarms, moves
//! the alias, sends the next step and deletes its message. A worker killed mid-shift loses
//! nothing: the message reappears and another worker takes it.
//!
//! Steps are idempotent against the alias: a step applies only when the alias carries exactly
//! the share the step starts from; alarms are read before that test, so no duplicate can
//! skip a rollback. A step message whose shift is no longer on the alias (promoted, rolled
//! back, or superseded by a newer upload, which starts its own shift from the stable version)
//! ends, and its report says how. Each step sends the next message before it moves the alias,
//! so a crash between the two leaves a duplicate (dropped later), never a stalled shift.
//!
//! The upload's job starts a shift ([`release`]) and sends its first step only after the
//! status report is written ([`send_step`]); a retried job finds its own shift on the alias
//! and resumes it rather than starting again. A rolled-back upload is recorded on the function
//! (tag [`TAG_ROLLED_BACK`]), so a redelivered event of it never shifts traffic again.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use aws_sdk_lambda::operation::get_alias::GetAliasError;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use serde::{Deserialize, Serialize};

use crate::error::{Class, JobError};
use crate::job::{Context, Disposition};
use crate::manifest::{FunctionSpec, Strategy};
use crate::queue::{self, Received};
use crate::report::{self, Outcome};
use crate::sdk_error::CallError;

/// The key that marks a queue message as a step of a shift: `{"auto-lambda-shift-step": …}`.
pub const STEP_KEY: &str = "auto-lambda-shift-step";

/// Tag on the function: the ordering token of the upload whose shift an alarm rolled back.
pub const TAG_ROLLED_BACK: &str = "auto-lambda:rolled-back";

/// How often a shift with alarms reads them, in seconds (one hop of its step message).
pub const ALARM_CHECK_SECS: u64 = 60;

/// The longest hop of a step message without alarms. SQS allows 900 s; 600 keeps every step
/// message younger than the jobs queue's oldest-message alarm (infra: 900 s), whether or not
/// SQS ages a message while it is delayed.
pub const MAX_HOP_SECS: u64 = 600;

/// Why traffic could not be moved. Classified in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum ShiftError {
    /// An AWS call failed (alias, alarms, the step message).
    #[error(transparent)]
    Call(#[from] CallError),
    /// Alarms named in `[deploy]` were not found: always permanent.
    #[error("[deploy] alarms {names:?} do not exist in CloudWatch in this account and region{hint}: create them or fix the names in lambda.toml")]
    MissingAlarms { names: Vec<String>, hint: String },
    /// `block_on_alarm = true` and an alarm was in ALARM before the deploy: permanent.
    #[error("alarm(s) {0:?} are in ALARM and lambda.toml says `block_on_alarm = true`, so nothing was deployed: upload again once they are OK, or set block_on_alarm = false")]
    Blocked(Vec<String>),
}

/// One step of a shift, as carried by its queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The function (its name, with the worker's prefix).
    pub function: String,
    /// The alias whose weights move.
    pub alias: String,
    /// The stable version: where traffic returns on a rollback.
    pub from_version: String,
    /// The version traffic moves to.
    pub to_version: String,
    pub strategy: Strategy,
    /// Percent on `to_version` after each step, ending at 100.
    pub schedule: Vec<u8>,
    /// The index in `schedule` this message applies (1.., the start applied 0).
    pub step: usize,
    /// Seconds between steps.
    pub interval_secs: u32,
    /// When this step is due, in milliseconds since the Unix epoch.
    pub due_at_ms: u64,
    /// The CloudWatch alarms that roll the shift back.
    pub alarms: Vec<String>,
    /// Alarms that were in ALARM when the shift started and have not left it since: they do
    /// not roll back (see [`crate::manifest::DeploySpec::block_on_alarm`]).
    pub ignored_alarms: Vec<String>,
    /// When the shift started (RFC 3339).
    pub started_at: String,
    /// The upload's ordering token (`crate::job::order_token`), recorded on a rollback.
    pub order: String,
    /// The bucket of the upload's status report.
    pub report_bucket: String,
    /// The key of the upload's status report.
    pub report_key: String,
}

/// A shift's progress, as the status report shows it (`shift`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShiftStatus {
    /// `canary` or `linear`.
    pub strategy: Strategy,
    /// The stable version.
    pub from_version: String,
    /// The version traffic moves to.
    pub to_version: String,
    /// Percent of traffic on `to_version` now.
    pub percent: u8,
    /// Steps applied so far, of `steps`.
    pub step: usize,
    /// Steps in all, the last at 100 %.
    pub steps: usize,
    /// When the next step is due (RFC 3339), while shifting.
    pub next_step_at: Option<String>,
    /// The alarms that roll back.
    pub alarms: Vec<String>,
    /// Alarms in ALARM since before the shift, not rolling back until they leave ALARM.
    pub ignored_alarms: Vec<String>,
    /// When the shift started (RFC 3339).
    pub started_at: String,
}

impl Step {
    /// The status with `applied` the index in `schedule` now on the alias.
    fn status(&self, applied: usize, next_step_at: Option<String>) -> ShiftStatus {
        ShiftStatus {
            strategy: self.strategy,
            from_version: self.from_version.clone(),
            to_version: self.to_version.clone(),
            percent: self.schedule.get(applied).copied().unwrap_or(100),
            step: applied + 1,
            steps: self.schedule.len(),
            next_step_at,
            alarms: self.alarms.clone(),
            ignored_alarms: self.ignored_alarms.clone(),
            started_at: self.started_at.clone(),
        }
    }

    /// Whether `alias` carries this shift: the stable version, with a share on the new one.
    fn is_on(&self, alias: &AliasState) -> bool {
        alias.version == self.from_version && alias.weights.contains_key(&self.to_version)
    }

    /// The queue message body.
    pub fn to_body(&self) -> String {
        serde_json::json!({ STEP_KEY: self }).to_string()
    }
}

/// What the alias says now.
#[derive(Debug, Clone, Default)]
pub struct AliasState {
    /// `FunctionVersion`.
    pub version: String,
    /// Additional versions and their share, 0.0..=1.0.
    pub weights: HashMap<String, f64>,
    /// The alias's RevisionId, sent with the next update.
    pub revision: Option<String>,
}

/// What [`release`] did with the alias.
#[derive(Debug, Clone)]
pub struct Released {
    /// The shift started (or resumed), and its first step message, which the caller sends
    /// with [`send_step`] once the status report says `shifting`.
    pub shift: Option<(ShiftStatus, Step)>,
    /// Why a gradual deploy went all at once instead, when it did.
    pub note: Option<String>,
}

/// Reads the alarms of a gradual `spec` before anything is deployed: fails when one does not
/// exist, or when one is in ALARM and the manifest says `block_on_alarm`. Returns the alarms
/// in ALARM now, which the shift ignores until they leave it.
pub async fn check_alarms(ctx: &Context, spec: &FunctionSpec) -> Result<Vec<String>, ShiftError> {
    let deploy = &spec.deploy;
    if deploy.strategy == Strategy::AllAtOnce || deploy.alarms.is_empty() {
        return Ok(Vec::new());
    }
    let read = alarm_states(ctx, &deploy.alarms).await?;
    let missing: Vec<String> = deploy
        .alarms
        .iter()
        .filter(|a| !read.states.contains_key(*a))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let hint = if read.composite_refused {
            " as metric alarms, and composite alarms could not be read (that needs cloudwatch:DescribeAlarms on *; infra: deploy_alarms_composite = true)".to_owned()
        } else {
            String::new()
        };
        return Err(ShiftError::MissingAlarms { names: missing, hint });
    }
    let in_alarm: Vec<String> = deploy
        .alarms
        .iter()
        .filter(|a| read.states.get(*a) == Some(&StateValue::Alarm))
        .cloned()
        .collect();
    if !in_alarm.is_empty() && deploy.block_on_alarm {
        return Err(ShiftError::Blocked(in_alarm));
    }
    if !in_alarm.is_empty() {
        tracing::warn!(function = %spec.name, alarms = ?in_alarm, "Alarms already in ALARM are ignored by this shift until they leave it.");
    }
    Ok(in_alarm)
}

/// Moves `spec.alias` to `version`, or starts a shift to it when `[deploy]` asks for one and
/// the alias serves another version. A shift to `version` already on the alias (this job
/// tried before) is resumed where it is. `ignored` are the alarms [`check_alarms`] found in
/// ALARM; `order` is the upload's ordering token; `report_bucket`/`report_key` locate its
/// status report, which later steps update.
pub async fn release(
    ctx: &Context,
    spec: &FunctionSpec,
    version: &str,
    ignored: Vec<String>,
    order: &str,
    report_bucket: &str,
    report_key: &str,
) -> Result<Released, ShiftError> {
    let Some(alias) = spec.alias.as_deref() else {
        return Ok(Released {
            shift: None,
            note: None,
        });
    };
    let function = spec.name.as_str();
    let current = get_alias(ctx, function, alias).await?;
    let gradual = spec.deploy.strategy != Strategy::AllAtOnce;
    let (stable, mut note) = match &current {
        Some(a) if gradual && a.version != version => match role_mismatch(ctx, function, &a.version, version).await? {
            None => (a.version.clone(), None),
            Some(why) => (String::new(), Some(why)),
        },
        // All at once; or nothing to shift from (a new alias, or this version is already
        // the stable one).
        _ => (String::new(), None),
    };
    if stable.is_empty() {
        set_alias(ctx, function, alias, version, None, current.as_ref()).await?;
        return Ok(Released { shift: None, note });
    }
    let deploy = &spec.deploy;
    let schedule = deploy.schedule();
    let mut step = Step {
        function: function.to_owned(),
        alias: alias.to_owned(),
        from_version: stable.clone(),
        to_version: version.to_owned(),
        strategy: deploy.strategy,
        schedule: schedule.clone(),
        step: 1,
        interval_secs: deploy.interval_secs,
        due_at_ms: now_ms() + u64::from(deploy.interval_secs) * 1000,
        alarms: deploy.alarms.clone(),
        ignored_alarms: ignored,
        started_at: report::now_rfc3339(),
        order: order.to_owned(),
        report_bucket: report_bucket.to_owned(),
        report_key: report_key.to_owned(),
    };
    let current = current.unwrap_or_default();
    if let Some(weight) = current.weights.get(version) {
        // This very shift is on the alias: an earlier attempt of this job started it. Resume
        // from where it is, without moving the alias back.
        let applied = applied_index(&schedule, *weight).unwrap_or(0);
        step.step = applied + 1;
        note = Some(format!("resumed the shift at {} %", schedule[applied]));
        tracing::info!(
            function,
            alias,
            percent = schedule[applied],
            "Resuming the shift in progress to this version."
        );
        let status = step.status(applied, Some(rfc3339_ms(step.due_at_ms)));
        return Ok(Released {
            shift: Some((status, step)),
            note,
        });
    }
    if let Some(other) = current.weights.keys().next() {
        tracing::info!(function, alias, superseded = %other, "A newer upload supersedes the shift in progress; starting from the stable version.");
    }
    tracing::info!(function, alias, from = %stable, to = version, percent = schedule[0], "Starting a gradual deploy.");
    set_alias(
        ctx,
        function,
        alias,
        &stable,
        Some((version, schedule[0])),
        Some(&current),
    )
    .await?;
    crate::metrics::record_shift("started");
    let status = step.status(0, Some(rfc3339_ms(step.due_at_ms)));
    Ok(Released {
        shift: Some((status, step)),
        note,
    })
}

/// Whether `function` has the alias `alias` yet.
pub async fn alias_exists(ctx: &Context, function: &str, alias: &str) -> Result<bool, CallError> {
    Ok(get_alias(ctx, function, alias).await?.is_some())
}

/// Weighted routing needs both versions to have the same execution role (Lambda developer
/// guide, "Implement Lambda canary deployments using a weighted alias"). When the worker's
/// `--role-arn` changed since the stable version, says why the deploy goes all at once.
async fn role_mismatch(
    ctx: &Context,
    function: &str,
    stable: &str,
    version: &str,
) -> Result<Option<String>, CallError> {
    let role = |qualifier: String| {
        let lambda = ctx.lambda.clone();
        let function = function.to_owned();
        async move {
            lambda
                .get_function_configuration()
                .function_name(&function)
                .qualifier(&qualifier)
                .send()
                .await
                .map(|c| c.role().unwrap_or_default().to_owned())
                .map_err(|e| CallError::new(format!("read version {qualifier} of {function}"), e))
        }
    };
    let (old, new) = tokio::try_join!(role(stable.to_owned()), role(version.to_owned()))?;
    Ok((old != new).then(|| {
        format!("went all at once: weighted routing needs both versions to have one execution role, and version {stable} has {old}, version {version} {new}")
    }))
}

/// The index in `schedule` whose share equals `weight` (0.0..=1.0), to within half a percent.
fn applied_index(schedule: &[u8], weight: f64) -> Option<usize> {
    schedule
        .iter()
        .position(|p| (f64::from(*p) - weight * 100.0).abs() < 0.5)
}

/// The alarms' states as read, and whether composite alarms could not be read.
#[derive(Debug, Clone, Default)]
pub struct AlarmStates {
    /// State per alarm name found.
    pub states: HashMap<String, StateValue>,
    /// AccessDenied on the composite query (IAM scoped to alarm ARNs).
    pub composite_refused: bool,
}

/// What a step message must do, given the alias and the alarms now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing: a duplicate of a step applied before, or another chain owns the alias.
    Drop(String),
    /// The shift had already ended on the alias: promoted (it serves `to_version` alone) or
    /// not (it serves `from_version` alone: rolled back, by an alarm or by hand).
    Ended { promoted: bool },
    /// Another deploy moved the alias; it serves this now.
    Superseded(String),
    /// Alarms went off: these, in words.
    RollBack(Vec<String>),
    /// Not due yet: wait another hop.
    Wait,
    /// All traffic to `to_version`.
    Promote,
    /// `to_version` gets this percent.
    Step(u8),
}

/// Decides a step from the alias (`None`: deleted), the alarms as read (ignored only when the
/// alias is not in this shift) and the time. Alarms come before the duplicate test, so any
/// copy of any step rolls back; `step.ignored_alarms` is updated (an alarm that left ALARM is
/// no longer ignored).
pub fn decide(step: &mut Step, alias: Option<&AliasState>, alarms: &AlarmStates, now_ms: u64) -> Decision {
    let Some(a) = alias else {
        return Decision::Superseded("no alias (it was deleted)".into());
    };
    let Some(weight) = a.weights.get(&step.to_version).filter(|_| step.is_on(a)) else {
        if a.weights.is_empty() && (a.version == step.to_version || a.version == step.from_version) {
            return Decision::Ended {
                promoted: a.version == step.to_version,
            };
        }
        return Decision::Superseded(describe_alias(a));
    };
    step.ignored_alarms
        .retain(|name| alarms.states.get(name) == Some(&StateValue::Alarm));
    let reasons: Vec<String> = step
        .alarms
        .iter()
        .filter(|name| !step.ignored_alarms.contains(name))
        .filter_map(|name| match alarms.states.get(name) {
            Some(StateValue::Alarm) => Some(format!("alarm {name} went into ALARM")),
            Some(_) => None,
            // Deleted mid-shift: what it watched is unwatched now; fail safe.
            None => Some(format!("alarm {name} no longer exists")),
        })
        .collect();
    if !reasons.is_empty() {
        return Decision::RollBack(reasons);
    }
    if step.due_at_ms > now_ms + 500 {
        return Decision::Wait;
    }
    let from = f64::from(step.schedule[step.step - 1]);
    if (weight * 100.0 - from).abs() >= 0.5 {
        return Decision::Drop(format!(
            "the alias has {:.0} % on version {}, not the {from} % step {} starts from: a duplicate step, or another copy of this shift is ahead",
            weight * 100.0,
            step.to_version,
            step.step
        ));
    }
    match step.schedule[step.step] {
        100.. => Decision::Promote,
        percent => Decision::Step(percent),
    }
}

fn describe_alias(a: &AliasState) -> String {
    let mut s = format!("version {}", a.version);
    for (v, w) in &a.weights {
        s.push_str(&format!(" with {:.0} % on version {v}", w * 100.0));
    }
    s
}

/// What one step message did.
#[derive(Debug, Clone, PartialEq)]
enum Advanced {
    Waited,
    Dropped(String),
    Ended { promoted: bool, status: ShiftStatus },
    Superseded { status: ShiftStatus, alias: String },
    RolledBack { status: ShiftStatus, reasons: Vec<String> },
    Promoted(ShiftStatus),
    Stepped(ShiftStatus),
}

/// Reads the alias and the alarms, decides, and acts.
async fn advance(ctx: &Context, mut step: Step) -> Result<Advanced, ShiftError> {
    let (function, alias) = (step.function.clone(), step.alias.clone());
    let current = get_alias(ctx, &function, &alias).await?;
    let in_shift = current.as_ref().is_some_and(|a| step.is_on(a));
    let alarms = if in_shift {
        alarm_states(ctx, &step.alarms).await?
    } else {
        AlarmStates::default()
    };
    let now = now_ms();
    let applied = step.step - 1;
    Ok(match decide(&mut step, current.as_ref(), &alarms, now) {
        Decision::Wait => {
            send_step(ctx, &step).await?;
            Advanced::Waited
        }
        Decision::Drop(why) => Advanced::Dropped(why),
        Decision::Ended { promoted } => {
            let mut status = step.status(step.schedule.len() - 1, None);
            if !promoted {
                status.percent = 0;
            }
            Advanced::Ended { promoted, status }
        }
        Decision::Superseded(alias_now) => {
            crate::metrics::record_shift("superseded");
            Advanced::Superseded {
                status: step.status(applied, None),
                alias: alias_now,
            }
        }
        Decision::RollBack(reasons) => {
            tracing::warn!(%function, %alias, ?reasons, to = %step.from_version, "Alarm: rolling back.");
            set_alias(ctx, &function, &alias, &step.from_version, None, current.as_ref()).await?;
            record_rollback(ctx, &step).await;
            crate::metrics::record_shift("rolled-back");
            let mut status = step.status(applied, None);
            status.percent = 0;
            Advanced::RolledBack { status, reasons }
        }
        Decision::Promote => {
            tracing::info!(%function, %alias, version = %step.to_version, "Promoting: all traffic on the new version.");
            set_alias(ctx, &function, &alias, &step.to_version, None, current.as_ref()).await?;
            crate::metrics::record_shift("promoted");
            Advanced::Promoted(step.status(step.schedule.len() - 1, None))
        }
        Decision::Step(percent) => {
            let next = Step {
                step: step.step + 1,
                due_at_ms: now + u64::from(step.interval_secs) * 1000,
                ..step.clone()
            };
            send_step(ctx, &next).await?;
            tracing::info!(step = next.step, "Sent the next step; moving the alias.");
            // Fault injection for the tests (feature `failpoints`): a worker stopped here has
            // sent the next step but not moved the alias.
            fail::fail_point!("shift-step-sent");
            tracing::info!(%function, %alias, percent, "Shifting traffic.");
            set_alias(
                ctx,
                &function,
                &alias,
                &step.from_version,
                Some((&step.to_version, percent)),
                current.as_ref(),
            )
            .await?;
            crate::metrics::record_shift("stepped");
            Advanced::Stepped(next.status(step.step, Some(rfc3339_ms(next.due_at_ms))))
        }
    })
}

/// Tags the function with the rolled-back upload's token, so that a redelivered event of the
/// same upload does not shift traffic to it again. Best effort: logged when it fails.
async fn record_rollback(ctx: &Context, step: &Step) {
    let tagged = async {
        let arn = ctx
            .lambda
            .get_function_configuration()
            .function_name(&step.function)
            .send()
            .await
            .map_err(|e| crate::sdk_error::describe(&e))?
            .function_arn
            .unwrap_or_default();
        ctx.lambda
            .tag_resource()
            .resource(arn)
            .tags(TAG_ROLLED_BACK, &step.order)
            .send()
            .await
            .map_err(|e| crate::sdk_error::describe(&e))
    };
    if let Err(error) = tagged.await {
        tracing::warn!(function = %step.function, %error, "Cannot record the rollback on the function.");
    }
}

/// On a permanent failure mid-shift: sends all traffic back to the stable version, if the
/// alias still carries this shift. Returns what happened, in words, for the report.
async fn abort(ctx: &Context, step: &Step) -> String {
    let attempt = async {
        let current = get_alias(ctx, &step.function, &step.alias).await?;
        match &current {
            Some(a) if step.is_on(a) => {
                set_alias(
                    ctx,
                    &step.function,
                    &step.alias,
                    &step.from_version,
                    None,
                    current.as_ref(),
                )
                .await?;
                Ok::<_, CallError>(true)
            }
            _ => Ok(false),
        }
    };
    match attempt.await {
        Ok(true) => format!("all traffic went back to version {}", step.from_version),
        Ok(false) => "the alias no longer carried the shift".to_owned(),
        Err(err) => {
            tracing::error!(function = %step.function, alias = %step.alias, error = %err, "Cannot return traffic to the stable version: the alias is split until someone moves it (aws lambda update-alias).");
            format!(
                "traffic could NOT be returned to version {} ({err}): move the alias by hand",
                step.from_version
            )
        }
    }
}

/// Works one step message and settles it: updates the upload's status report and sends the
/// event. A transient failure lets the message come back; a permanent one returns traffic to
/// the stable version and reports `failed`.
#[tracing::instrument(skip_all, fields(message_id = %message.message_id, function = %step.function, step = step.step))]
pub async fn work_step(ctx: &Context, message: &Received, step: Step) -> Disposition {
    let config = &ctx.config;
    let ours = step.function.starts_with(&config.function_prefix)
        && crate::manifest::validate_name(&step.function).is_ok()
        && step.report_key.starts_with(&config.status_prefix)
        && (config.allowed_buckets.is_empty() || config.allowed_buckets.contains(&step.report_bucket));
    let well_formed = (1..step.schedule.len()).contains(&step.step) && step.schedule.last() == Some(&100);
    if !ours || !well_formed {
        tracing::warn!(report = %step.report_key, step = step.step, schedule = ?step.schedule, "Removing a shift step that is malformed, or for a function or report outside this worker's prefixes.");
        crate::metrics::record_outcome("not-an-event");
        return Disposition::Delete;
    }
    let retry = || Disposition::RetryAfter(queue::retry_delay(config.retry_base_secs, message.receive_count));
    let advanced = match tokio::time::timeout(config.job_timeout(), advance(ctx, step.clone())).await {
        Ok(Ok(advanced)) => advanced,
        Ok(Err(err)) => {
            let err = JobError::from(err);
            if err.class() == Class::Transient {
                tracing::warn!(error = %err, "Shift step failed; will retry.");
                return retry();
            }
            let what = abort(ctx, &step).await;
            tracing::warn!(error = %err, %what, "Shift step failed permanently; the shift ends.");
            let error = format!("the {} deploy failed: {err}; {what}", step.strategy.as_str());
            settle(ctx, &step, Outcome::Failed, None, Some(error), false).await;
            return Disposition::Delete;
        }
        Err(_) => {
            tracing::warn!("Shift step did not finish within the job timeout; will retry.");
            return retry();
        }
    };
    let strategy = step.strategy.as_str();
    match advanced {
        Advanced::Waited => {}
        Advanced::Dropped(why) => tracing::info!(%why, "Nothing to do for this shift step."),
        Advanced::Ended { promoted, status } => {
            // Put on record only if the report missed the end (the worker stopped between
            // moving the alias and writing the report); after a recorded end, a duplicate
            // step changes nothing.
            let (outcome, error) = if promoted {
                (Outcome::Deployed, None)
            } else {
                let e = format!(
                    "the {strategy} deploy ended with all traffic back on version {} (rolled back by an alarm, or by hand)",
                    status.from_version
                );
                (Outcome::RolledBack, Some(e))
            };
            settle(ctx, &step, outcome, Some(status), error, true).await;
        }
        Advanced::Superseded { status, alias } => {
            let error = format!("superseded during its {strategy} deploy: the alias now serves {alias} (a newer upload, or a change by hand)");
            settle(ctx, &step, Outcome::StaleSkipped, Some(status), Some(error), false).await;
        }
        Advanced::RolledBack { status, reasons } => {
            let error = format!(
                "{} during the {strategy} deploy: all traffic went back to version {}",
                reasons.join(", "),
                status.from_version
            );
            settle(ctx, &step, Outcome::RolledBack, Some(status), Some(error), false).await;
        }
        Advanced::Promoted(status) => settle(ctx, &step, Outcome::Deployed, Some(status), None, false).await,
        Advanced::Stepped(status) => settle(ctx, &step, Outcome::Shifting, Some(status), None, false).await,
    }
    Disposition::Delete
}

/// Writes a step's outcome into the upload's report and sends the event (`shift-stepped`
/// while shifting, else the outcome). `only_if_unrecorded`: only when the report still says
/// `shifting` for this shift. A report that cannot be updated is logged: the alias has moved,
/// and the next step or the end updates it.
async fn settle(
    ctx: &Context,
    step: &Step,
    outcome: Outcome,
    status: Option<ShiftStatus>,
    error: Option<String>,
    only_if_unrecorded: bool,
) {
    let to_version = step.to_version.clone();
    let shift = status.map(|s| serde_json::to_value(s).expect("a shift status always serialises"));
    let updated = report::update(&ctx.s3, &step.report_bucket, &step.report_key, |r| {
        let unrecorded = r["outcome"] == Outcome::Shifting.as_str() && r["shift"]["to_version"] == to_version.as_str();
        if only_if_unrecorded && !unrecorded {
            return false;
        }
        r["outcome"] = outcome.as_str().into();
        if let Some(shift) = shift {
            r["shift"] = shift;
        }
        r["error"] = error.into();
        r["error_class"] = match outcome {
            Outcome::Failed => "permanent".into(),
            _ => serde_json::Value::Null,
        };
        true
    })
    .await;
    match updated {
        Ok(Some(report)) => {
            if outcome != Outcome::Shifting {
                crate::metrics::record_outcome(outcome.as_str());
            }
            let event = match outcome {
                Outcome::Shifting => "shift-stepped",
                other => other.as_str(),
            };
            ctx.notifier.publish(event, &report).await;
        }
        Ok(None) => tracing::info!("This shift had already ended, and its report says so."),
        Err(err) => tracing::warn!(error = %err, "Cannot update the status report of the shift."),
    }
}

async fn get_alias(ctx: &Context, function: &str, alias: &str) -> Result<Option<AliasState>, CallError> {
    match ctx.lambda.get_alias().function_name(function).name(alias).send().await {
        Ok(out) => Ok(Some(AliasState {
            version: out.function_version().unwrap_or_default().to_owned(),
            weights: out
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .cloned()
                .unwrap_or_default(),
            revision: out.revision_id().map(str::to_owned),
        })),
        Err(e)
            if e.as_service_error()
                .is_some_and(GetAliasError::is_resource_not_found_exception) =>
        {
            Ok(None)
        }
        Err(e) => Err(CallError::new(format!("read alias {alias} of {function}"), e)),
    }
}

/// Points `alias` at `version`, with `extra` = (another version, its percent) as weighted
/// routing, or none (which clears any: RoutingConfig with no weights). Creates the alias when
/// `current` is `None`; an update carries the RevisionId read before, so that of two racing
/// workers one fails with PreconditionFailed (transient) and re-reads.
async fn set_alias(
    ctx: &Context,
    function: &str,
    alias: &str,
    version: &str,
    extra: Option<(&str, u8)>,
    current: Option<&AliasState>,
) -> Result<(), CallError> {
    let routing = AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(
            extra
                .map(|(v, percent)| HashMap::from([(v.to_owned(), f64::from(percent) / 100.0)]))
                .unwrap_or_default(),
        ))
        .build();
    match current {
        Some(current) => {
            ctx.lambda
                .update_alias()
                .function_name(function)
                .name(alias)
                .function_version(version)
                .routing_config(routing)
                .set_revision_id(current.revision.clone())
                .send()
                .await
                .map_err(|e| CallError::new(format!("move alias {alias} of {function}"), e))?;
        }
        None => {
            ctx.lambda
                .create_alias()
                .function_name(function)
                .name(alias)
                .function_version(version)
                .set_routing_config(extra.is_some().then_some(routing))
                .send()
                .await
                .map_err(|e| CallError::new(format!("create alias {alias} of {function}"), e))?;
        }
    }
    Ok(())
}

/// The state of each named alarm that exists, metric or composite. Metric alarms are asked
/// for first (DescribeAlarms' default type); composite ones only for names not found among
/// them, because reading composite alarms needs `cloudwatch:DescribeAlarms` on `*` (DescribeAlarms
/// API reference; an IAM policy scoped to alarm ARNs is refused that call: AccessDenied, noted
/// in [`AlarmStates::composite_refused`]).
async fn alarm_states(ctx: &Context, names: &[String]) -> Result<AlarmStates, CallError> {
    let mut read = AlarmStates::default();
    for kind in [AlarmType::MetricAlarm, AlarmType::CompositeAlarm] {
        let wanted: Vec<String> = names
            .iter()
            .filter(|n| !read.states.contains_key(*n))
            .cloned()
            .collect();
        if wanted.is_empty() {
            break;
        }
        // At most 100 names per manifest, and 100 records per page (MaxRecords): one page.
        let out = ctx
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(wanted.clone()))
            .alarm_types(kind.clone())
            .max_records(100)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if kind == AlarmType::CompositeAlarm && crate::sdk_error::status(&e) == Some(403) => {
                read.composite_refused = true;
                break;
            }
            Err(e) => return Err(CallError::new(format!("read the state of alarms {wanted:?}"), e)),
        };
        let metric = out
            .metric_alarms()
            .iter()
            .filter_map(|a| Some((a.alarm_name()?.to_owned(), a.state_value()?.clone())));
        let composite = out
            .composite_alarms()
            .iter()
            .filter_map(|a| Some((a.alarm_name()?.to_owned(), a.state_value()?.clone())));
        read.states.extend(metric.chain(composite));
    }
    Ok(read)
}

/// Sends `step` to the jobs queue, delayed towards its due time by one hop. The job sends the
/// first step of a shift [`release`] started with it, once the report is written.
pub async fn send_step(ctx: &Context, step: &Step) -> Result<(), CallError> {
    let hop = if step.alarms.is_empty() {
        MAX_HOP_SECS
    } else {
        ALARM_CHECK_SECS
    };
    ctx.queue
        .send(&step.to_body(), hop_delay_secs(step.due_at_ms, now_ms(), hop))
        .await
        .map_err(|e| CallError::new(format!("send the next step of the shift of {}", step.function), e))
}

/// The delay of the next hop towards `due_at_ms`, in whole seconds (rounded up, so a step is
/// never early), at most `max_secs`.
fn hop_delay_secs(due_at_ms: u64, now_ms: u64, max_secs: u64) -> i32 {
    due_at_ms.saturating_sub(now_ms).div_ceil(1000).min(max_secs) as i32
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(schedule: &[u8], index: usize, alarms: &[&str]) -> Step {
        Step {
            function: "orders".into(),
            alias: "live".into(),
            from_version: "1".into(),
            to_version: "2".into(),
            strategy: Strategy::Linear,
            schedule: schedule.to_vec(),
            step: index,
            interval_secs: 300,
            due_at_ms: 1_000,
            alarms: alarms.iter().map(|a| (*a).to_owned()).collect(),
            ignored_alarms: vec![],
            started_at: "2026-11-30T00:00:00.000Z".into(),
            order: "seq:01".into(),
            report_bucket: "b".into(),
            report_key: "status/apps/orders.zip/v1.json".into(),
        }
    }

    fn alias(version: &str, weights: &[(&str, f64)]) -> AliasState {
        AliasState {
            version: version.into(),
            weights: weights.iter().map(|(v, w)| ((*v).to_owned(), *w)).collect(),
            revision: None,
        }
    }

    fn states(pairs: &[(&str, StateValue)]) -> AlarmStates {
        AlarmStates {
            states: pairs.iter().map(|(n, s)| ((*n).to_owned(), s.clone())).collect(),
            composite_refused: false,
        }
    }

    const NOW: u64 = 10_000;

    #[test]
    fn a_step_applies_only_from_the_share_it_starts_from() {
        let sched = [30, 60, 90, 100];
        let ok = states(&[]);
        // Step 1 moves 30 % to 60 %.
        let mut s = step(&sched, 1, &[]);
        assert_eq!(
            decide(&mut s, Some(&alias("1", &[("2", 0.3)])), &ok, NOW),
            Decision::Step(60)
        );
        // Already applied (a duplicate): nothing.
        assert!(matches!(
            decide(&mut s, Some(&alias("1", &[("2", 0.6)])), &ok, NOW),
            Decision::Drop(_)
        ));
        // Behind (sent before a crash, while its own predecessor is not redone yet): nothing.
        let mut s = step(&sched, 2, &[]);
        assert!(matches!(
            decide(&mut s, Some(&alias("1", &[("2", 0.3)])), &ok, NOW),
            Decision::Drop(_)
        ));
        let mut s = step(&sched, 3, &[]);
        assert_eq!(
            decide(&mut s, Some(&alias("1", &[("2", 0.9)])), &ok, NOW),
            Decision::Promote
        );
    }

    #[test]
    fn not_due_waits_and_ended_or_moved_shifts_are_told_apart() {
        let ok = states(&[]);
        let mut s = step(&[10, 100], 1, &[]);
        s.due_at_ms = NOW + 5_000;
        assert_eq!(
            decide(&mut s, Some(&alias("1", &[("2", 0.1)])), &ok, NOW),
            Decision::Wait
        );
        assert_eq!(
            decide(&mut s, Some(&alias("2", &[])), &ok, NOW),
            Decision::Ended { promoted: true }
        );
        assert_eq!(
            decide(&mut s, Some(&alias("1", &[])), &ok, NOW),
            Decision::Ended { promoted: false }
        );
        assert!(matches!(
            decide(&mut s, Some(&alias("1", &[("3", 0.1)])), &ok, NOW),
            Decision::Superseded(_)
        ));
        assert!(matches!(
            decide(&mut s, Some(&alias("3", &[])), &ok, NOW),
            Decision::Superseded(_)
        ));
        assert!(matches!(decide(&mut s, None, &ok, NOW), Decision::Superseded(_)));
    }

    #[test]
    fn alarms_come_before_duplicates_and_waiting() {
        let firing = states(&[("errors", StateValue::Alarm)]);
        // A duplicate (the alias is past its share) that is also not due: still rolls back.
        let mut s = step(&[30, 60, 90, 100], 1, &["errors"]);
        s.due_at_ms = NOW + 60_000;
        let d = decide(&mut s, Some(&alias("1", &[("2", 0.6)])), &firing, NOW);
        assert_eq!(d, Decision::RollBack(vec!["alarm errors went into ALARM".into()]));
        // Deleted mid-shift: fail safe, said as such.
        let d = decide(&mut s, Some(&alias("1", &[("2", 0.6)])), &states(&[]), NOW);
        assert_eq!(d, Decision::RollBack(vec!["alarm errors no longer exists".into()]));
    }

    #[test]
    fn an_alarm_on_before_the_shift_counts_again_once_it_has_left_alarm() {
        let mut s = step(&[10, 100], 1, &["broken"]);
        s.ignored_alarms = vec!["broken".into()];
        let live = alias("1", &[("2", 0.1)]);
        assert_eq!(
            decide(&mut s, Some(&live), &states(&[("broken", StateValue::Alarm)]), NOW),
            Decision::Promote,
            "ignored while it stays in ALARM"
        );
        assert_eq!(
            decide(&mut s, Some(&live), &states(&[("broken", StateValue::Ok)]), NOW),
            Decision::Promote
        );
        assert!(s.ignored_alarms.is_empty(), "left ALARM: no longer ignored");
        assert!(matches!(
            decide(&mut s, Some(&live), &states(&[("broken", StateValue::Alarm)]), NOW),
            Decision::RollBack(_)
        ));
    }

    #[test]
    fn resumed_shifts_find_their_step_and_hops_are_bounded() {
        assert_eq!(applied_index(&[30, 60, 90, 100], 0.6), Some(1));
        assert_eq!(applied_index(&[30, 60, 90, 100], 0.45), None);
        let now = 1_000_000;
        assert_eq!(hop_delay_secs(now + 3_200, now, 60), 4, "rounded up: never early");
        assert_eq!(
            hop_delay_secs(now + 300_000, now, 60),
            60,
            "alarms are read every minute"
        );
        assert_eq!(hop_delay_secs(now + 3_600_000, now, MAX_HOP_SECS), 600);
        assert_eq!(hop_delay_secs(now - 5, now, 60), 0, "overdue: at once");
    }

    #[test]
    fn step_messages_round_trip_and_reject_strangers() {
        let step = step(&[10, 100], 1, &["orders-errors"]);
        let body: serde_json::Value = serde_json::from_str(&step.to_body()).unwrap();
        assert_eq!(body[STEP_KEY]["strategy"], "linear");
        let back: Step = serde_json::from_value(body[STEP_KEY].clone()).unwrap();
        assert_eq!(back, step);
        let status = step.status(0, None);
        assert_eq!((status.percent, status.step, status.steps), (10, 1, 2));
        let mut odd = body[STEP_KEY].clone();
        odd["extra"] = 1.into();
        assert!(serde_json::from_value::<Step>(odd).is_err());
    }
}
