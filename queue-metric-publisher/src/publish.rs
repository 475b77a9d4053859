//! Turning a sample into CloudWatch metric data and publishing it in one call.

use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataError;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use crate::sample::Backlog;

/// High resolution: CloudWatch keeps 1-second data points, so alarms can use 10-second periods.
const STORAGE_RESOLUTION: i32 = 1;

/// The metric data for one sample: Visible, NotVisible and Delayed, per queue.
pub fn metric_data(backlog: &Backlog) -> Vec<MetricDatum> {
    let queue = Dimension::builder()
        .name("QueueName")
        .value(&backlog.queue_name)
        .build();
    [
        ("Visible", backlog.visible),
        ("NotVisible", backlog.not_visible),
        ("Delayed", backlog.delayed),
    ]
    .into_iter()
    .map(|(name, value)| {
        MetricDatum::builder()
            .metric_name(name)
            .dimensions(queue.clone())
            .value(value as f64)
            .unit(StandardUnit::Count)
            .storage_resolution(STORAGE_RESOLUTION)
            .build()
    })
    .collect()
}

/// Publishes all data in one PutMetricData call.
pub async fn put(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    data: Vec<MetricDatum>,
) -> Result<(), aws_sdk_cloudwatch::error::SdkError<PutMetricDataError>> {
    cloudwatch
        .put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(data))
        .send()
        .await?;
    Ok(())
}

/// Prints data as `namespace metric{dimensions} value` lines, for `--dry-run`.
#[allow(clippy::print_stdout)] // printing is what --dry-run is for
pub fn print(namespace: &str, data: &[MetricDatum]) {
    for datum in data {
        let dims: Vec<String> = datum
            .dimensions()
            .iter()
            .map(|d| format!("{}={}", d.name().unwrap_or(""), d.value().unwrap_or("")))
            .collect();
        println!(
            "{namespace} {}{{{}}} {}",
            datum.metric_name().unwrap_or(""),
            dims.join(","),
            datum.value().unwrap_or(0.0)
        );
    }
}
