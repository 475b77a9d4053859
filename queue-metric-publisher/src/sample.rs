//! Reading the figures to publish: the queue's approximate counts.

use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::types::QueueAttributeName;

type SqsError = aws_sdk_sqs::error::SdkError<GetQueueAttributesError>;

/// One sample of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub queue_name: String,
    pub visible: u64,
    pub not_visible: u64,
    pub delayed: u64,
}

/// Reads the three approximate counts in one GetQueueAttributes call.
pub async fn read_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<Backlog, SqsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await?;
    let attrs = out.attributes();
    let count = |name: QueueAttributeName| {
        attrs
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Backlog {
        queue_name: queue_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(queue_url)
            .to_owned(),
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        not_visible: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    })
}
