//! The publisher's settings: every flag has an environment variable (prefix `QMP_`), checked
//! at start-up.

use std::net::SocketAddr;

use auto_lambda_common::aws::AwsArgs;
use auto_lambda_common::config::ConfigError;
use auto_lambda_common::telemetry::LogFormat;

/// Publishes SQS queue backlogs as high-resolution CloudWatch metrics, for Auto Scaling.
///
/// Every period it reads each queue's ApproximateNumberOfMessages (Visible), ...NotVisible
/// (in flight) and ...Delayed, and the worker group's InService instances, and publishes them
/// with WorkPerInstance ((Visible + NotVisible) / InService, the figure to target-track) and
/// BacklogPerInstance (Visible / InService) in one PutMetricData call with StorageResolution=1.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "queue-metric-publisher",
    version,
    about,
    long_about,
    args_override_self = true
)]
pub struct Config {
    #[command(flatten)]
    pub aws: AwsArgs,

    /// URL of an SQS queue to measure (repeat, or comma-separate in the env var).
    #[arg(long = "queue-url", env = "QMP_QUEUE_URL", value_delimiter = ',', required = true)]
    pub queue_urls: Vec<String>,

    /// The worker Auto Scaling group whose InService instances divide the backlog.
    /// Without it, WorkPerInstance and BacklogPerInstance are not published.
    #[arg(long, env = "QMP_ASG_NAME")]
    pub asg_name: Option<String>,

    /// CloudWatch namespace to publish under.
    #[arg(long, env = "QMP_NAMESPACE", default_value = "AutoLambda")]
    pub namespace: String,

    /// Seconds between samples (1–60). See the README for the cost of each choice.
    #[arg(long, env = "QMP_PERIOD_SECS", default_value_t = 10)]
    pub period_secs: u64,

    /// Publish one sample and exit.
    #[arg(long, env = "QMP_ONCE")]
    pub once: bool,

    /// Print what would be published (one line per data point) instead of publishing it.
    #[arg(long, env = "QMP_DRY_RUN")]
    pub dry_run: bool,

    /// Serve Prometheus /metrics and /healthz on this address, e.g. 127.0.0.1:9465. Off when unset.
    #[arg(long, env = "QMP_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

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
        for url in &self.queue_urls {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !crate::sample::queue_name(url).is_empty();
            if !ok {
                return Err(ConfigError::new(
                    "--queue-url / QMP_QUEUE_URL",
                    format!("`{url}` is not an SQS queue URL"),
                ));
            }
        }
        if self.namespace.is_empty() || self.namespace.starts_with("AWS/") || self.namespace.len() > 255 {
            return Err(ConfigError::new(
                "--namespace / QMP_NAMESPACE",
                "must be 1–255 characters and not start with AWS/",
            ));
        }
        if self.asg_name.as_deref() == Some("") {
            return Err(ConfigError::new("--asg-name / QMP_ASG_NAME", "must not be empty"));
        }
        Ok(())
    }
}
