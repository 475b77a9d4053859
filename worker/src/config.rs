//! The worker's settings: every flag has an environment variable (prefix `AUTO_LAMBDA_`) and
//! is checked at start-up, so that a bad value stops the process before it takes a message.

use std::path::PathBuf;

use auto_lambda_common::aws::AwsArgs;
use auto_lambda_common::config::ConfigError;
use auto_lambda_common::telemetry::LogFormat;

use crate::artifact::Limits;
use crate::deps::BuildMode;
use crate::manifest::SUPPORTED_RUNTIMES;

fn parse_build_image(raw: &str) -> Result<(String, String), String> {
    let (runtime, image) = raw
        .split_once('=')
        .ok_or_else(|| format!("`{raw}` is not RUNTIME=IMAGE"))?;
    if !SUPPORTED_RUNTIMES.contains(&runtime) {
        return Err(format!(
            "`{runtime}` is not a supported runtime ({})",
            SUPPORTED_RUNTIMES.join(", ")
        ));
    }
    if image.is_empty() || image.contains(char::is_whitespace) {
        return Err(format!("`{image}` is not an image reference"));
    }
    Ok((runtime.to_owned(), image.to_owned()))
}

fn parse_runtime(raw: &str) -> Result<String, String> {
    if SUPPORTED_RUNTIMES.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "`{raw}` is not a supported runtime ({})",
            SUPPORTED_RUNTIMES.join(", ")
        ))
    }
}

/// Turns app zips uploaded to S3 into deployed AWS Lambda functions.
///
/// Long-polls the SQS queue that receives the bucket's ObjectCreated notifications, and for
/// each upload: fetches the exact object, unpacks it safely, reads its lambda.toml, packages
/// it, creates or updates the function, waits until Lambda has applied it, publishes a version
/// and deletes the message.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "auto-lambda-worker", version, about, long_about, args_override_self = true)]
pub struct Config {
    #[command(flatten, next_help_heading = "AWS")]
    pub aws: AwsArgs,

    /// URL of the SQS queue that receives the bucket's ObjectCreated notifications.
    #[arg(help_heading = "Queue, bucket and functions", long, env = "AUTO_LAMBDA_QUEUE_URL")]
    pub queue_url: String,

    /// ARN of the execution role given to functions the worker creates.
    #[arg(help_heading = "Queue, bucket and functions", long, env = "AUTO_LAMBDA_ROLE_ARN")]
    pub role_arn: String,

