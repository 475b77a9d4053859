//! The publisher's own health, served as Prometheus text on `/metrics`:
//! `qmp_ticks_total`, `qmp_publish_errors_total`, `qmp_sample_errors_total`,
//! `qmp_ticks_cut_off_total`, `qmp_last_publish_timestamp_seconds`, and the last published
//! `qmp_visible{queue}` and `qmp_in_service`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

#[derive(Debug)]
pub struct Metrics {
    pub registry: Arc<Registry>,
    pub ticks: Counter,
    pub publish_errors: Counter,
    pub sample_errors: Counter,
    pub cut_off: Counter,
    pub last_publish: Gauge<f64, AtomicU64>,
    pub visible: Family<QueueLabel, Gauge>,
    pub in_service: Gauge,
}

pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("qmp");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            ticks: Counter::default(),
            publish_errors: Counter::default(),
            sample_errors: Counter::default(),
            cut_off: Counter::default(),
            last_publish: Gauge::default(),
            visible: Family::default(),
            in_service: Gauge::default(),
        };
        registry.register("ticks", "Samples taken", m.ticks.clone());
        registry.register("publish_errors", "Failed PutMetricData calls", m.publish_errors.clone());
        registry.register("sample_errors", "Failed queue or group reads", m.sample_errors.clone());
        registry.register("ticks_cut_off", "Ticks cut off at the period", m.cut_off.clone());
        registry.register(
            "last_publish_timestamp_seconds",
            "Unix time of the last successful publish",
            m.last_publish.clone(),
        );
        registry.register("visible", "Last published visible count", m.visible.clone());
        registry.register(
            "in_service",
            "Last InService count of the worker group",
            m.in_service.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..m
        }
    })
}
