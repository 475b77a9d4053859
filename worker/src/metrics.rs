//! The worker's own counters, served as Prometheus text on `/metrics`:
//!
//! * `auto_lambda_jobs_total{outcome}`: deployed, unchanged, stale-skipped, failed, retrying,
//!   not-an-event;
//! * `auto_lambda_stage_duration_seconds{stage}`: download, unpack, build, package, deploy;
//! * `auto_lambda_jobs_in_flight`;
//! * `auto_lambda_receive_errors_total`.
//!
//! One registry per process, so the recording functions can be called from anywhere.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
struct StageLabel {
    stage: String,
}

struct Metrics {
    registry: Arc<Registry>,
    jobs: Family<OutcomeLabel, Counter>,
    stages: Family<StageLabel, Histogram>,
    in_flight: Gauge,
    receive_errors: Counter,
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
        registry.register("jobs", "Uploads worked, by outcome", jobs.clone());
        registry.register("stage_duration_seconds", "Time per job stage", stages.clone());
        registry.register("jobs_in_flight", "Jobs being worked now", in_flight.clone());
        registry.register("receive_errors", "Failed SQS receives", receive_errors.clone());
        Metrics {
            registry: Arc::new(registry),
            jobs,
            stages,
            in_flight,
            receive_errors,
        }
    })
}

pub fn record_outcome(outcome: &str) {
    metrics()
        .jobs
        .get_or_create(&OutcomeLabel {
            outcome: outcome.to_owned(),
        })
        .inc();
}

pub fn record_stage(stage: &str, elapsed: Duration) {
    metrics()
        .stages
        .get_or_create(&StageLabel {
            stage: stage.to_owned(),
        })
        .observe(elapsed.as_secs_f64());
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
