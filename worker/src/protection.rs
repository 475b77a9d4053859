//! Scale-in protection: while this instance holds jobs, its Auto Scaling group must not pick
//! it when scaling in, or a build would be killed halfway. The instance protects itself when
//! its first job starts and releases the protection when its last job ends.
//!
//! The instance finds itself through IMDSv2 (the SDK's client, which honours
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`) and its group through DescribeAutoScalingInstances.
//! `auto` (the default) turns this on only when both are found; `on` requires them.

use std::sync::Arc;

use crate::config::InstanceMode as Mode;

/// Why protection could not be set up; each keeps the SDK's error.
#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error("cannot read the instance id from the instance metadata service (IMDSv2): {}", aws_smithy_types::error::display::DisplayErrorContext(.0))]
    Imds(#[source] Box<aws_config::imds::client::error::ImdsError>),
    #[error(
        "cannot find the Auto Scaling group of instance {instance}: {}",
        crate::sdk_error::describe(source)
    )]
    Group {
        instance: String,
        #[source]
        source: Box<
            aws_smithy_runtime_api::client::result::SdkError<
                aws_sdk_autoscaling::operation::describe_auto_scaling_instances::DescribeAutoScalingInstancesError,
                aws_smithy_runtime_api::client::orchestrator::HttpResponse,
            >,
        >,
    },
    #[error("instance {instance} is in no Auto Scaling group")]
    NoGroup { instance: String },
}

/// This instance's protection, with a count of the jobs it holds.
#[derive(Debug)]
pub struct Protection {
    autoscaling: aws_sdk_autoscaling::Client,
    instance_id: String,
    group: String,
    /// Jobs in hand, and whether protection is currently set.
    state: tokio::sync::Mutex<(usize, bool)>,
}

impl Protection {
    /// Finds this instance and its group. `Ok(None)` when the mode is off, or auto and this is
    /// not an instance of a group.
    pub async fn discover(
        mode: Mode,
        autoscaling: aws_sdk_autoscaling::Client,
    ) -> Result<Option<Self>, ProtectionError> {
        if mode == Mode::Off {
            return Ok(None);
        }
        let found = Self::find(autoscaling).await;
        match (mode, found) {
            (_, Ok(p)) => {
                tracing::info!(instance = %p.instance_id, group = %p.group, "Scale-in protection managed while jobs run.");
                Ok(Some(p))
            }
            (Mode::Auto, Err(err)) => {
                tracing::info!(reason = %err, "Not on an Auto Scaling instance; scale-in protection off.");
                Ok(None)
            }
            (_, Err(err)) => Err(err),
        }
    }

    async fn find(autoscaling: aws_sdk_autoscaling::Client) -> Result<Self, ProtectionError> {
        let (instance_id, group) = locate(&autoscaling).await?;
        Ok(Self {
            autoscaling,
            instance_id,
            group,
            state: tokio::sync::Mutex::new((0, false)),
        })
    }

    /// A job starts: protects the instance if it was idle, and returns the job's hold on the
    /// protection. Release it with [`Hold::release`]; if the job ends any other way (a panic,
    /// a cancelled future), dropping the hold releases it. Failures to set or release are
    /// logged, never fatal: the job runs either way.
    pub async fn hold(self: &Arc<Self>) -> Hold {
        self.job_started().await;
        Hold(Some(self.clone()))
    }

    async fn job_started(&self) {
        let mut state = self.state.lock().await;
        state.0 += 1;
        if !state.1 && self.set(true).await {
            state.1 = true;
        }
    }

    /// A job ended: release the protection if the instance is now idle.
    async fn job_finished(&self) {
        let mut state = self.state.lock().await;
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 && state.1 && self.set(false).await {
            state.1 = false;
        }
    }

    async fn set(&self, protected: bool) -> bool {
        let result = self
            .autoscaling
            .set_instance_protection()
            .auto_scaling_group_name(&self.group)
            .instance_ids(&self.instance_id)
            .protected_from_scale_in(protected)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::debug!(protected, "Scale-in protection set.");
                true
            }
            Err(err) => {
                let error = aws_smithy_types::error::display::DisplayErrorContext(&err);
                tracing::warn!(%error, protected, "Cannot set scale-in protection.");
                false
            }
        }
    }
}

/// This instance's id (IMDSv2) and its Auto Scaling group (DescribeAutoScalingInstances).
pub async fn locate(autoscaling: &aws_sdk_autoscaling::Client) -> Result<(String, String), ProtectionError> {
    let imds = auto_lambda_common::aws::imds_client();
    let instance_id: String = imds
        .get("/latest/meta-data/instance-id")
        .await
        .map_err(|e| ProtectionError::Imds(Box::new(e)))?
        .into();
    let out = autoscaling
        .describe_auto_scaling_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .map_err(|e| ProtectionError::Group {
            instance: instance_id.clone(),
            source: Box::new(e),
        })?;
    let group = out
        .auto_scaling_instances()
        .first()
        .and_then(|i| i.auto_scaling_group_name())
        .ok_or_else(|| ProtectionError::NoGroup {
            instance: instance_id.clone(),
        })?
        .to_owned();
    Ok((instance_id, group))
}

/// One job's hold on the instance's scale-in protection (see [`Protection::hold`]).
#[derive(Debug)]
#[must_use = "dropping the hold releases the protection"]
pub struct Hold(Option<Arc<Protection>>);

impl Hold {
    /// The job is over: releases the protection if no other job holds it.
    pub async fn release(mut self) {
        if let Some(p) = self.0.take() {
            p.job_finished().await;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // Not released by the job (it panicked or was cancelled): release it on the runtime.
        if let Some(p) = self.0.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { p.job_finished().await });
            }
        }
    }
}
