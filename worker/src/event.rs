//! Parsing queue messages into the uploads they announce.
//!
//! A message body may be an S3 notification sent straight to SQS, the same notification
//! wrapped in an SNS envelope (S3 → SNS → SQS fan-out), or an EventBridge "Object Created"
//! event. One message can announce several objects. S3's test event and non-create events
//! announce nothing and are ignored with a reason.

use serde::Deserialize;
use serde_json::Value;

/// One object that an event says was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The key, fully decoded (`+` is a space, `%XX` are UTF-8 bytes).
    pub key: String,
    pub size: Option<u64>,
    /// The object's ETag, without quotes.
    pub etag: Option<String>,
    /// Present only when the bucket is versioned.
    pub version_id: Option<String>,
    /// S3's per-key ordering token: a hex string, compared after left-padding to one length.
    pub sequencer: Option<String>,
    /// When S3 says the object was created (RFC 3339), if the event says.
    pub event_time: Option<String>,
}

/// What a message announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Objects to deploy, in the order the message lists them.
    Created(Vec<ObjectCreated>),
    /// Nothing to do; the reason is logged.
    Ignored(String),
    /// The next step of a gradual deploy, sent by a worker to the jobs queue.
    ShiftStep(Box<crate::traffic::Step>),
}

/// Why a message body is not a notification we understand. Always permanent.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the message body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the message is JSON but not an S3, SNS or EventBridge notification ({0})")]
    NotAnEvent(String),
    #[error("the object key `{0}` is not valid percent-encoded UTF-8")]
    BadKey(String),
    #[error("the message is marked as a shift step but is not one: {0}")]
    BadStep(#[source] serde_json::Error),
}

/// Parses a message body.
pub fn parse(body: &str) -> Result<Notification, EventError> {
    let value: Value = serde_json::from_str(body).map_err(EventError::NotJson)?;
    parse_value(&value)
}

fn parse_value(value: &Value) -> Result<Notification, EventError> {
    // SNS envelope: the notification is a JSON string in `Message`.
    if value.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = value
            .get("Message")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::NotAnEvent("SNS envelope without a Message".into()))?;
        let inner: Value = serde_json::from_str(inner).map_err(EventError::NotJson)?;
        return parse_value(&inner);
    }
    if let Some(step) = value.get(crate::traffic::STEP_KEY) {
        let step = serde_json::from_value(step.clone()).map_err(EventError::BadStep)?;
        return Ok(Notification::ShiftStep(Box::new(step)));
    }
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::Ignored(
            "s3:TestEvent sent when the notification was set up".into(),
        ));
    }
    if value.get("Records").is_some() {
        return parse_records(value);
    }
    if value.get("detail-type").is_some() && value.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return parse_eventbridge(value);
    }
    Err(EventError::NotAnEvent(
        "no `Records`, SNS `Message` or EventBridge `detail`".into(),
    ))
}

#[derive(Deserialize)]
struct Records {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventSource", default)]
    event_source: Option<String>,
    #[serde(rename = "eventName")]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: Option<String>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: BucketEntity,
    object: ObjectEntity,
}

#[derive(Deserialize)]
struct BucketEntity {
    name: String,
}

#[derive(Deserialize)]
struct ObjectEntity {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "eTag", default)]
    etag: Option<String>,
    #[serde(rename = "versionId", default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

fn parse_records(value: &Value) -> Result<Notification, EventError> {
    let records: Records = serde_json::from_value(value.clone())
        .map_err(|e| EventError::NotAnEvent(format!("malformed S3 record: {e}")))?;
    let mut created = Vec::new();
    let mut skipped = Vec::new();
    for record in records.records {
        let from_s3 = record.event_source.as_deref().is_none_or(|s| s == "aws:s3");
        if !from_s3 || !record.event_name.starts_with("ObjectCreated:") {
            skipped.push(record.event_name);
            continue;
        }
        let object = record.s3.object;
        created.push(ObjectCreated {
            bucket: record.s3.bucket.name,
            key: decode_key(&object.key)?,
            size: object.size,
            etag: object.etag.map(unquote).filter(|e| !e.is_empty()),
            version_id: object.version_id.filter(|v| !v.is_empty() && v != "null"),
            sequencer: object.sequencer.filter(|s| !s.is_empty()),
            event_time: record.event_time,
        });
    }
    if created.is_empty() {
        return Ok(Notification::Ignored(format!(
            "no ObjectCreated record (saw: {})",
            skipped.join(", ")
        )));
    }
    Ok(Notification::Created(created))
}

#[derive(Deserialize)]
struct EventBridgeDetail {
    bucket: BucketEntity,
    object: EventBridgeObject,
}

