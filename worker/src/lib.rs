//! auto-lambda-worker: turns app zips uploaded to S3 into deployed Lambda functions.
//!
//! [`run`] is the whole daemon: it long-polls the queue, works up to `concurrency` jobs at
//! once ([`job`]), and on shutdown stops receiving, lets jobs in hand finish within the grace
//! period and hands back the messages of those that cannot.
//!
//! Where things happen: [`event`] parses notifications, [`queue`] talks to SQS, [`artifact`]
//! fetches and unpacks uploads, [`manifest`] reads `lambda.toml`, [`deps`] builds native
//! dependencies and caches them, [`package`] writes the deployment zip, [`verify`] checks the
//! package will start, [`deploy`] talks to Lambda, [`traffic`] moves the alias (at once, or in
//! steps with alarm rollback), [`function_url`] keeps the function URL, [`report`] writes
//! status reports and [`notify`] sends deployment events. Around them: [`sandbox`] runs
//! locked-down containers for `deps` and `verify`, [`coalesce`] deploys only the newest upload
//! in hand per function, [`protection`] guards busy instances from scale-in, [`lifecycle`]
//! keeps a warm pool's instances from taking work until they are InService, [`error`]
//! classifies failures ([`sdk_error`] puts SDK errors in plain words) and [`metrics`] counts
//! what happened.
#![forbid(unsafe_code)]

pub mod artifact;
pub mod coalesce;
pub mod config;
pub mod deploy;
pub mod deps;
pub mod error;
pub mod event;
pub mod function_url;
pub mod job;
pub mod lifecycle;
pub mod manifest;
pub mod metrics;
pub mod notify;
pub mod package;
pub mod protection;
pub mod queue;
pub mod report;
pub mod sandbox;
pub mod sdk_error;
pub mod traffic;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
use job::{Context, Disposition};
use queue::Queue;