    /// Buckets whose uploads are deployed (comma-separated); events naming any other bucket
    /// are logged and dropped. Default: any bucket that can reach the queue.
    #[arg(
        help_heading = "Queue, bucket and functions",
        long,
        env = "AUTO_LAMBDA_ALLOWED_BUCKETS",
        value_delimiter = ','
    )]
    pub allowed_buckets: Vec<String>,

    /// Only keys under this prefix and ending in .zip are deployed; others are ignored.
    #[arg(
        help_heading = "Queue, bucket and functions",
        long,
        env = "AUTO_LAMBDA_SOURCE_PREFIX",
        default_value = "apps/"
    )]
    pub source_prefix: String,

    /// Status reports are written under this prefix of the same bucket. Keep it outside the
    /// source prefix, so that a report can never trigger a job.
    #[arg(
        help_heading = "Queue, bucket and functions",
        long,
        env = "AUTO_LAMBDA_STATUS_PREFIX",
        default_value = "status/"
    )]
    pub status_prefix: String,

    /// Packages over Lambda's 50 MB inline limit are uploaded under this prefix of the same
    /// bucket, and Lambda takes them from there.
    #[arg(
        help_heading = "Queue, bucket and functions",
        long,
        env = "AUTO_LAMBDA_ARTIFACT_PREFIX",
        default_value = "artifacts/"
    )]
    pub artifact_prefix: String,

    /// Packages up to this size (bytes) go to Lambda inline; larger ones through the artifacts
    /// prefix. An inline upload holds the package in memory (base64, about 4x its size); the S3
    /// path streams it, so the worker's memory does not grow with the app. At most 50 MiB.
    #[arg(help_heading = "Queue, bucket and functions", long, env = "AUTO_LAMBDA_INLINE_MAX_BYTES", default_value_t = 8 << 20)]
    pub inline_max_bytes: u64,

    /// Prefix prepended to every function name, so IAM can scope the worker to function:<prefix>*.
    #[arg(
        help_heading = "Queue, bucket and functions",
        long,
        env = "AUTO_LAMBDA_FUNCTION_PREFIX",
        default_value = ""
    )]
    pub function_prefix: String,

    /// Jobs worked at once. Default: the number of CPUs.
    #[arg(help_heading = "Jobs", long, env = "AUTO_LAMBDA_CONCURRENCY")]
    pub concurrency: Option<usize>,

    /// Long-poll wait per receive, in seconds (0–20).
    #[arg(
        help_heading = "Jobs",
        long,
        env = "AUTO_LAMBDA_WAIT_TIME_SECS",
        default_value_t = 20
    )]
    pub wait_time_secs: i32,

    /// How long a received message stays hidden; a heartbeat renews it every third of this
    /// while its job runs, so a crash makes it reappear within this time.
    #[arg(
        help_heading = "Jobs",
        long,
        env = "AUTO_LAMBDA_VISIBILITY_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub visibility_timeout_secs: i32,

    /// On SIGTERM, how long in-flight jobs may run before their messages are handed back.
    /// Keep it below systemd's TimeoutStopSec.
    #[arg(
        help_heading = "Jobs",
        long,
        env = "AUTO_LAMBDA_SHUTDOWN_GRACE_SECS",
        default_value_t = 60
    )]
    pub shutdown_grace_secs: u64,

    /// First retry delay after a transient failure, in seconds; it doubles with each receive
    /// of the same message (capped at 15 minutes), with ±20% jitter.
    #[arg(
        help_heading = "Jobs",
        long,
        env = "AUTO_LAMBDA_RETRY_BASE_SECS",
        default_value_t = 10
    )]
    pub retry_base_secs: u64,

    /// How long start-up keeps retrying to reach the queue before giving up.
    #[arg(
        help_heading = "Jobs",
        long,
        env = "AUTO_LAMBDA_STARTUP_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub startup_timeout_secs: u64,

    /// Directory for per-job temporary files. Default: the system temp directory.
    #[arg(help_heading = "Jobs", long, env = "AUTO_LAMBDA_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Largest upload accepted, in bytes.
    #[arg(help_heading = "Unpack limits", long, env = "AUTO_LAMBDA_MAX_ZIP_BYTES", default_value_t = Limits::DEFAULT.max_zip_bytes)]
    pub max_zip_bytes: u64,

    /// Largest total unpacked size of one upload, in bytes (Lambda's own limit is 250 MB).
    #[arg(help_heading = "Unpack limits", long, env = "AUTO_LAMBDA_MAX_UNPACKED_BYTES", default_value_t = Limits::DEFAULT.max_unpacked_bytes)]
    pub max_unpacked_bytes: u64,

    /// Most entries one upload may have.
    #[arg(help_heading = "Unpack limits", long, env = "AUTO_LAMBDA_MAX_ENTRIES", default_value_t = Limits::DEFAULT.max_entries)]
    pub max_entries: usize,

    /// Highest uncompressed:compressed ratio of one entry (checked above 1 MiB).
    #[arg(help_heading = "Unpack limits", long, env = "AUTO_LAMBDA_MAX_RATIO", default_value_t = Limits::DEFAULT.max_ratio)]
    pub max_ratio: u64,

    /// Serve Prometheus /metrics and /healthz on this address, e.g. 127.0.0.1:9464. Off when unset.
    #[arg(help_heading = "Operations", long, env = "AUTO_LAMBDA_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// How native dependencies are built: `docker` (in the runtime's build container; a
    /// function of the other architecture gets a wheels-only install on this worker), or
    /// `wheels` (prebuilt manylinux wheels downloaded on this worker, no Docker; Python only;
    /// `pip-platform` is the same).
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_BUILD_MODE",
        value_enum,
        default_value = "docker"
    )]
    pub build_mode: BuildMode,

    /// Build image for a runtime, as RUNTIME=IMAGE (repeat, or comma-separate in the env var).
    /// Unlisted runtimes use public.ecr.aws/sam/build-<runtime>.
    #[arg(help_heading = "Build and verify", long = "build-image", env = "AUTO_LAMBDA_BUILD_IMAGES", value_delimiter = ',', value_parser = parse_build_image)]
    pub build_images: Vec<(String, String)>,

    /// Wall-clock limit of one dependency build; the container is killed after it.
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_BUILD_TIMEOUT_SECS",
        default_value_t = 900
    )]
    pub build_timeout_secs: u64,

    /// Wall-clock limit of one upload's whole job, download to status report, in seconds. When
    /// it passes, the job is cancelled (its containers removed), a transient report names the
    /// stage that ran out of time, and the message comes back with backoff. 0: derived, the
    /// build and verify limits plus 20 minutes for downloads, Lambda's waits and the rest.
    #[arg(
        help_heading = "Jobs",
        long,
        env = "AUTO_LAMBDA_JOB_TIMEOUT_SECS",
        default_value_t = 0
    )]
    pub job_timeout_secs: u64,

    /// Memory limit of a build container, in MiB (swap is not allowed on top).
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_BUILD_MEMORY_MB",
        default_value_t = 2048
    )]
    pub build_memory_mb: i64,

    /// CPU limit of a build container, in cores.
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_BUILD_CPUS",
        default_value_t = 2.0
    )]
    pub build_cpus: f64,

    /// Process limit of a build container.
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_BUILD_PIDS",
        default_value_t = 512
    )]
    pub build_pids: i64,

    /// Docker network for builds: `bridge` lets pip and npm reach their registries; `none`
    /// builds offline (local requirements only, with the image's setuptools).
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_BUILD_NETWORK",
        default_value = "bridge"
    )]
    pub build_network: String,

    /// CA bundle to trust in dependency builds, for a TLS-intercepting proxy
    /// (e.g. /etc/ssl/certs/ca-certificates.crt): mounted read-only into build containers, and
    /// given (SSL_CERT_FILE) to the uv or pip the worker runs itself (wheels first, wheels mode).
    #[arg(help_heading = "Build and verify", long, env = "AUTO_LAMBDA_BUILD_CA_BUNDLE")]
    pub build_ca_bundle: Option<PathBuf>,

    /// Which tool installs Python dependencies: `auto` (uv when the worker has it, else pip),
    /// `uv` or `pip`. pylock.toml and uv.lock need uv.
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_PYTHON_INSTALLER",
        value_enum,
        default_value = "auto"
    )]
    pub python_installer: crate::deps::PythonInstaller,

    /// The uv binary (PyPI's `uv` wheel holds a static one; dev/setup.sh and ami/install.sh
    /// install the pinned version). It runs on the worker and is mounted read-only into build
    /// containers. Default: `uv` on PATH.
    #[arg(help_heading = "Build and verify", long, env = "AUTO_LAMBDA_UV_BINARY")]
    pub uv_binary: Option<PathBuf>,

    /// Python on this worker for wheels-only installs (it only hosts the installer: nothing
    /// is imported or built with it).
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_BUILD_PYTHON",
        default_value = "python3"
    )]
    pub build_python: String,

    /// In docker mode, install a Python app's dependencies as prebuilt wheels on this worker
    /// first (uv, with the persistent wheel cache `<cache-dir>/uv`; exact versions only), and
    /// start a build container only when that fails, e.g. a requirement with no wheel for the
    /// function's platform, or a local package to build. Installing a wheel runs no code from the
    /// upload, so the cache can be kept between jobs. `false`: every build uses a container.
    #[arg(help_heading = "Build and verify", long, env = "AUTO_LAMBDA_WHEELS_FIRST", default_value_t = true, action = clap::ArgAction::Set)]
    pub wheels_first: bool,

    /// Verify every package before it is deployed: audit its native files (architecture,
    /// glibc, CPython version, no macOS or Windows binaries) and load its handler in a warm
    /// container of the runtime's build image, with the network off. On by default; turn it
    /// off only as an emergency switch, since `deployed` then no longer means "it will start".
    #[arg(help_heading = "Build and verify", long, env = "AUTO_LAMBDA_VERIFY", default_value_t = true, action = clap::ArgAction::Set)]
    pub verify: bool,

    /// Wall-clock limit of loading one handler during verification, in seconds.
    #[arg(
        help_heading = "Build and verify",
        long,
        env = "AUTO_LAMBDA_VERIFY_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub verify_timeout_secs: u64,

    /// Runtime of a Python app whose lambda.toml names none. Default: the newest Python that
    /// Lambda supports.
    #[arg(help_heading = "Build and verify", long, env = "AUTO_LAMBDA_DEFAULT_PYTHON_RUNTIME", default_value = "python3.14", value_parser = parse_runtime)]
    pub default_python_runtime: String,

    /// Runtime of a Node.js app whose lambda.toml names none. Default: the newest Node.js that
    /// Lambda supports.
    #[arg(help_heading = "Build and verify", long, env = "AUTO_LAMBDA_DEFAULT_NODE_RUNTIME", default_value = "nodejs24.x", value_parser = parse_runtime)]
    pub default_node_runtime: String,

    /// Local dependency cache directory. Default: auto-lambda-cache in the system temp directory.
    #[arg(help_heading = "Dependency cache", long, env = "AUTO_LAMBDA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Size bound of the local dependency cache, in bytes; least recently used entries go first.
    #[arg(help_heading = "Dependency cache", long, env = "AUTO_LAMBDA_CACHE_MAX_BYTES", default_value_t = 5 << 30)]
    pub cache_max_bytes: u64,

    /// Bucket of the shared dependency cache, so new instances start warm. Off when unset.
    #[arg(help_heading = "Dependency cache", long, env = "AUTO_LAMBDA_CACHE_BUCKET")]
    pub cache_bucket: Option<String>,

    /// Key prefix of the shared dependency cache.
    #[arg(
        help_heading = "Dependency cache",
        long,
        env = "AUTO_LAMBDA_CACHE_PREFIX",
        default_value = "cache/"
    )]
    pub cache_prefix: String,

    /// Protect this instance from Auto Scaling scale-in while it holds jobs: `auto` (when on an
    /// instance of an Auto Scaling group, found through IMDSv2), `on` or `off`.
    #[arg(
        help_heading = "Operations",
        long,
        env = "AUTO_LAMBDA_SCALE_IN_PROTECTION",
        value_enum,
        default_value = "auto"
    )]
    pub scale_in_protection: InstanceMode,

    /// Take work only while this instance's Auto Scaling target lifecycle state (IMDSv2
    /// `autoscaling/target-lifecycle-state`) is InService: an instance launched into a warm
    /// pool initialises and waits, and one on its way out (back to the pool, or terminated)
    /// stops taking work at once. `auto`: when the metadata service has that state.
    #[arg(
        help_heading = "Operations",
        long,
        env = "AUTO_LAMBDA_FOLLOW_LIFECYCLE_STATE",
        value_enum,
        default_value = "auto"
    )]
    pub follow_lifecycle_state: InstanceMode,

    /// Once initialised, complete this Auto Scaling launch lifecycle hook for this instance
    /// (CONTINUE), so that the instance enters the warm pool or goes into service only with a
    /// ready worker. infra/ sets it. Off when unset.
    #[arg(help_heading = "Operations", long, env = "AUTO_LAMBDA_LAUNCH_LIFECYCLE_HOOK")]
    pub launch_lifecycle_hook: Option<String>,

    /// Publish deploy outcomes and stage durations to CloudWatch every minute (for the
    /// dashboard and the failed-deploys alarm).
    #[arg(help_heading = "Operations", long, env = "AUTO_LAMBDA_CLOUDWATCH_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub cloudwatch_metrics: bool,

    /// CloudWatch namespace of those metrics.
    #[arg(
        help_heading = "Operations",
        long,
        env = "AUTO_LAMBDA_METRICS_NAMESPACE",
        default_value = "AutoLambda"
    )]
    pub metrics_namespace: String,

    /// EventBridge bus (name or ARN) that receives a deployment event for every outcome and
    /// every step of a gradual deploy: source `auto-lambda`, detail-type `auto-lambda
    /// Deployment State Change`, the status report as the detail. Off when unset.
    #[arg(help_heading = "Deployment events", long, env = "AUTO_LAMBDA_EVENTS_BUS")]
    pub events_bus: Option<String>,

    /// SNS topic ARN that receives the same events, the report as JSON in the message, with
    /// message attributes `event` and `function` for subscription filters. Off when unset.
    #[arg(help_heading = "Deployment events", long, env = "AUTO_LAMBDA_EVENTS_TOPIC")]
    pub events_topic: Option<String>,

    /// Log format: text for people, json for CloudWatch Logs.
    #[arg(
        help_heading = "Operations",
        long,
        env = "AUTO_LAMBDA_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// Whether to use a feature that needs this EC2 instance's metadata (IMDSv2) and Auto Scaling