#[derive(Deserialize)]
struct EventBridgeObject {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(rename = "version-id", default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

fn parse_eventbridge(value: &Value) -> Result<Notification, EventError> {
    let detail_type = value.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    if detail_type != "Object Created" {
        return Ok(Notification::Ignored(format!(
            "EventBridge `{detail_type}` is not an object creation"
        )));
    }
    let detail: EventBridgeDetail = value
        .get("detail")
        .cloned()
        .ok_or_else(|| EventError::NotAnEvent("EventBridge event without `detail`".into()))
        .and_then(|d| {
            serde_json::from_value(d).map_err(|e| EventError::NotAnEvent(format!("malformed EventBridge detail: {e}")))
        })?;
    let object = detail.object;
    // EventBridge sends keys as they are, not form-encoded.
    Ok(Notification::Created(vec![ObjectCreated {
        bucket: detail.bucket.name,
        key: object.key,
        size: object.size,
        etag: object.etag.map(unquote).filter(|e| !e.is_empty()),
        version_id: object.version_id.filter(|v| !v.is_empty() && v != "null"),
        sequencer: object.sequencer.filter(|s| !s.is_empty()),
        event_time: value.get("time").and_then(Value::as_str).map(str::to_owned),
    }]))
}

/// S3 notifications form-encode keys: `+` is a space and `%XX` a byte of UTF-8.
fn decode_key(raw: &str) -> Result<String, EventError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| EventError::BadKey(raw.to_owned()))
}

fn unquote(etag: String) -> String {
    etag.trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_body(key: &str, name: &str) -> String {
        serde_json::json!({"Records": [{
            "eventSource": "aws:s3", "eventName": name, "eventTime": "2026-11-23T07:00:00.000Z",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 10, "eTag": "abc", "sequencer": "0055AED6DCD90281E5"}}
        }]})
        .to_string()
    }

    fn only(n: Notification) -> ObjectCreated {
        match n {
            Notification::Created(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("expected one object, got {other:?}"),
        }
    }

    #[test]
    fn decodes_form_encoded_keys() {
        let o = only(parse(&s3_body("apps%2Fmy+app%2B1%25+%C3%A9t%C3%A9.zip", "ObjectCreated:Put")).unwrap());
        assert_eq!(o.key, "apps/my app+1% été.zip");
        assert_eq!(o.etag.as_deref(), Some("abc"));
        assert_eq!(o.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
    }

    #[test]
    fn rejects_invalid_utf8_key() {
        assert!(matches!(
            parse(&s3_body("apps/%FF.zip", "ObjectCreated:Put")),
            Err(EventError::BadKey(_))
        ));
    }

    #[test]
    fn ignores_test_event_and_deletes() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"x","Bucket":"b"}"#;
        assert!(matches!(parse(test).unwrap(), Notification::Ignored(_)));
        assert!(matches!(
            parse(&s3_body("apps/a.zip", "ObjectRemoved:Delete")).unwrap(),
            Notification::Ignored(_)
        ));
    }

    #[test]
    fn unwraps_sns_envelope() {
        let body = serde_json::json!({"Type": "Notification", "Message": s3_body("apps/a.zip", "ObjectCreated:Put")})
            .to_string();
        assert_eq!(only(parse(&body).unwrap()).key, "apps/a.zip");
    }

    #[test]
    fn reads_eventbridge_form() {
        let body = serde_json::json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3", "time": "2026-11-23T07:00:00Z",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "apps/my app.zip", "size": 5, "etag": "e", "version-id": "v1", "sequencer": "01"}}
        })
        .to_string();
        let o = only(parse(&body).unwrap());
        assert_eq!(o.key, "apps/my app.zip");
        assert_eq!(o.version_id.as_deref(), Some("v1"));
    }

    #[test]
    fn several_records_in_one_message() {
        let body = serde_json::json!({"Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "apps/a.zip"}}},
            {"eventName": "ObjectCreated:CompleteMultipartUpload", "s3": {"bucket": {"name": "b"}, "object": {"key": "apps/b.zip"}}}
        ]})
        .to_string();
        match parse(&body).unwrap() {
            Notification::Created(v) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_events_are_errors() {
        assert!(matches!(parse("not json"), Err(EventError::NotJson(_))));
        assert!(matches!(parse(r#"{"hello": 1}"#), Err(EventError::NotAnEvent(_))));
        assert!(matches!(
            parse(r#"{"Records": [{"x": 1}]}"#),
            Err(EventError::NotAnEvent(_))
        ));
    }
}

/// Property tests: the parser never panics, whatever the bytes, and decodes any key S3 can
/// encode back to itself. Run longer with PROPTEST_CASES=100000.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Encodes a key the way S3 notifications do: form encoding, `+` for space.
    fn s3_encode(key: &str) -> String {
        let mut out = String::new();
        for b in key.bytes() {
            match b {
                b' ' => out.push('+'),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(2000)))]

        #[test]
        fn never_panics_on_any_text(body in ".{0,400}") {
            let _ = parse(&body);
        }

        #[test]
        fn never_panics_on_json_shaped_input(
            records in proptest::collection::vec((".{0,20}", ".{0,40}", proptest::option::of(any::<i64>())), 0..4),
            sns in any::<bool>(),
        ) {
            let recs: Vec<serde_json::Value> = records
                .iter()
                .map(|(name, key, size)| serde_json::json!({"eventName": name, "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": size}}}))
                .collect();
            let mut body = serde_json::json!({ "Records": recs }).to_string();
            if sns {
                body = serde_json::json!({"Type": "Notification", "Message": body}).to_string();
            }
            let _ = parse(&body);
        }

        #[test]
        fn keys_round_trip(key in "\\PC{1,60}") {
            let body = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": s3_encode(&key)}}}]}).to_string();
            match parse(&body).unwrap() {
                Notification::Created(objects) => prop_assert_eq!(&objects[0].key, &key),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