/// How many cases each property test runs: `PROPTEST_CASES` when set (for long fuzzing
/// runs), else `default`.
#[cfg(test)]
pub(crate) fn fuzz_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The AWS clients the worker uses, built once from one [`SdkConfig`], with the deadlines of
/// `auto_lambda_common::aws` (Lambda and S3 have longer ones: they carry packages).
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            s3: auto_lambda_common::aws::s3_client(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(sdk)
                    .timeout_config(auto_lambda_common::aws::lambda_timeouts())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            eventbridge: aws_sdk_eventbridge::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the dependency cache directory {dir}: {source}")]
    CacheDir {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scale-in protection is on but unavailable: {0}")]
    Protection(#[from] protection::ProtectionError),
    #[error("--follow-lifecycle-state is on but the state is unavailable: {0}")]
    Lifecycle(#[from] lifecycle::LifecycleError),
    #[error(
        "cannot reach the queue {queue_url} (check --queue-url and --endpoint-url): {}",
        sdk_error::describe(source)
    )]
    QueueUnreachable {
        queue_url: String,
        #[source]
        source: Box<
            aws_smithy_runtime_api::client::result::SdkError<
                aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError,
                aws_smithy_runtime_api::client::orchestrator::HttpResponse,
            >,
        >,
        /// What [`error::sdk`] made of the last attempt: transient (network, throttling, 5xx)
        /// or permanent (no such queue, access denied, a malformed URL).
        transient: bool,
    },
    #[error(
        "the queue {queue_url} did not answer within {after:?} (check --queue-url, --endpoint-url and the network)"
    )]
    QueueTimedOut { queue_url: String, after: Duration },
    #[error("cannot create the verification staging directory under {dir}: {source}")]
    StageDir {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--build-image / AUTO_LAMBDA_BUILD_IMAGES: {0}")]
    BuildImage(verify::VerifyError),
    #[error("cannot reach the Docker Engine, which builds run in (is docker.service running? DOCKER_HOST?): {0}")]
    DockerUnreachable(#[source] sandbox::ContainerError),
}

impl StartError {
    /// Whether starting again later may succeed (exit 75) rather than needing a change of
    /// configuration (exit 64).
    pub fn is_transient(&self) -> bool {
        match self {
            StartError::QueueUnreachable { transient, .. } => *transient,
            StartError::Protection(protection::ProtectionError::Imds(_))
            | StartError::Lifecycle(lifecycle::LifecycleError::Imds(_))
            | StartError::DockerUnreachable(_)
            | StartError::QueueTimedOut { .. } => true,
            StartError::Protection(protection::ProtectionError::Group { source, .. }) => {
                sdk_error::is_transient(source, |_| false)
            }
            StartError::Protection(protection::ProtectionError::NoGroup { .. })
            | StartError::Lifecycle(lifecycle::LifecycleError::NoState)
            | StartError::CacheDir { .. }
            | StartError::StageDir { .. }
            | StartError::BuildImage(_) => false,
        }
    }
}

/// Checks, before taking any work, that the queue answers. Retries until `timeout`, so that a
/// worker started before the network is up does not give up at once.
pub async fn preflight(config: &Config, clients: &Clients) -> Result<(), StartError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(config.startup_timeout_secs);
    let mut delay = Duration::from_millis(250);
    loop {
        let call = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&config.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .send();
        // A call that hangs is bounded by the start-up time left, not by the client's own
        // 2-minute deadline (systemd's start timeout would end the worker first).
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(attempt) = tokio::time::timeout(left.max(Duration::from_secs(1)), call).await else {
            return Err(StartError::QueueTimedOut {
                queue_url: config.queue_url.clone(),
                after: Duration::from_secs(config.startup_timeout_secs),
            });
        };
        match attempt {
            Ok(_) => return Ok(()),
            Err(err) => {
                let permanent = error::sdk(&err, |_| false) == error::Class::Permanent;
                if permanent || tokio::time::Instant::now() + delay > deadline {
                    return Err(StartError::QueueUnreachable {
                        queue_url: config.queue_url.clone(),
                        source: Box::new(err),
                        transient: !permanent,
                    });
                }
                tracing::info!(reason = %sdk_error::describe(&err), "Queue not reachable yet; retrying.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs the worker until `shutdown` is cancelled, then drains. Returns once every job has
/// finished or been handed back; fails only at start-up.
pub async fn run(config: Config, clients: Clients, shutdown: CancellationToken) -> Result<(), StartError> {
    let shared_cache = config.cache_bucket.as_ref().map(|bucket| deps::cache::Shared {
        s3: clients.s3.clone(),
        bucket: bucket.clone(),
        prefix: config.cache_prefix.clone(),
    });
    let cache =
        deps::cache::Cache::new(config.cache_dir(), config.cache_max_bytes, shared_cache).map_err(|source| {
            StartError::CacheDir {
                dir: config.cache_dir(),
                source,
            }
        })?;
    // Both ask the metadata service, which off EC2 takes a few seconds to fail: at once.
    let (protection, lifecycle) = tokio::join!(
        protection::Protection::discover(config.scale_in_protection, clients.autoscaling.clone()),
        lifecycle::Gate::follow(config.follow_lifecycle_state, shutdown.clone()),
    );
    let protection = protection?.map(Arc::new);
    let mut lifecycle = lifecycle?;
    let settings = config.build_settings();
    let engine = Arc::new(sandbox::Engine::new(settings.limits.clone()));
    let builder = deps::Builder::new(settings, cache, engine.clone());
    builder
        .prepare(Duration::from_secs(config.startup_timeout_secs))
        .await
        .map_err(StartError::DockerUnreachable)?;
    let region = clients
        .lambda
        .config()
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
    let verify_settings = config.verify_settings(region);
    let verifier = verify::Verifier::new(verify_settings, engine).map_err(|source| StartError::StageDir {
        dir: config.work_dir.clone().unwrap_or_else(std::env::temp_dir),
        source,
    })?;
    match verifier.warm_up().await {
        Ok(()) => {}
        Err(err @ verify::VerifyError::Interpreter { .. }) => {
            verifier.shutdown().await;
            return Err(StartError::BuildImage(err));
        }
        Err(err) => tracing::warn!(error = %err, "Cannot start the verifier yet; jobs will retry."),
    }
    if let Some(hook) = &config.launch_lifecycle_hook {
        lifecycle::complete_launch(&clients.autoscaling, hook).await;
    }
    let config = Arc::new(config);
    let flush_stop = CancellationToken::new();
    let cloudwatch = config.cloudwatch_metrics.then(|| {
        let queue_name = config
            .queue_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        tokio::spawn(metrics::publish_to_cloudwatch(
            clients.cloudwatch.clone(),
            config.metrics_namespace.clone(),
            queue_name,
            Duration::from_secs(60),
            flush_stop.clone(),
        ))
    });
    let ctx = Context {
        s3: clients.s3.clone(),
        lambda: clients.lambda.clone(),
        queue: Queue::new(clients.sqs.clone(), config.queue_url.clone()),
        config: config.clone(),
        in_hand: Default::default(),
        builder: Arc::new(builder),
        verifier: Arc::new(verifier),
        protection,
        cloudwatch: clients.cloudwatch.clone(),
        notifier: notify::Notifier::new(
            clients.eventbridge.clone(),
            config.events_bus.clone(),
            clients.sns.clone(),
            config.events_topic.clone(),
        ),
    };
    let concurrency = config.concurrency();
    let permits = Arc::new(Semaphore::new(concurrency));
    let tracker = TaskTracker::new();
    // Cancelled when the grace period runs out: jobs still running hand their messages back.
    let hard_stop = CancellationToken::new();
    let mut receive_backoff = Duration::ZERO;
    tracing::info!(queue = %config.queue_url, concurrency, "Worker started.");

    loop {
        // A warm pool's instance initialises above and then waits here until it is InService;
        // one leaving service takes no more work.
        if let Some(gate) = &mut lifecycle {
            if !gate.until_in_service(&shutdown).await {
                break;
            }
        }
        // Wait for a free slot before asking for more work, so that no message sits hidden
        // in this process while another worker is idle.
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let mut slots = vec![first];
        while slots.len() < 10 {
            match permits.clone().try_acquire_owned() {
                Ok(p) => slots.push(p),
                Err(_) => break,
            }
        }
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = ctx.queue.receive(slots.len() as i32, config.wait_time_secs, config.visibility_timeout_secs) => r,
        };
        let messages = match received {
            Ok(messages) => {
                receive_backoff = Duration::ZERO;
                messages
            }
            Err(err) => {
                metrics::record_receive_error();
                receive_backoff = (receive_backoff * 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
                tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&err), backoff_ms = receive_backoff.as_millis() as u64, "Receive failed; backing off.");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(receive_backoff) => continue,
                }
            }
        };
        for message in messages {
            let permit = slots.pop().expect("never more messages than slots");
            let ctx = ctx.clone();
            let hard_stop = hard_stop.clone();
            tracker.spawn(async move {
                let _permit = permit;
                work_message(&ctx, message, hard_stop).await;
            });
        }
    }

    tracker.close();
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    tracing::info!(
        in_flight = tracker.len(),
        grace_secs = grace.as_secs(),
        "Stopped receiving; finishing jobs in hand."
    );
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            in_flight = tracker.len(),
            "Grace period over; handing back unfinished messages."
        );
        hard_stop.cancel();
        tracker.wait().await;
    }
    ctx.builder.shutdown().await;
    ctx.verifier.shutdown().await;
    flush_stop.cancel();
    if let Some(flush) = cloudwatch {
        let _ = flush.await;
    }
    tracing::info!("Worker stopped.");
    Ok(())
}

