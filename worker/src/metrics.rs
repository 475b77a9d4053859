//! The worker's own counters, served as Prometheus text on `/metrics`:
//!
//! * `auto_lambda_jobs_total{outcome}`: deployed, unchanged, stale-skipped, failed, retrying,
//!   not-an-event, shifting (a gradual deploy started), rolled-back;
//! * `auto_lambda_shifts_total{event}`: steps of gradual deploys: started, stepped, promoted,
//!   rolled-back, superseded;
//! * `auto_lambda_event_publish_errors_total`: deployment events that could not be sent;
//! * `auto_lambda_stage_duration_seconds{stage}`: download, unpack, build, package, deploy;
//! * `auto_lambda_jobs_in_flight`;
//! * `auto_lambda_receive_errors_total`;
//! * `auto_lambda_job_panics_total`: jobs that panicked (a bug: each is logged with its
//!   message, reported failed/transient and retried).
//!
//! The fleet's view of the same figures goes to CloudWatch (namespace `AutoLambda` by
//! default), summed over a minute and published in one PutMetricData call: `Jobs` (Count,
//! dimensions `QueueName`, `Outcome`), `StageDuration` (Milliseconds as statistic sets,
//! dimensions `QueueName`, `Stage`), `Shifts` (Count, dimensions `QueueName`, `Event`) and
//! `EventPublishErrors` (Count, dimension `QueueName`). The dashboard and the failed-deploys alarm in `infra/`
//! read them.
//!
//! One registry per process, so the recording functions can be called from anywhere.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}

struct Metrics {
    registry: Arc<Registry>,
    jobs: Family<OutcomeLabel, Counter>,
    stages: Family<StageLabel, Histogram>,
    in_flight: Gauge,
    receive_errors: Counter,
    panics: Counter,
    shifts: Family<EventLabel, Counter>,
    event_errors: Counter,
    pending: Mutex<Pending>,
}

/// What has happened since the last CloudWatch flush.
#[derive(Debug, Default)]
struct Pending {
    outcomes: BTreeMap<String, u64>,
    /// Per stage: count, sum, min, max in milliseconds.
    stages: BTreeMap<String, (f64, f64, f64, f64)>,
    shifts: BTreeMap<String, u64>,
    event_errors: u64,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("auto_lambda");
        let jobs = Family::<OutcomeLabel, Counter>::default();
        let stages = Family::<StageLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            ])
        });
        let in_flight = Gauge::default();
        let receive_errors = Counter::default();
        let panics = Counter::default();
        let shifts = Family::<EventLabel, Counter>::default();
        let event_errors = Counter::default();
        registry.register("jobs", "Uploads worked, by outcome", jobs.clone());
        registry.register("stage_duration_seconds", "Time per job stage", stages.clone());
        registry.register("jobs_in_flight", "Jobs being worked now", in_flight.clone());
        registry.register("receive_errors", "Failed SQS receives", receive_errors.clone());
        registry.register("job_panics", "Jobs that panicked (bugs)", panics.clone());
        registry.register("shifts", "Steps of gradual deploys, by event", shifts.clone());
        registry.register(
            "event_publish_errors",
            "Deployment events that could not be sent",
            event_errors.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            jobs,
            stages,
            in_flight,
            receive_errors,
            panics,
            shifts,
            event_errors,
            pending: Mutex::default(),
        }
    })
}

pub fn record_outcome(outcome: &str) {
    let m = metrics();
    m.jobs
        .get_or_create(&OutcomeLabel {
            outcome: outcome.to_owned(),
        })
        .inc();
    *m.pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .outcomes
        .entry(outcome.to_owned())
        .or_default() += 1;
}

/// Counts one step of a gradual deploy: `started`, `stepped`, `promoted`, `rolled-back` or
/// `superseded`.
pub fn record_shift(event: &str) {
    let m = metrics();
    m.shifts
        .get_or_create(&EventLabel {
            event: event.to_owned(),
        })
        .inc();
    *m.pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .shifts
        .entry(event.to_owned())
        .or_default() += 1;
}

