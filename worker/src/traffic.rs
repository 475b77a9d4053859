//! Where the alias sends traffic once a version is published: all at once, or shifted in
//! steps (canary, linear) with weighted routing, checked against CloudWatch alarms at every
//! step and rolled back when one is in ALARM.
//!
//! A shift holds no worker slot and no message for its length. Its state lives in two places
//! any worker can read: the alias itself (`FunctionVersion` is the stable version,
//! `RoutingConfig.AdditionalVersionWeights` the new version's share; Lambda API reference,
//! UpdateAlias) and a *step message* on the jobs queue, sent with `DelaySeconds` (SQS allows
//! up to 900 s, SQS developer guide, "Amazon SQS message timers"; the worker waits at most
//! [`MAX_DELAY_SECS`] per hop, and a longer interval in several hops). Whichever worker
//! receives the step checks the alarms and moves the alias one step, sends the next step, and deletes its message. A worker killed mid-shift loses
//! nothing: the message reappears and another worker takes it.
//!
//! Steps are idempotent against the alias: a step message whose shift is no longer on the
//! alias (promoted, rolled back, or superseded by a newer upload, which starts its own shift
//! from the stable version) ends quietly or reports `stale-skipped`; a duplicate of a step
//! already applied is dropped. Each step sends the next message before it moves the alias,
//! so that a crash between the two leaves a duplicate (dropped later), never a stalled shift.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use aws_sdk_lambda::operation::get_alias::GetAliasError;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use serde::{Deserialize, Serialize};

use crate::job::Context;
use crate::manifest::{FunctionSpec, Strategy};
use crate::sdk_error::CallError;

/// The key that marks a queue message as a step of a shift: `{"auto-lambda-shift-step": …}`.
pub const STEP_KEY: &str = "auto-lambda-shift-step";

/// The longest a step message waits in one hop. SQS allows up to 900 s (SendMessage
/// `DelaySeconds`); 600 keeps every step message younger than the jobs queue's
/// oldest-message alarm (infra: 900 s), whether or not SQS ages a message while it is delayed
/// (ApproximateAgeOfOldestMessage: "the oldest non-deleted message").
const MAX_DELAY_SECS: u64 = 600;

/// Why traffic could not be moved. Classified in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum ShiftError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("[deploy] alarms {0:?} do not exist in CloudWatch (in this account and region): create them or fix the names in lambda.toml")]
    MissingAlarms(Vec<String>),
    #[error("alarm(s) {alarms:?} were already in ALARM, and lambda.toml says `block_on_alarm = true`: version {version} is published but takes no traffic; upload again once the alarm is OK, or set block_on_alarm = false")]
    Blocked { alarms: Vec<String>, version: String },
}

/// One step of a shift, as carried by its queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub function: String,
    pub alias: String,
    /// The stable version: where traffic returns on a rollback.
    pub from_version: String,
    /// The version traffic moves to.
    pub to_version: String,
    pub strategy: String,
    /// Percent on `to_version` after each step, ending at 100.
    pub schedule: Vec<u8>,
    /// The index in `schedule` this message applies (1.., the start applied 0).
    pub step: usize,
    pub interval_secs: u32,
    /// When this step is due, in milliseconds since the Unix epoch.
    pub due_at_ms: u64,
    pub alarms: Vec<String>,
    /// Alarms that were in ALARM when the shift started and have not left it since: they do
    /// not roll back (see [`crate::manifest::DeploySpec::block_on_alarm`]).
    pub ignored_alarms: Vec<String>,
    pub started_at: String,
    /// Where the upload's status report is: bucket and key.
    pub report_bucket: String,
    pub report_key: String,
}

/// A shift's progress, as the status report shows it (`shift`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShiftStatus {
    pub strategy: String,
    pub from_version: String,
    pub to_version: String,
    /// Percent of traffic on `to_version` now.
    pub percent: u8,
    /// Steps applied so far, of `steps`.
    pub step: usize,
    pub steps: usize,
    /// When the next step is due (RFC 3339), while shifting.
    pub next_step_at: Option<String>,
    pub alarms: Vec<String>,
    pub ignored_alarms: Vec<String>,
    pub started_at: String,
}