/// Runs one message's job with a visibility heartbeat, then deletes it or lets it reappear.
async fn work_message(ctx: &Context, message: queue::Received, hard_stop: CancellationToken) {
    // Guards: each is released on every way out of this function, a panic included.
    let _in_flight = metrics::InFlight::enter();
    let protected = match &ctx.protection {
        Some(p) => Some(p.hold().await),
        None => None,
    };
    let beat_done = CancellationToken::new();
    let heartbeat = ctx.queue.heartbeat(
        &message.receipt_handle,
        ctx.config.visibility_timeout_secs,
        beat_done.clone(),
    );
    let job = job::handle(ctx, &message);
    let disposition = tokio::select! {
        d = job => Some(d),
        _ = heartbeat => None,
        _ = hard_stop.cancelled() => None,
    };
    beat_done.cancel();
    let result = match disposition {
        Some(Disposition::Delete) => ctx.queue.delete(&message.receipt_handle).await,
        Some(Disposition::RetryAfter(delay)) => {
            ctx.queue
                .set_visibility(&message.receipt_handle, delay.as_secs().min(43_000) as i32)
                .await
        }
        None => {
            tracing::warn!(message_id = %message.message_id, "Job interrupted; handing its message back.");
            ctx.queue.set_visibility(&message.receipt_handle, 0).await
        }
    };
    if let Err(err) = result {
        // Not fatal: the message reappears after its visibility timeout and is worked again,
        // which the exactly-once checks make harmless.
        tracing::warn!(message_id = %message.message_id, error = %err, "Cannot settle the message with SQS.");
    }
    if let Some(hold) = protected {
        hold.release().await;
    }
}
