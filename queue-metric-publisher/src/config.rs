//! The publisher's settings: every flag has an environment variable (prefix `QMP_`).

use auto_lambda_common::aws::AwsArgs;
use auto_lambda_common::config::ConfigError;
use auto_lambda_common::telemetry::LogFormat;

/// Publishes an SQS queue's backlog as high-resolution CloudWatch metrics.
///
/// Every period it reads ApproximateNumberOfMessages (visible), ...NotVisible (in flight) and
/// ...Delayed, and publishes them in one PutMetricData call with StorageResolution=1.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "queue-metric-publisher", version, about, long_about)]
pub struct Config {
    #[command(flatten)]
    pub aws: AwsArgs,

    /// URL of the SQS queue to measure.
    #[arg(long, env = "QMP_QUEUE_URL")]
    pub queue_url: String,

    /// CloudWatch namespace to publish under.
    #[arg(long, env = "QMP_NAMESPACE", default_value = "AutoLambda")]
    pub namespace: String,

    /// Seconds between samples (1–60).
    #[arg(long, env = "QMP_PERIOD_SECS", default_value_t = 10)]
    pub period_secs: u64,

    /// Publish one sample and exit.
    #[arg(long, env = "QMP_ONCE")]
    pub once: bool,

    /// Print what would be published instead of publishing it.
    #[arg(long, env = "QMP_DRY_RUN")]
    pub dry_run: bool,

    /// Log format: text for people, json for CloudWatch Logs.
    #[arg(long, env = "QMP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=60).contains(&self.period_secs) {
            return Err(ConfigError::new(
                "--period-secs / QMP_PERIOD_SECS",
                "must be between 1 and 60",
            ));
        }
        let url = &self.queue_url;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::new(
                "--queue-url / QMP_QUEUE_URL",
                format!("`{url}` is not an SQS queue URL"),
            ));
        }
        if self.namespace.is_empty() || self.namespace.starts_with("AWS/") || self.namespace.len() > 255 {
            return Err(ConfigError::new(
                "--namespace / QMP_NAMESPACE",
                "must be 1–255 characters and not start with AWS/",
            ));
        }
        Ok(())
    }

    /// The queue's name: the last segment of its URL, used as the metric dimension.
    pub fn queue_name(&self) -> &str {
        self.queue_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&self.queue_url)
    }
}
