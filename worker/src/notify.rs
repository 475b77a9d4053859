//! Deployment events: one per outcome (`deployed`, `unchanged`, `stale-skipped`, `failed`,
//! `rolled-back`) and per step of a gradual deploy (`shift-started`, `shift-stepped`), sent
//! to an EventBridge bus and/or an SNS topic, so that chat and on-call hear of a deploy
//! without polling S3.
//!
//! Each event carries the status report's fields, plus `event`. On EventBridge: source
//! [`SOURCE`], detail-type [`DETAIL_TYPE`], the function's ARN in `resources`. On SNS: the
//! same JSON as the message, a subject `auto-lambda: <function> <event>`, and the message
//! attributes `event` and `function` (String), which subscription filter policies can match.
//!
//! A failure to send is logged and counted (`auto_lambda_event_publish_errors_total`,
//! CloudWatch `EventPublishErrors`); it never fails the job, and is not retried: the status
//! report in S3 stays the record.

use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sns::types::MessageAttributeValue;
use serde_json::Value;

/// EventBridge `source` of every event.
pub const SOURCE: &str = "auto-lambda";
/// EventBridge `detail-type` of every event.
pub const DETAIL_TYPE: &str = "auto-lambda Deployment State Change";

/// How long one send may take before it is given up (each destination separately).
const SEND_DEADLINE: Duration = Duration::from_secs(10);

/// Where events go; neither, either or both.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    bus: Option<(aws_sdk_eventbridge::Client, String)>,
    topic: Option<(aws_sdk_sns::Client, String)>,
}

impl Notifier {
    /// `bus`: an EventBridge bus name or ARN; `topic`: an SNS topic ARN.
    pub fn new(
        eventbridge: aws_sdk_eventbridge::Client,
        bus: Option<String>,
        sns: aws_sdk_sns::Client,
        topic: Option<String>,
    ) -> Self {
        Self {
            bus: bus.map(|b| (eventbridge, b)),
            topic: topic.map(|t| (sns, t)),
        }
    }

    /// Sends `event` with `report` (a status report as JSON) to every destination. Never
    /// fails: see the module docs.
    pub async fn publish(&self, event: &str, report: &Value) {
        if self.bus.is_none() && self.topic.is_none() {
            return;
        }
        let mut detail = report.clone();
        if let Some(map) = detail.as_object_mut() {
            map.insert("event".into(), Value::from(event));
        }
        let body = detail.to_string();
        let function = report["function_name"].as_str().unwrap_or_default();
        let arn = report["function_arn"].as_str();
        let (bus, topic) = tokio::join!(
            async {
                if let Some((client, bus)) = &self.bus {
                    let sent = tokio::time::timeout(SEND_DEADLINE, put_event(client, bus, &body, arn)).await;
                    settle("EventBridge", bus, event, sent);
                }
            },
            async {
                if let Some((client, topic)) = &self.topic {
                    let sent =
                        tokio::time::timeout(SEND_DEADLINE, publish(client, topic, &body, event, function)).await;
                    settle("SNS", topic, event, sent);
                }
            }
        );
        let ((), ()) = (bus, topic);
    }
}

fn settle(
    service: &str,
    destination: &str,
    event: &str,
    sent: Result<Result<(), String>, tokio::time::error::Elapsed>,
) {
    let error = match sent {
        Ok(Ok(())) => return tracing::debug!(service, destination, event, "Deployment event sent."),
        Ok(Err(error)) => error,
        Err(_) => format!("no answer within {SEND_DEADLINE:?}"),
    };
    crate::metrics::record_event_publish_error();
    tracing::warn!(service, destination, event, %error, "Cannot send a deployment event; the status report is the record.");
}

async fn put_event(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    detail: &str,
    arn: Option<&str>,
) -> Result<(), String> {
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(SOURCE)
        .detail_type(DETAIL_TYPE)
        .detail(detail)
        .set_resources(arn.filter(|a| !a.is_empty()).map(|a| vec![a.to_owned()]))
        .build();
    let out = client
        .put_events()
        .entries(entry)
        .send()
        .await
        .map_err(|e| crate::sdk_error::describe(&e))?;
    // PutEvents answers 200 with per-entry errors (AWS API reference, PutEvents:
    // "FailedEntryCount").
    match out.entries().first() {
        Some(e) if e.error_code().is_some() => Err(format!(
            "{}: {}",
            e.error_code().unwrap_or_default(),
            e.error_message().unwrap_or_default()
        )),
        _ if out.failed_entry_count() > 0 => Err("PutEvents reported a failed entry".into()),
        _ => Ok(()),
    }
}

async fn publish(
    client: &aws_sdk_sns::Client,
    topic: &str,
    message: &str,
    event: &str,
    function: &str,
) -> Result<(), String> {
    let attr = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .map_err(|e| e.to_string())
    };
    let mut request = client
        .publish()
        .topic_arn(topic)
        .subject(subject(function, event))
        .message(message)
        .message_attributes("event", attr(event)?);
    if !function.is_empty() {
        request = request.message_attributes("function", attr(function)?);
    }
    request.send().await.map_err(|e| crate::sdk_error::describe(&e))?;
    Ok(())
}

/// SNS subjects: printable ASCII, no line breaks, "less than 100 characters" (API reference,
/// Publish: "Subject").
fn subject(function: &str, event: &str) -> String {
    format!("auto-lambda: {function} {event}")
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
        .take(99)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_fit_sns() {
        assert_eq!(subject("orders", "deployed"), "auto-lambda: orders deployed");
        let long = subject(&"f".repeat(200), "rolled-back");
        assert_eq!(long.len(), 99);
        assert_eq!(subject("é\n", "failed"), "auto-lambda: __ failed");
    }
}