/// Counts a deployment event that could not be sent.
pub fn record_event_publish_error() {
    let m = metrics();
    m.event_errors.inc();
    m.pending.lock().unwrap_or_else(PoisonError::into_inner).event_errors += 1;
}

pub fn record_panic() {
    metrics().panics.inc();
}

pub fn record_stage(stage: &str, elapsed: Duration) {
    let m = metrics();
    m.stages
        .get_or_create(&StageLabel {
            stage: stage.to_owned(),
        })
        .observe(elapsed.as_secs_f64());
    let ms = elapsed.as_secs_f64() * 1000.0;
    let mut pending = m.pending.lock().unwrap_or_else(PoisonError::into_inner);
    let e = pending
        .stages
        .entry(stage.to_owned())
        .or_insert((0.0, 0.0, f64::MAX, 0.0));
    *e = (e.0 + 1.0, e.1 + ms, e.2.min(ms), e.3.max(ms));
}

/// Publishes what happened since the last flush to CloudWatch, every `every` and once more
/// when `shutdown` is cancelled. Returns when the final flush is done.
pub async fn publish_to_cloudwatch(
    cloudwatch: aws_sdk_cloudwatch::Client,
    namespace: String,
    queue_name: String,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let last = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(every) => false,
        };
        let data = take_pending(&queue_name);
        if !data.is_empty() {
            let put = cloudwatch
                .put_metric_data()
                .namespace(&namespace)
                .set_metric_data(Some(data))
                .send()
                .await;
            if let Err(err) = put {
                let error = aws_smithy_types::error::display::DisplayErrorContext(&err);
                tracing::warn!(%error, "Cannot publish deploy metrics to CloudWatch.");
            }
        }
        if last {
            return;
        }
    }
}

fn take_pending(queue_name: &str) -> Vec<MetricDatum> {
    let pending = std::mem::take(&mut *metrics().pending.lock().unwrap_or_else(PoisonError::into_inner));
    let dim = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
    let mut data = Vec::new();
    for (outcome, count) in pending.outcomes {
        data.push(
            MetricDatum::builder()
                .metric_name("Jobs")
                .dimensions(dim("QueueName", queue_name))
                .dimensions(dim("Outcome", &outcome))
                .value(count as f64)
                .unit(StandardUnit::Count)
                .build(),
        );
    }
    for (event, count) in pending.shifts {
        data.push(
            MetricDatum::builder()
                .metric_name("Shifts")
                .dimensions(dim("QueueName", queue_name))
                .dimensions(dim("Event", &event))
                .value(count as f64)
                .unit(StandardUnit::Count)
                .build(),
        );
    }
    if pending.event_errors > 0 {
        data.push(
            MetricDatum::builder()
                .metric_name("EventPublishErrors")
                .dimensions(dim("QueueName", queue_name))
                .value(pending.event_errors as f64)
                .unit(StandardUnit::Count)
                .build(),
        );
    }
    for (stage, (n, sum, min, max)) in pending.stages {
        let stats = StatisticSet::builder()
            .sample_count(n)
            .sum(sum)
            .minimum(min)
            .maximum(max)
            .build();
        data.push(
            MetricDatum::builder()
                .metric_name("StageDuration")
                .dimensions(dim("QueueName", queue_name))
                .dimensions(dim("Stage", &stage))
                .statistic_values(stats)
                .unit(StandardUnit::Milliseconds)
                .build(),
        );
    }
    data
}

pub fn record_receive_error() {
    metrics().receive_errors.inc();
}

/// Counts a job in flight for as long as it is alive.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn enter() -> Self {
        metrics().in_flight.inc();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics().in_flight.dec();
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until `shutdown`.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    auto_lambda_common::http::serve(addr, metrics().registry.clone(), shutdown).await
}