impl Step {
    fn status(&self, applied: usize, next_step_at: Option<String>) -> ShiftStatus {
        ShiftStatus {
            strategy: self.strategy.clone(),
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

    /// The queue message body.
    pub fn to_body(&self) -> String {
        serde_json::json!({ STEP_KEY: self }).to_string()
    }
}

/// What the alias says now.
#[derive(Debug, Clone)]
struct AliasState {
    version: String,
    /// Additional versions and their share, 0.0..=1.0.
    weights: HashMap<String, f64>,
    revision: Option<String>,
}

/// Moves `spec.alias` to `version`, or starts a shift to it when `[deploy]` asks for one and
/// the alias already serves another version. Returns the shift's status when one started.
/// `report_bucket`/`report_key` locate the upload's status report, which later steps update.
pub async fn release(
    ctx: &Context,
    spec: &FunctionSpec,
    version: &str,
    report_bucket: &str,
    report_key: &str,
) -> Result<Option<ShiftStatus>, ShiftError> {
    let Some(alias) = spec.alias.as_deref() else {
        return Ok(None);
    };
    let function = spec.name.as_str();
    let current = get_alias(ctx, function, alias).await?;
    let stable = match (&current, spec.deploy.strategy) {
        (Some(a), Strategy::Canary | Strategy::Linear) if a.version != version => a.version.clone(),
        // All at once; or nothing to shift from (a new alias, or this version is already
        // the stable one): the alias points at `version` alone, ending any shift on it.
        _ => {
            set_alias(ctx, function, alias, version, None, current.as_ref()).await?;
            return Ok(None);
        }
    };
    if let Some(a) = &current {
        if let Some(other) = a.weights.keys().next() {
            tracing::info!(function, alias, superseded = %other, "A newer upload supersedes the shift in progress; starting from the stable version.");
        }
    }
    let deploy = &spec.deploy;
    let states = alarm_states(ctx, &deploy.alarms).await?;
    let missing: Vec<String> = deploy
        .alarms
        .iter()
        .filter(|a| !states.contains_key(*a))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(ShiftError::MissingAlarms(missing));
    }
    let in_alarm: Vec<String> = deploy
        .alarms
        .iter()
        .filter(|a| states.get(*a) == Some(&StateValue::Alarm))
        .cloned()
        .collect();
    if !in_alarm.is_empty() {
        if deploy.block_on_alarm {
            return Err(ShiftError::Blocked {
                alarms: in_alarm,
                version: version.to_owned(),
            });
        }
        tracing::warn!(function, alarms = ?in_alarm, "Alarms already in ALARM are ignored by this shift until they leave it.");
    }
    let schedule = deploy.schedule();
    let now = now_ms();
    let step = Step {
        function: function.to_owned(),
        alias: alias.to_owned(),
        from_version: stable.clone(),
        to_version: version.to_owned(),
        strategy: deploy.strategy.as_str().to_owned(),
        schedule: schedule.clone(),
        step: 1,
        interval_secs: deploy.interval_secs,
        due_at_ms: now + u64::from(deploy.interval_secs) * 1000,
        alarms: deploy.alarms.clone(),
        ignored_alarms: in_alarm,
        started_at: crate::report::now_rfc3339(),
        report_bucket: report_bucket.to_owned(),
        report_key: report_key.to_owned(),
    };
    // The alias first, then the step: if the worker stops between the two, the upload's
    // message comes back and this start runs again (PublishVersion returns the same version).
    tracing::info!(function, alias, from = %stable, to = version, percent = schedule[0], "Starting a gradual deploy.");
    set_alias(
        ctx,
        function,
        alias,
        &stable,
        Some((version, schedule[0])),
        current.as_ref(),
    )
    .await?;
    send_step(ctx, &step).await?;
    crate::metrics::record_shift("started");
    Ok(Some(step.status(0, Some(rfc3339_ms(step.due_at_ms)))))
}

/// What one step message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Advanced {
    /// Not due yet: sent on with the rest of the delay.
    Deferred,
    /// The step was applied before (a duplicate message): nothing to do.
    Duplicate(String),
    /// The shift had already ended on the alias: `promoted` (it serves `to_version` alone) or
    /// not (it serves `from_version` alone: rolled back, by an alarm or by hand). Usually a
    /// duplicate message; after a crash between moving the alias and writing the report, the
    /// report still says `shifting`, and the caller puts the end on record.
    Ended { promoted: bool, status: ShiftStatus },
    /// The alias moved on; the status tells where.
    Stepped(ShiftStatus),
    /// All traffic is on the new version.
    Promoted(ShiftStatus),
    /// An alarm tripped: all traffic is back on the stable version.
    RolledBack { status: ShiftStatus, alarms: Vec<String> },
    /// Another deploy moved the alias: this shift is over.
    Superseded { status: ShiftStatus, alias_version: String },
}

