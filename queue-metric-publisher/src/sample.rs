//! Reading the figures to publish: each queue's approximate counts, and the worker group's
//! InService instances.

use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsError;
use aws_sdk_autoscaling::types::LifecycleState;
use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

/// One sample of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub queue_name: String,
    pub visible: u64,
    pub not_visible: u64,
    pub delayed: u64,
}

/// Why a sample could not be read; each keeps the SDK's error.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot read the attributes of {queue}: {}", DisplayErrorContext(source))]
    Queue {
        queue: String,
        #[source]
        source: Box<SdkError<GetQueueAttributesError, HttpResponse>>,
    },
    #[error("cannot describe Auto Scaling group {group}: {}", DisplayErrorContext(source))]
    Group {
        group: String,
        #[source]
        source: Box<SdkError<DescribeAutoScalingGroupsError, HttpResponse>>,
    },
    #[error("Auto Scaling group {0} does not exist")]
    NoGroup(String),
}

/// The queue's name: the last segment of its URL.
pub fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

/// Reads the three approximate counts in one GetQueueAttributes call.
pub async fn read_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<Backlog, SampleError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| SampleError::Queue {
            queue: queue_name(queue_url).to_owned(),
            source: Box::new(e),
        })?;
    let attrs = out.attributes();
    let count = |name: QueueAttributeName| {
        attrs
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Backlog {
        queue_name: queue_name(queue_url).to_owned(),
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        not_visible: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    })
}

/// The worker group's size, as the publisher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSize {
    /// Instances in the InService lifecycle state.
    pub in_service: u64,
    pub desired: u64,
}

/// Reads the group's InService count and desired capacity.
pub async fn group_size(autoscaling: &aws_sdk_autoscaling::Client, group: &str) -> Result<GroupSize, SampleError> {
    let out = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .map_err(|e| SampleError::Group {
            group: group.to_owned(),
            source: Box::new(e),
        })?;
    let g = out
        .auto_scaling_groups()
        .first()
        .ok_or_else(|| SampleError::NoGroup(group.to_owned()))?;
    let in_service = g
        .instances()
        .iter()
        .filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService))
        .count();
    Ok(GroupSize {
        in_service: in_service as u64,
        desired: g.desired_capacity().unwrap_or(0).max(0) as u64,
    })
}
