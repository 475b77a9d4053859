//! queue-metric-publisher: reads an SQS queue's backlog and publishes it to CloudWatch as
//! high-resolution (1-second) metrics, so that the worker Auto Scaling group can track it.
#![forbid(unsafe_code)]

pub mod config;
pub mod publish;
pub mod sample;

pub use config::Config;

use std::time::Duration;

use aws_config::SdkConfig;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// The AWS clients the publisher uses, built once from one [`SdkConfig`].
#[derive(Debug, Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Clients {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
        }
    }
}

/// Publishes every period until `shutdown` (or once, with `--once`).
pub async fn run(config: Config, clients: Clients, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(config.period_secs));
    // A slow tick must not make the next ones bunch up: skip, keep the cadence.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tracing::info!(queue = %config.queue_url, period_secs = config.period_secs, namespace = %config.namespace, "Publisher started.");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        tick(&config, &clients).await;
        if config.once {
            break;
        }
    }
    tracing::info!("Publisher stopped.");
}

async fn tick(config: &Config, clients: &Clients) {
    let backlog = match sample::read_queue(&clients.sqs, &config.queue_url).await {
        Ok(b) => b,
        Err(err) => {
            tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&err), "Cannot read the queue's attributes; skipping this tick.");
            return;
        }
    };
    let data = publish::metric_data(&backlog);
    if config.dry_run {
        publish::print(&config.namespace, &data);
        return;
    }
    match publish::put(&clients.cloudwatch, &config.namespace, data).await {
        Ok(()) => tracing::info!(
            visible = backlog.visible,
            not_visible = backlog.not_visible,
            delayed = backlog.delayed,
            "Published backlog."
        ),
        Err(err) => {
            tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&err), "PutMetricData failed.")
        }
    }
}