/// Works one step message: see the module docs.
pub async fn advance(ctx: &Context, mut step: Step) -> Result<Advanced, ShiftError> {
    let now = now_ms();
    if step.due_at_ms > now + 500 {
        send_step(ctx, &step).await?;
        return Ok(Advanced::Deferred);
    }
    let function = step.function.clone();
    let alias = step.alias.clone();
    let applied = step.step - 1;
    let Some(current) = get_alias(ctx, &function, &alias).await? else {
        return Ok(Advanced::Superseded {
            status: step.status(applied, None),
            alias_version: "(the alias was deleted)".into(),
        });
    };
    let on_new = current.weights.get(&step.to_version).copied();
    match (current.version == step.from_version, on_new) {
        (true, Some(weight)) => {
            let expected = f64::from(step.schedule.get(applied).copied().unwrap_or(100));
            if weight * 100.0 > expected + 0.5 {
                return Ok(Advanced::Duplicate(format!(
                    "step {} of the shift to version {} was already applied",
                    step.step, step.to_version
                )));
            }
        }
        _ if current.weights.is_empty()
            && (current.version == step.to_version || current.version == step.from_version) =>
        {
            let promoted = current.version == step.to_version;
            let mut status = step.status(step.schedule.len() - 1, None);
            if !promoted {
                status.percent = 0;
            }
            return Ok(Advanced::Ended { promoted, status });
        }
        _ => {
            return Ok(Advanced::Superseded {
                status: step.status(applied, None),
                alias_version: describe_alias(&current),
            });
        }
    }

    let states = alarm_states(ctx, &step.alarms).await?;
    step.ignored_alarms
        .retain(|a| states.get(a) == Some(&StateValue::Alarm));
    let tripped: Vec<String> = step
        .alarms
        .iter()
        .filter(|a| !step.ignored_alarms.contains(a))
        .filter(|a| match states.get(*a) {
            Some(state) => *state == StateValue::Alarm,
            // Deleted mid-shift: what it watched is unwatched now; fail safe.
            None => true,
        })
        .cloned()
        .collect();
    if !tripped.is_empty() {
        tracing::warn!(%function, %alias, alarms = ?tripped, to = %step.from_version, "Alarm in ALARM: rolling back.");
        set_alias(ctx, &function, &alias, &step.from_version, None, Some(&current)).await?;
        crate::metrics::record_shift("rolled-back");
        let mut status = step.status(applied, None);
        status.percent = 0;
        return Ok(Advanced::RolledBack {
            status,
            alarms: tripped,
        });
    }
    let target = step.schedule.get(step.step).copied().unwrap_or(100);
    if target >= 100 {
        tracing::info!(%function, %alias, version = %step.to_version, "Promoting: all traffic on the new version.");
        set_alias(ctx, &function, &alias, &step.to_version, None, Some(&current)).await?;
        crate::metrics::record_shift("promoted");
        return Ok(Advanced::Promoted(step.status(step.schedule.len() - 1, None)));
    }
    let next = Step {
        step: step.step + 1,
        due_at_ms: now + u64::from(step.interval_secs) * 1000,
        ..step.clone()
    };
    send_step(ctx, &next).await?;
    tracing::info!(%function, %alias, percent = target, "Shifting traffic.");
    set_alias(
        ctx,
        &function,
        &alias,
        &step.from_version,
        Some((&step.to_version, target)),
        Some(&current),
    )
    .await?;
    crate::metrics::record_shift("stepped");
    Ok(Advanced::Stepped(
        next.status(step.step, Some(rfc3339_ms(next.due_at_ms))),
    ))
}

