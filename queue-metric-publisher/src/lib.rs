//! queue-metric-publisher: reads SQS queue backlogs and the worker group's InService count,
//! and publishes them to CloudWatch as high-resolution (1-second) metrics, so that the worker
//! Auto Scaling group can track `WorkPerInstance` (messages waiting or in hand per InService
//! instance; see [`publish`]).
//!
//! [`sample`] reads the figures, [`publish`] turns them into metric data, [`cadence`] keeps
//! the ticks on a fixed grid, [`metrics`] is the publisher's own health.
#![forbid(unsafe_code)]

pub mod cadence;
pub mod config;
pub mod metrics;
pub mod publish;
pub mod sample;

pub use config::Config;

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use tokio_util::sync::CancellationToken;

/// The AWS clients the publisher uses, built once from one [`SdkConfig`].
#[derive(Debug, Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
}

impl Clients {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
        }
    }
}

/// Publishes every period until `shutdown` (or once, with `--once`). Failures are logged and
/// counted; the next tick tries again, so an outage costs data points, never the process.
/// The SDK's standard retry mode retries throttling and 5xx with exponential backoff and
/// jitter within a tick.
pub async fn run(config: Config, clients: Clients, shutdown: CancellationToken) {
    tracing::info!(queues = config.queue_urls.len(), asg = ?config.asg_name, period_secs = config.period_secs, namespace = %config.namespace, "Publisher started.");
    let period = Duration::from_secs(config.period_secs);
    let cut_off = cadence::every(period, config.once, &shutdown, |_| tick(&config, &clients)).await;
    metrics::get().cut_off.inc_by(cut_off);
    tracing::info!("Publisher stopped.");
}

/// Reads every queue and the group concurrently: one sample.
pub async fn read_sample(config: &Config, clients: &Clients) -> Result<publish::Sample, sample::SampleError> {
    let at = SystemTime::now();
    let queues = futures_util::future::try_join_all(
        config
            .queue_urls
            .iter()
            .map(|url| sample::read_queue(&clients.sqs, url)),
    );
    let group = async {
        match &config.asg_name {
            Some(name) => sample::group_size(&clients.autoscaling, name)
                .await
                .map(|n| Some((name.clone(), n))),
            None => Ok(None),
        }
    };
    let (queues, group) = tokio::try_join!(queues, group)?;
    Ok(publish::Sample { queues, group, at })
}

async fn tick(config: &Config, clients: &Clients) {
    let m = metrics::get();
    m.ticks.inc();
    let sample = match read_sample(config, clients).await {
        Ok(s) => s,
        Err(err) => {
            m.sample_errors.inc();
            tracing::warn!(error = %err, "Cannot sample; skipping this tick.");
            return;
        }
    };
    let data = publish::metric_data(&sample);
    if config.dry_run {
        #[allow(clippy::print_stdout)] // printing is what --dry-run is for
        {
            print!("{}", publish::render(&config.namespace, &data));
        }
        return;
    }
    match publish::put(&clients.cloudwatch, &config.namespace, data).await {
        Ok(()) => {
            for q in &sample.queues {
                m.visible
                    .get_or_create(&metrics::QueueLabel {
                        queue: q.queue_name.clone(),
                    })
                    .set(q.visible as i64);
            }
            if let Some((_, size)) = &sample.group {
                m.in_service.set(size.in_service as i64);
            }
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            m.last_publish.set(now);
            tracing::debug!(queues = sample.queues.len(), "Published.");
        }
        Err(err) => {
            m.publish_errors.inc();
            tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&err), "PutMetricData failed; the next tick tries again.");
        }
    }
}
