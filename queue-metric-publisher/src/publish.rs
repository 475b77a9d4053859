//! Turning a sample into CloudWatch metric data and publishing it in one call.
//!
//! Per queue (dimension `QueueName`): `Visible`, `NotVisible`, `Delayed`. With a worker group
//! (dimensions `QueueName`, `AutoScalingGroupName`), two ratios, both divided by the InService
//! instances **or by 1 when there are none**:
//! - `WorkPerInstance`, the metric the group target-tracks: work in hand and waiting,
//!   `(Visible + NotVisible) / InService`. A message a worker is running is hidden
//!   (NotVisible) until the job ends, so counting only visible messages reads 0 while every
//!   worker is busy and nothing waits, and target tracking would then scale in under running
//!   work (KEDA's SQS scaler made that mistake and fixed it: kedacore/keda#1663, then
//!   `scaleOnInFlight`, on by default). An empty fleet with N messages in hand reads N.
//! - `BacklogPerInstance`, the visible count alone per instance: the figure AWS's SQS scaling
//!   guide tracks, kept for the dashboard (how much waits, not how much runs).
//!
//! The empty fleet counts as one instance so that the metric never divides by zero and reads N
//! with N messages, above any sensible target, while with nothing queued it reads 0.
//! `Delayed` messages are not counted: nobody can take them yet.
//!
//! Per group (dimension `AutoScalingGroupName`): `InServiceInstances` and `DesiredCapacity`, at
//! the same resolution, so that the "work waiting, no workers" alarm that starts the first
//! worker can use 10-second periods too (AWS's own group metrics are 1-minute).

use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataError;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use crate::sample::{Backlog, GroupSize};

/// High resolution: CloudWatch keeps 1-second data points, so alarms can use 10-second periods.
pub const STORAGE_RESOLUTION: i32 = 1;

/// One tick's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub queues: Vec<Backlog>,
    /// The worker group and its size, when configured.
    pub group: Option<(String, GroupSize)>,
    pub at: std::time::SystemTime,
}

/// `messages` per InService instance, with an empty fleet counted as one instance (see the
/// module docs). `WorkPerInstance` passes visible + NotVisible, `BacklogPerInstance` visible.
pub fn per_instance(messages: u64, in_service: u64) -> f64 {
    messages as f64 / in_service.max(1) as f64
}

/// The metric data for one sample.
pub fn metric_data(sample: &Sample) -> Vec<MetricDatum> {
    let at = DateTime::from(sample.at);
    let datum = |name: &str, value: f64, unit: StandardUnit, dims: Vec<Dimension>| {
        MetricDatum::builder()
            .metric_name(name)
            .set_dimensions(Some(dims))
            .value(value)
            .unit(unit)
            .timestamp(at)
            .storage_resolution(STORAGE_RESOLUTION)
            .build()
    };
    let mut data = Vec::new();
    for q in &sample.queues {
        let queue = Dimension::builder().name("QueueName").value(&q.queue_name).build();
        for (name, value) in [
            ("Visible", q.visible),
            ("NotVisible", q.not_visible),
            ("Delayed", q.delayed),
        ] {
            data.push(datum(name, value as f64, StandardUnit::Count, vec![queue.clone()]));
        }
        if let Some((group, size)) = &sample.group {
            let group_dim = Dimension::builder().name("AutoScalingGroupName").value(group).build();
            let dims = vec![queue, group_dim];
            data.push(datum(
                "WorkPerInstance",
                per_instance(q.visible + q.not_visible, size.in_service),
                StandardUnit::None,
                dims.clone(),
            ));
            data.push(datum(
                "BacklogPerInstance",
                per_instance(q.visible, size.in_service),
                StandardUnit::None,
                dims,
            ));
        }
    }
    if let Some((group, size)) = &sample.group {
        let group_dim = Dimension::builder().name("AutoScalingGroupName").value(group).build();
        data.push(datum(
            "InServiceInstances",
            size.in_service as f64,
            StandardUnit::Count,
            vec![group_dim.clone()],
        ));
        data.push(datum(
            "DesiredCapacity",
            size.desired as f64,
            StandardUnit::Count,
            vec![group_dim],
        ));
    }
    data
}

/// Publishes all data in one PutMetricData call (the API takes up to 1000 data points).
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

/// `namespace metric{dimensions} value` lines, for `--dry-run`.
pub fn render(namespace: &str, data: &[MetricDatum]) -> String {
    let mut out = String::new();
    for datum in data {
        let dims: Vec<String> = datum
            .dimensions()
            .iter()
            .map(|d| format!("{}={}", d.name().unwrap_or(""), d.value().unwrap_or("")))
            .collect();
        out.push_str(&format!(
            "{namespace} {}{{{}}} {}\n",
            datum.metric_name().unwrap_or(""),
            dims.join(","),
            datum.value().unwrap_or(0.0)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fleet_counts_as_one() {
        assert_eq!(per_instance(12, 0), 12.0);
        assert_eq!(per_instance(0, 0), 0.0);
        assert_eq!(per_instance(12, 4), 3.0);
    }

    #[test]
    fn one_datum_per_figure() {
        let sample = Sample {
            queues: vec![Backlog {
                queue_name: "jobs".into(),
                visible: 6,
                not_visible: 2,
                delayed: 0,
            }],
            group: Some((
                "workers".into(),
                GroupSize {
                    in_service: 3,
                    desired: 4,
                },
            )),
            at: std::time::SystemTime::UNIX_EPOCH,
        };
        let data = metric_data(&sample);
        assert_eq!(data.len(), 7);
        assert!(data.iter().all(|d| d.storage_resolution() == Some(1)));
        let text = render("AutoLambda", &data);
        assert!(text.contains("AutoLambda Visible{QueueName=jobs} 6"), "{text}");
        assert!(
            text.contains("AutoLambda BacklogPerInstance{QueueName=jobs,AutoScalingGroupName=workers} 2"),
            "{text}"
        );
        assert!(
            text.contains("AutoLambda WorkPerInstance{QueueName=jobs,AutoScalingGroupName=workers} 2.6666666666666665"),
            "(6 visible + 2 in flight) / 3: {text}"
        );
    }
}