fn describe_alias(a: &AliasState) -> String {
    let mut s = format!("version {}", a.version);
    for (v, w) in &a.weights {
        s.push_str(&format!(" with {:.0} % on version {v}", w * 100.0));
    }
    s
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
/// routing, or none (which clears any). Creates the alias when `current` is `None`; an
/// update carries the RevisionId read before, so that of two racing workers one fails with
/// PreconditionFailed (transient) and re-reads.
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
/// them, because reading composite alarms needs `cloudwatch:DescribeAlarms` on `*` (an IAM
/// policy scoped to alarm ARNs is refused the whole call; see infra/README.md,
/// `deploy_alarms_composite`).
async fn alarm_states(ctx: &Context, names: &[String]) -> Result<HashMap<String, StateValue>, CallError> {
    let mut states = HashMap::new();
    if names.is_empty() {
        return Ok(states);
    }
    for kind in [AlarmType::MetricAlarm, AlarmType::CompositeAlarm] {
        let wanted: Vec<String> = names.iter().filter(|n| !states.contains_key(*n)).cloned().collect();
        if wanted.is_empty() {
            break;
        }
        let out = ctx
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(wanted.clone()))
            .alarm_types(kind.clone())
            .send()
            .await
            .map_err(|e| CallError::new(format!("read the state of {} alarms {wanted:?}", kind.as_str()), e))?;
        let metric = out
            .metric_alarms()
            .iter()
            .filter_map(|a| Some((a.alarm_name()?.to_owned(), a.state_value()?.clone())));
        let composite = out
            .composite_alarms()
            .iter()
            .filter_map(|a| Some((a.alarm_name()?.to_owned(), a.state_value()?.clone())));
        states.extend(metric.chain(composite));
    }
    Ok(states)
}

/// Sends `step` to the jobs queue, delayed until it is due (at most [`MAX_DELAY_SECS`] per hop).
async fn send_step(ctx: &Context, step: &Step) -> Result<(), CallError> {
    ctx.queue
        .send(&step.to_body(), hop_delay_secs(step.due_at_ms, now_ms()))
        .await
        .map_err(|e| CallError::new(format!("send the next step of the shift of {}", step.function), e))
}

/// The delay of the next hop towards `due_at_ms`, in whole seconds (rounded up, so a step is
/// never early), at most [`MAX_DELAY_SECS`].
fn hop_delay_secs(due_at_ms: u64, now_ms: u64) -> i32 {
    due_at_ms.saturating_sub(now_ms).div_ceil(1000).min(MAX_DELAY_SECS) as i32
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

    #[test]
    fn long_intervals_are_waited_out_in_hops() {
        let now = 1_000_000;
        assert_eq!(hop_delay_secs(now + 3_200, now), 4, "rounded up: never early");
        assert_eq!(
            hop_delay_secs(now + 3_600_000, now),
            600,
            "an hour: the first of six hops"
        );
        assert_eq!(hop_delay_secs(now - 5, now), 0, "overdue: at once");
    }

    #[test]
    fn step_messages_round_trip_and_reject_strangers() {
        let step = Step {
            function: "orders".into(),
            alias: "live".into(),
            from_version: "1".into(),
            to_version: "2".into(),
            strategy: "canary".into(),
            schedule: vec![10, 100],
            step: 1,
            interval_secs: 300,
            due_at_ms: 1,
            alarms: vec!["orders-errors".into()],
            ignored_alarms: vec![],
            started_at: "2026-11-30T00:00:00.000Z".into(),
            report_bucket: "b".into(),
            report_key: "status/apps/orders.zip/v1.json".into(),
        };
        let body: serde_json::Value = serde_json::from_str(&step.to_body()).unwrap();
        let back: Step = serde_json::from_value(body[STEP_KEY].clone()).unwrap();
        assert_eq!(back, step);
        let status = step.status(0, None);
        assert_eq!((status.percent, status.step, status.steps), (10, 1, 2));
        let mut odd = body[STEP_KEY].clone();
        odd["extra"] = 1.into();
        assert!(serde_json::from_value::<Step>(odd).is_err());
    }
}
