//! The one place that builds AWS configuration and clients.
//!
//! Both binaries take the same `--region` / `--endpoint-url` flags ([`AwsArgs`]) and turn them
//! into one [`SdkConfig`]. An endpoint override points every client at an emulator such as
//! moto; S3 then needs path-style addressing, because `bucket.127.0.0.1` does not resolve.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// AWS connection settings shared by both binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// AWS region. Defaults to the SDK's own resolution (AWS_REGION, profile, instance metadata).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// Named profile from the shared AWS config and credentials files.
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,

    /// Send every AWS call to this endpoint instead of AWS, e.g. http://127.0.0.1:5000 for a
    /// local emulator. Leave unset on AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_parser = parse_endpoint)]
    pub endpoint_url: Option<String>,
}

fn parse_endpoint(raw: &str) -> Result<String, String> {
    let ok = raw.starts_with("http://") || raw.starts_with("https://");
    if ok && raw.len() > "https://".len() {
        Ok(raw.trim_end_matches('/').to_owned())
    } else {
        Err(format!("`{raw}` is not an http:// or https:// URL"))
    }
}

/// How every client retries: the SDK's standard mode (exponential backoff with full jitter,
/// throttling and 5xx and network errors retried, a client-side retry budget), with five
/// attempts instead of three, because these are daemons that would rather wait than fail a job.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(5)
}

/// Deadlines of every call (the SDK's default is none: a call that never answers would hold
/// its job for ever). An *attempt* is one HTTP request and its response headers; the
/// *operation* is every attempt with the retries' backoff in between. A response body that
/// stops arriving is cut off by the SDK's stalled-stream protection (on with
/// `BehaviorVersion::latest()`: under 1 byte/s for 5 s fails the stream), not by these.
///
/// The default suits the small calls (CloudWatch, Auto Scaling, STS, and SQS, whose longest
/// call is a 20 s long poll: `--wait-time-secs` is at most 20, so 30 s per attempt leaves 10 s
/// for the network). Clients that send large bodies get their own: [`lambda_timeouts`] and
/// [`s3_timeouts`].
pub fn timeouts() -> TimeoutConfig {
    deadlines(30, 120)
}

/// A 5 s connect timeout, and `attempt_secs` per attempt, `operation_secs` in all.
fn deadlines(attempt_secs: u64, operation_secs: u64) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(attempt_secs))
        .operation_timeout(Duration::from_secs(operation_secs))
        .build()
}

/// Lambda: CreateFunction and UpdateFunctionCode carry an inline zip of up to 50 MB (about
/// 67 MB once base64-encoded in JSON), which at 1 MB/s takes a minute to send.
pub fn lambda_timeouts() -> TimeoutConfig {
    deadlines(180, 600)
}

/// S3: PutObject of packages over 50 MB (up to Lambda's 250 MB unzipped limit) and of
/// dependency-cache archives; a GetObject attempt ends with the response headers, its body is
/// guarded by stalled-stream protection.
pub fn s3_timeouts() -> TimeoutConfig {
    deadlines(300, 900)
}

/// The `auto-lambda` command's uploads: a person's uplink may be slow, and one PUT of a
/// 256 MiB zip at 200 kB/s takes over 20 minutes, so no attempt or operation deadline; a
/// connection that stops moving is still cut off by stalled-stream protection.
pub fn upload_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build()
}

/// Loads the shared SDK configuration: credentials and region from the usual chain, with the
/// overrides in `args` applied, the retry policy of [`retry_config`] and the deadlines of
/// [`timeouts`].
pub async fn load_sdk_config(args: &AwsArgs) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeouts());
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &args.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &args.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// Builds the client of the EC2 instance metadata service (IMDSv2: a session token first, then
/// the item). Short timeouts and two attempts, because off EC2 nothing answers at
/// 169.254.169.254 and a worker started on a laptop must find that out in seconds. It honours
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` (the tests' stand-in).
pub fn imds_client() -> aws_config::imds::Client {
    aws_config::imds::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .read_timeout(std::time::Duration::from_secs(2))
        .max_attempts(2)
        .build()
}

/// Builds an S3 client: path-style addressing whenever the endpoint is overridden, and the
/// deadlines of [`s3_timeouts`].
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    s3_client_with(config, s3_timeouts())
}

/// [`s3_client`] with other deadlines (the command line's: [`upload_timeouts`]).
pub fn s3_client_with(config: &SdkConfig, timeouts: TimeoutConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .timeout_config(timeouts)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_must_be_http_url() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:5000/").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert!(parse_endpoint("127.0.0.1:5000").is_err());
        assert!(parse_endpoint("http://").is_err());
    }
}
