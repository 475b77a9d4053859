//! The SQS side of a job: receiving messages, keeping them hidden while they are worked,
//! handing them back, and deleting them once their outcome is recorded.

use std::time::Duration;

use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use tokio_util::sync::CancellationToken;

/// Settling a message with SQS failed; the SDK's error is kept, with its whole cause chain.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("DeleteMessage failed: {}", crate::sdk_error::describe(.0))]
    Delete(#[source] Box<SdkError<DeleteMessageError, HttpResponse>>),
    #[error("ChangeMessageVisibility failed: {}", crate::sdk_error::describe(.0))]
    Visibility(#[source] Box<SdkError<ChangeMessageVisibilityError, HttpResponse>>),
}

/// One queue and the client that talks to it.
#[derive(Debug, Clone)]
pub struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

/// A received message, with what the worker needs from it.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times SQS has handed this message out, this time included.
    pub receive_count: u32,
}

impl Queue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self { sqs, url: url.into() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Long-polls for up to `max` messages, hiding them for `visibility_secs`.
    pub async fn receive(
        &self,
        max: i32,
        wait_secs: i32,
        visibility_secs: i32,
    ) -> Result<Vec<Received>, SdkError<ReceiveMessageError, HttpResponse>> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_secs)
            .visibility_timeout(visibility_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(received)
            .collect())
    }

    /// Sends `body` to this queue, hidden for `delay_secs` (0..=900) first. Used for the
    /// steps of a gradual deploy (see `crate::traffic`).
    pub async fn send(
        &self,
        body: &str,
        delay_secs: i32,
    ) -> Result<(), SdkError<aws_sdk_sqs::operation::send_message::SendMessageError, HttpResponse>> {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_secs.clamp(0, 900))
            .send()
            .await?;
        Ok(())
    }

    /// Deletes a message whose outcome has been recorded.
    pub async fn delete(&self, receipt: &str) -> Result<(), SettleError> {
        self.sqs
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| SettleError::Delete(Box::new(e)))?;
        Ok(())
    }

    /// Makes a message visible again after `secs` (0: at once, for another worker).
    pub async fn set_visibility(&self, receipt: &str, secs: i32) -> Result<(), SettleError> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| SettleError::Visibility(Box::new(e)))?;
        Ok(())
    }

    /// Keeps a message hidden while its job runs: every `visibility_secs / 3` it renews the
    /// visibility to `visibility_secs`, until `done` is cancelled. A crash stops the renewals,
    /// and the message reappears within `visibility_secs`.
    pub async fn heartbeat(&self, receipt: &str, visibility_secs: i32, done: CancellationToken) {
        let every = Duration::from_secs((visibility_secs / 3).max(1) as u64);
        loop {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            // Each beat gets until the next one: a call that hangs (up to the client's
            // 2-minute operation timeout) must not let the visibility lapse unrenewed.
            match tokio::time::timeout(every, self.set_visibility(receipt, visibility_secs)).await {
                Ok(Ok(())) => {}
                // The next beat tries again; if they all fail the message reappears, which is safe.
                Ok(Err(err)) => tracing::warn!(error = %err, "Visibility heartbeat failed."),
                Err(_) => tracing::warn!(
                    after_ms = every.as_millis() as u64,
                    "Visibility heartbeat did not answer in time."
                ),
            }
        }
    }
}

fn received(m: Message) -> Option<Received> {
    let receive_count = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    Some(Received {
        message_id: m.message_id?,
        receipt_handle: m.receipt_handle?,
        body: m.body.unwrap_or_default(),
        receive_count,
    })
}

/// Delay before a failed message is tried again: `base_secs` doubling per receive, capped at
/// 15 min, with ±20% jitter so that a burst of failures does not come back as a burst.
pub fn retry_delay(base_secs: u64, receive_count: u32) -> Duration {
    let base = base_secs
        .saturating_mul(1 << receive_count.saturating_sub(1).min(7))
        .min(900);
    let jitter = jitter_fraction();
    Duration::from_millis(((base as f64) * 1000.0 * (0.8 + 0.4 * jitter)) as u64).min(Duration::from_secs(900))
}

/// A number in [0, 1) from the clock: enough to spread retries, no RNG dependency.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_caps() {
        let d1 = retry_delay(10, 1).as_secs_f64();
        assert!((8.0..=12.0).contains(&d1), "{d1}");
        let d3 = retry_delay(10, 3).as_secs_f64();
        assert!((32.0..=48.0).contains(&d3), "{d3}");
        assert!(retry_delay(10, 50) <= Duration::from_secs(900));
    }
}