/// group: scale-in protection, following the lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InstanceMode {
    /// On when the worker runs on an instance of an Auto Scaling group, off elsewhere.
    Auto,
    /// Always; start-up fails if the instance, its group or its state cannot be found.
    #[value(alias = "true")]
    On,
    /// Never.
    #[value(alias = "false")]
    Off,
}

/// What a job may take besides its build and its checks: the download, the image pull's usual
/// case, Lambda's create/update waits (up to 5 minutes each in deploy.rs), publishing and the
/// report.
const JOB_OVERHEAD_SECS: u64 = 20 * 60;

impl Config {
    /// The per-job deadline: `--job-timeout-secs`, or derived from the build and verify limits.
    pub fn job_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(if self.job_timeout_secs > 0 {
            self.job_timeout_secs
        } else {
            self.build_timeout_secs + 2 * self.verify_timeout_secs + JOB_OVERHEAD_SECS
        })
    }

    /// Checks what clap cannot: ranges and shapes of values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.queue_url;
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.trim_end_matches('/').rsplit('/').next().is_none_or(str::is_empty)
        {
            return Err(ConfigError::new(
                "--queue-url / AUTO_LAMBDA_QUEUE_URL",
                format!("`{url}` is not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"),
            ));
        }
        if !self.role_arn.starts_with("arn:") || !self.role_arn.contains(":role/") {
            return Err(ConfigError::new(
                "--role-arn / AUTO_LAMBDA_ROLE_ARN",
                format!("`{}` is not an IAM role ARN", self.role_arn),
            ));
        }
        if self.status_prefix.starts_with(&self.source_prefix) || self.status_prefix.is_empty() {
            return Err(ConfigError::new(
                "--status-prefix / AUTO_LAMBDA_STATUS_PREFIX",
                format!(
                    "`{}` must be non-empty and outside the source prefix `{}`",
                    self.status_prefix, self.source_prefix
                ),
            ));
        }
        if let Some(topic) = &self.events_topic {
            if !topic.starts_with("arn:") || !topic.contains(":sns:") {
                return Err(ConfigError::new(
                    "--events-topic / AUTO_LAMBDA_EVENTS_TOPIC",
                    format!("`{topic}` is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)"),
                ));
            }
        }
        if self.events_bus.as_deref().is_some_and(|b| b.trim().is_empty()) {
            return Err(ConfigError::new(
                "--events-bus / AUTO_LAMBDA_EVENTS_BUS",
                "must name an EventBridge bus (its name or ARN), or be unset",
            ));
        }
        if self.concurrency == Some(0) {
            return Err(ConfigError::new(
                "--concurrency / AUTO_LAMBDA_CONCURRENCY",
                "must be at least 1",
            ));
        }
        if !(0..=20).contains(&self.wait_time_secs) {
            return Err(ConfigError::new(
                "--wait-time-secs / AUTO_LAMBDA_WAIT_TIME_SECS",
                "must be between 0 and 20",
            ));
        }
        if !(6..=43_200).contains(&self.visibility_timeout_secs) {
            return Err(ConfigError::new(
                "--visibility-timeout-secs / AUTO_LAMBDA_VISIBILITY_TIMEOUT_SECS",
                "must be between 6 and 43200",
            ));
        }
        let prefix_ok = self
            .function_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && self.function_prefix.len() < 64;
        if !prefix_ok {
            return Err(ConfigError::new(
                "--function-prefix / AUTO_LAMBDA_FUNCTION_PREFIX",
                "may hold only letters, digits, - and _",
            ));
        }
        if self.max_entries == 0 || self.max_ratio == 0 || self.max_zip_bytes == 0 || self.max_unpacked_bytes == 0 {
            return Err(ConfigError::new("--max-*", "limits must be greater than 0"));
        }
        if self.inline_max_bytes > crate::deploy::MAX_DIRECT_UPLOAD_BYTES {
            return Err(ConfigError::new(
                "--inline-max-bytes / AUTO_LAMBDA_INLINE_MAX_BYTES",
                format!(
                    "Lambda takes at most {} bytes inline",
                    crate::deploy::MAX_DIRECT_UPLOAD_BYTES
                ),
            ));
        }
        if let Some(ca) = &self.build_ca_bundle {
            if !ca.is_file() {
                return Err(ConfigError::new(
                    "--build-ca-bundle / AUTO_LAMBDA_BUILD_CA_BUNDLE",
                    format!("`{}` is not a file", ca.display()),
                ));
            }
        }
        if self.build_cpus.is_nan()
            || self.build_cpus <= 0.0
            || self.build_memory_mb < 64
            || self.build_pids < 16
            || self.build_timeout_secs == 0
        {
            return Err(ConfigError::new(
                "--build-cpus / --build-memory-mb / --build-pids / --build-timeout-secs",
                "cpus must be > 0, memory >= 64 MiB, pids >= 16, timeout > 0",
            ));
        }
        if let Some(uv) = &self.uv_binary {
            if !uv.is_file() {
                return Err(ConfigError::new(
                    "--uv-binary / AUTO_LAMBDA_UV_BINARY",
                    format!("`{}` is not a file", uv.display()),
                ));
            }
        }
        if self.python_installer == crate::deps::PythonInstaller::Uv && self.uv().is_none() {
            return Err(ConfigError::new(
                "--python-installer / AUTO_LAMBDA_PYTHON_INSTALLER",
                "is `uv`, but there is no uv: set --uv-binary or put uv on PATH",
            ));
        }
        if self.verify_timeout_secs == 0 {
            return Err(ConfigError::new(
                "--verify-timeout-secs / AUTO_LAMBDA_VERIFY_TIMEOUT_SECS",
                "must be greater than 0",
            ));
        }
        if !self.default_python_runtime.starts_with("python") || !self.default_node_runtime.starts_with("nodejs") {
            return Err(ConfigError::new(
                "--default-python-runtime / --default-node-runtime",
                "must name a Python and a Node.js runtime respectively",
            ));
        }
        if let Some(dir) = &self.work_dir {
            if !dir.is_dir() {
                return Err(ConfigError::new(
                    "--work-dir / AUTO_LAMBDA_WORK_DIR",
                    format!("`{}` is not a directory", dir.display()),
                ));
            }
        }
        Ok(())
    }

    /// Jobs worked at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Build settings for [`crate::deps::Builder`].
    pub fn build_settings(&self) -> crate::deps::Settings {
        crate::deps::Settings {
            mode: self.build_mode,
            images: self.build_images.iter().cloned().collect(),
            limits: crate::sandbox::Limits {
                memory_bytes: self.build_memory_mb << 20,
                nano_cpus: (self.build_cpus * 1e9) as i64,
                pids: self.build_pids,
                timeout: std::time::Duration::from_secs(self.build_timeout_secs),
                network: self.build_network.clone(),
                ca_bundle: self.build_ca_bundle.clone(),
            },
            host_python: self.build_python.clone(),
            installer: self.python_installer,
            uv: self.uv(),
            wheels_first: self.wheels_first,
            uv_cache: self.cache_dir().join("uv"),
        }
    }

    /// The uv binary: `--uv-binary`, else `uv` on PATH.
    pub fn uv(&self) -> Option<PathBuf> {
        if let Some(uv) = &self.uv_binary {
            return Some(uv.clone());
        }
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("uv"))
                .find(|candidate| candidate.is_file())
        })
    }

    /// Verification settings for [`crate::verify::Verifier`]. `region` is the AWS region the
    /// functions run in.
    pub fn verify_settings(&self, region: String) -> crate::verify::Settings {
        crate::verify::Settings {
            enabled: self.verify,
            mode: self.build_mode,
            images: self.build_images.iter().cloned().collect(),
            timeout: std::time::Duration::from_secs(self.verify_timeout_secs),
            work_root: self.work_dir.clone().unwrap_or_else(std::env::temp_dir),
            region,
        }
    }

    /// The runtimes of apps that name none.
    pub fn default_runtimes(&self) -> crate::manifest::Defaults {
        crate::manifest::Defaults {
            python: self.default_python_runtime.clone(),
            node: self.default_node_runtime.clone(),
        }
    }

    /// The local dependency cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("auto-lambda-cache"))
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_zip_bytes: self.max_zip_bytes,
            max_unpacked_bytes: self.max_unpacked_bytes,
            max_entries: self.max_entries,
            max_ratio: self.max_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(extra: &[&str]) -> Config {
        let mut args = vec![
            "w",
            "--queue-url",
            "http://127.0.0.1:5000/123456789012/jobs",
            "--role-arn",
            "arn:aws:iam::123456789012:role/r",
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        parse(&[]).validate().unwrap();
    }

    #[test]
    fn errors_name_the_setting() {
        let err = parse(&["--wait-time-secs", "30"]).validate().unwrap_err();
        assert!(err.to_string().contains("--wait-time-secs"));
        let err = parse(&["--role-arn", "nope"]).validate().unwrap_err();
        assert!(err.to_string().contains("AUTO_LAMBDA_ROLE_ARN"));
        let err = parse(&["--queue-url", "jobs"]).validate().unwrap_err();
        assert!(err.to_string().contains("--queue-url"));
    }
}
