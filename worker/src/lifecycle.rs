//! The instance's Auto Scaling lifecycle: the worker takes work only while its instance is
//! InService.
//!
//! With a warm pool (infra/: `pool_state = "Stopped"`), the group launches instances ahead of
//! need: each boots, runs its user data, starts this worker (the unit is enabled), and is then
//! stopped until a scale-out takes it from the pool. The worker initialises while warming
//! (Docker, the build images, the verifier's container) — that is what the pool is for — but
//! must not take a job: the instance is about to stop, and the job would be cut off. When the
//! group takes the instance out of the pool it boots again, systemd starts the worker, and the
//! state reads InService. On the way out (scale-in back to the pool with
//! `reuse_on_scale_in`, or termination) the worker stops taking new work at once; jobs in hand
//! finish under the usual shutdown grace when systemd stops it.
//!
//! The state is the IMDSv2 item `autoscaling/target-lifecycle-state`, read every
//! [`POLL`]. Its values (EC2 Auto Scaling User Guide, "Retrieve the target lifecycle state
//! through instance metadata"): `InService`, `Standby`, `Detached`, `Terminated`,
//! `Warmed:Stopped`, `Warmed:Running`, `Warmed:Hibernated`, `Warmed:Terminated`. AWS has
//! written it since 10 March 2022; it is absent (HTTP 404) on instances outside a group.

use std::time::Duration;

use aws_config::imds;
use aws_config::imds::client::error::ImdsError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::InstanceMode as Mode;

/// The IMDS item that holds the state the instance is moving to.
pub const ITEM: &str = "/latest/meta-data/autoscaling/target-lifecycle-state";

/// How often the state is read again. A read is a local HTTP call to the metadata service.
pub const POLL: Duration = Duration::from_secs(5);

/// The one state in which the worker takes work.
pub const IN_SERVICE: &str = "InService";

/// Why the lifecycle state cannot be followed (only an error with `--follow-lifecycle-state on`).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot read {ITEM} from the instance metadata service (IMDSv2): {}", aws_smithy_types::error::display::DisplayErrorContext(.0))]
    Imds(#[source] Box<ImdsError>),
    #[error("the instance metadata service has no {ITEM}: this instance is in no Auto Scaling group")]
    NoState,
}

impl LifecycleError {
    /// True when there is no state to follow: the item is absent, or no metadata service
    /// answers at all (not on EC2).
    fn means_no_state(&self) -> bool {
        match self {
            LifecycleError::NoState => true,
            LifecycleError::Imds(err) => match err.as_ref() {
                ImdsError::FailedToLoadToken(e) => e.is_dispatch_failure(),
                ImdsError::IoError(_) => true,
                _ => false,
            },
        }
    }
}

/// Follows the state; [`Gate::until_in_service`] holds the receive loop while it is not
/// InService.
#[derive(Debug, Clone)]
pub struct Gate {
    state: watch::Receiver<String>,
}

impl Gate {
    /// Reads the state once and, when there is one, follows it every [`POLL`] until
    /// `shutdown`. `Ok(None)` when the mode is off, or auto and there is no state to follow
    /// (not on EC2, or not in an Auto Scaling group).
    pub async fn follow(mode: Mode, shutdown: CancellationToken) -> Result<Option<Self>, LifecycleError> {
        if mode == Mode::Off {
            return Ok(None);
        }
        let imds = auto_lambda_common::aws::imds_client();
        let mut tries = 0;
        let first = loop {
            tries += 1;
            match read(&imds).await {
                Ok(state) => break state,
                // Nothing to follow: not on EC2 (nobody answers at the metadata address), or
                // not in an Auto Scaling group (no such item).
                Err(err) if mode == Mode::Auto && err.means_no_state() => {
                    tracing::info!(reason = %err, "No Auto Scaling lifecycle state; taking work whenever there is some.");
                    return Ok(None);
                }
                // The service answered with an error (throttled, 5xx, a token refused): try
                // again, then give up (exit 75) rather than guess and take work in a warm pool.
                Err(err) if tries < 5 => {
                    tracing::info!(reason = %err, "Cannot read the lifecycle state yet; retrying.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => return Err(err),
            }
        };
        log_state(&first);
        let (tx, rx) = watch::channel(first);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(POLL) => {}
                }
                match read(&imds).await {
                    Ok(state) => {
                        tx.send_if_modified(|old| {
                            if *old == state {
                                return false;
                            }
                            log_state(&state);
                            *old = state;
                            true
                        });
                    }
                    // Keep the last known state: a metadata hiccup must not stop the work.
                    Err(err) => tracing::debug!(error = %err, "Cannot read the lifecycle state; keeping the last one."),
                }
            }
        });
        Ok(Some(Self { state: rx }))
    }

    /// The state last read.
    pub fn state(&self) -> String {
        self.state.borrow().clone()
    }

    /// Waits until the state is InService. Returns `false` if `shutdown` came first.
    pub async fn until_in_service(&mut self, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            // An error means the follower stopped, which it does only on shutdown.
            r = self.state.wait_for(|s| s == IN_SERVICE) => r.is_ok(),
        }
    }
}

fn log_state(state: &str) {
    if state == IN_SERVICE {
        tracing::info!(state, "Instance is InService; taking work.");
    } else if state.starts_with("Warmed:") {
        tracing::info!(
            state,
            "Instance is in the warm pool: initialised, taking no work until it is InService."
        );
    } else {
        tracing::info!(state, "Instance is leaving service; taking no new work.");
    }
}

async fn read(imds: &imds::Client) -> Result<String, LifecycleError> {
    match imds.get(ITEM).await {
        Ok(value) => Ok(String::from(value).trim().to_owned()),
        Err(ImdsError::ErrorResponse(r)) if r.response().status().as_u16() == 404 => Err(LifecycleError::NoState),
        Err(err) => Err(LifecycleError::Imds(Box::new(err))),
    }
}

/// Completes the launch lifecycle hook `hook` for this instance with CONTINUE, once the worker
/// has initialised. infra puts such a hook on the group (`EC2_INSTANCE_LAUNCHING`, ABANDON on
/// timeout): an instance then neither enters the warm pool nor goes into service until its
/// worker is ready, and one whose worker never gets ready is replaced. It runs on every start,
/// since leaving the warm pool passes the hook again. Never fatal: off EC2 there is nothing to
/// complete, and on a restart of the service AWS answers that no action is pending.
/// (API reference: CompleteLifecycleAction; User Guide, "Use lifecycle hooks with a warm pool".)
pub async fn complete_launch(autoscaling: &aws_sdk_autoscaling::Client, hook: &str) {
    let (instance, group) = match crate::protection::locate(autoscaling).await {
        Ok(found) => found,
        Err(err) => {
            tracing::info!(reason = %err, hook, "Not on an Auto Scaling instance; no lifecycle action to complete.");
            return;
        }
    };
    let done = autoscaling
        .complete_lifecycle_action()
        .auto_scaling_group_name(&group)
        .lifecycle_hook_name(hook)
        .instance_id(&instance)
        .lifecycle_action_result("CONTINUE")
        .send()
        .await;
    match done {
        Ok(_) => tracing::info!(hook, %instance, %group, "Completed the launch lifecycle action: the worker is ready."),
        Err(err) => {
            tracing::warn!(error = %crate::sdk_error::describe(&err), hook, %instance, %group, "Cannot complete the launch lifecycle action (none pending after a service restart is harmless; otherwise the hook times out and the instance is replaced).");
        }
    }
}
