//! Job semantics through the real binary against moto: duplicates, ordering, bad input,
//! retries into the dead-letter queue, and the operator's /metrics.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const T: Duration = Duration::from_secs(60);

fn app(version: u32) -> Vec<(String, Vec<u8>)> {
    vec![(
        "app.py".into(),
        format!("def handler(e, c):\n    return {version}\n").into_bytes(),
    )]
}

fn as_refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect()
}

/// Takes every message off the queue (the test plays the notification service), skipping
/// S3's test event. Returns their bodies in the order received.
async fn drain_bodies(aws: &Aws, queue_url: &str, want: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while bodies.len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {want} notifications arrived",
            bodies.len()
        );
        let out = aws
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            aws.sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            let body = m.body().unwrap().to_owned();
            if !body.contains("s3:TestEvent") {
                bodies.push(body);
            }
        }
    }
    bodies
}

async fn send(aws: &Aws, queue_url: &str, body: &str) {
    aws.sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

async fn queue_settled(aws: &Aws, queue_url: &str) -> bool {
    aws.queue_counts(queue_url).await == (0, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_event_deploys_once() {
    let moto = Moto::start();
    let stack = moto.bootstrap("dup", false);
    let aws = Aws::new(&stack.endpoint).await;
    let files = app(1);
    let id = aws.upload(&stack, "apps/dup.zip", zip_of(&as_refs(&files))).await;
    let body = drain_bodies(&aws, &stack.queue_url, 1).await.remove(0);
    for _ in 0..5 {
        send(&aws, &stack.queue_url, &body).await;
    }

    let worker = Worker::spawn(&stack, &["--concurrency", "4"]);
    eventually(T, "queue drained", || queue_settled(&aws, &stack.queue_url)).await;
    eventually(T, "five outcomes counted", || async {
        worker.outcomes(&["deployed", "unchanged", "stale-skipped"]).await == 5.0
    })
    .await;
    // Every delivery finds this upload in place (or puts it there): each says "deployed", and
    // the one deploy is the one version.
    assert_eq!(worker.metric("auto_lambda_jobs_total{outcome=\"deployed\"}").await, 5.0);
    assert_eq!(aws.versions("dup").await, ["1"], "one version published");
    assert_eq!(aws.code_sha256("dup").await, expected_sha(&as_refs(&files)));
    let report = aws.wait_report(&stack, "apps/dup.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["version"], "1", "{report:#}");

    // The same bytes uploaded again are a new upload with nothing to change. (The bucket is
    // unversioned, so its report replaces the first one at the same ETag key.)
    let again = aws.upload(&stack, "apps/dup.zip", zip_of(&as_refs(&files))).await;
    eventually(T, "re-upload reported", || async {
        aws.wait_report(&stack, "apps/dup.zip", &again, T).await["outcome"] == "unchanged"
    })
    .await;
    let report = aws.wait_report(&stack, "apps/dup.zip", &again, T).await;
    assert_eq!(report["outcome"], "unchanged", "{report:#}");
    assert_eq!(report["version"], "1", "{report:#}");
    assert_eq!(aws.versions("dup").await, ["1"], "still one version");
    assert_eq!(worker.metric("auto_lambda_jobs_in_flight").await, 0.0);
}

/// The execution role is part of what a function must match: a function whose role is not the
/// worker's `--role-arn` (changed by hand, or the flag changed) is not "unchanged". It gets
/// the role back through UpdateFunctionConfiguration alone; its code is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_role_is_put_back_without_resending_the_code() {
    let moto = Moto::start();
    let stack = moto.bootstrap("drift", false);
    let other_role = moto.bootstrap("drift-b", false).role_arn;
    let aws = Aws::new(&stack.endpoint).await;
    let files = app(1);
    let id = aws.upload(&stack, "apps/drift.zip", zip_of(&as_refs(&files))).await;
    // The test plays the notification service, so that the second delivery is of the very
    // same upload: only the function's role differs.
    let body = drain_bodies(&aws, &stack.queue_url, 1).await.remove(0);
    let worker = Worker::spawn(&stack, &[]);
    send(&aws, &stack.queue_url, &body).await;
    let first = aws.wait_report(&stack, "apps/drift.zip", &id, T).await;
    assert_eq!(first["outcome"], "deployed", "{first:#}");
    let role = || async {
        let cfg = aws
            .lambda
            .get_function_configuration()
            .function_name("drift")
            .send()
            .await
            .unwrap();
        cfg.role().unwrap_or_default().to_owned()
    };
    assert_eq!(role().await, stack.role_arn);

    aws.lambda
        .update_function_configuration()
        .function_name("drift")
        .role(&other_role)
        .send()
        .await
        .unwrap();
    assert_eq!(role().await, other_role);
    send(&aws, &stack.queue_url, &body).await;
    let deadline = std::time::Instant::now() + T;
    let report = loop {
        let report = aws.wait_report(&stack, "apps/drift.zip", &id, T).await;
        if report["message_id"] != first["message_id"] {
            break report;
        }
        assert!(std::time::Instant::now() < deadline, "no report of the second delivery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(role().await, stack.role_arn, "the worker's role is back");
    assert_eq!(aws.code_sha256("drift").await, expected_sha(&as_refs(&files)));
    let log = worker.log();
    assert_eq!(
        log.matches("Updating the function's configuration.").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("Updating the function's code."),
        "the code had not changed and is not sent again: {log}"
    );
    assert_eq!(
        aws.versions("drift").await,
        ["1", "2"],
        "a version for the new configuration"
    );
}

/// A worker that changed the function but stopped (or lost Lambda's reply) before publishing
/// leaves `$LATEST` running the upload with no version. The redelivered message finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_stopped_before_publishing_is_finished() {
    let moto = Moto::start();
    let stack = moto.bootstrap("half", false);
    let aws = Aws::new(&stack.endpoint).await;
    let files = app(1);
    let id = aws.upload(&stack, "apps/half.zip", zip_of(&as_refs(&files))).await;
    let body = drain_bodies(&aws, &stack.queue_url, 1).await.remove(0);
    send(&aws, &stack.queue_url, &body).await;
    let worker = Worker::spawn(&stack, &[]);
    assert_eq!(aws.wait_report(&stack, "apps/half.zip", &id, T).await["version"], "1");

    // Take the version away: the function is now as an attempt that stopped before publishing
    // left it.
    aws.lambda
        .delete_function()
        .function_name("half")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert!(aws.versions("half").await.is_empty());
    send(&aws, &stack.queue_url, &body).await;
    eventually(T, "redelivery worked", || async {
        worker.metric("auto_lambda_jobs_total{outcome=\"deployed\"}").await == 2.0
    })
    .await;
    assert_eq!(aws.versions("half").await, ["1"], "the version is published again");
    let report = aws.wait_report(&stack, "apps/half.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["version"], "1", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_out_of_order_end_at_newest() {
    let moto = Moto::start();
    let stack = moto.bootstrap("order", true);
    let aws = Aws::new(&stack.endpoint).await;
    let key = "apps/ordered.zip";
    let mut ids = Vec::new();
    let mut aws_etags = Vec::new();
    for v in 1..=3 {
        let out = aws
            .s3
            .put_object()
            .bucket(&stack.bucket)
            .key(key)
            .body(zip_of(&as_refs(&app(v))).into())
            .send()
            .await
            .unwrap();
        ids.push(out.version_id().unwrap().to_owned());
        aws_etags.push(out.e_tag().unwrap().trim_matches('"').to_owned());
        tokio::time::sleep(Duration::from_millis(5)).await; // distinct event times (moto sends no sequencer)
    }
    let bodies = drain_bodies(&aws, &stack.queue_url, 3).await;
    // moto leaves versionId out of its events; S3 puts it in. Add it as S3 would, so the worker
    // fetches each exact version and the function's ordering tag is what decides.
    let body_of = |id: &str| with_version_id(&bodies, &aws_etags[ids.iter().position(|i| i == id).unwrap()], id);
    // Deliver v3, then v1, then v2, to one worker working one job at a time.
    let worker = Worker::spawn(&stack, &["--concurrency", "1"]);
    for i in [2, 0, 1] {
        send(&aws, &stack.queue_url, &body_of(&ids[i])).await;
        aws.wait_report(&stack, key, &ids[i], T).await;
    }
    let r: Vec<Value> = futures_reports(&aws, &stack, key, &ids).await;
    assert_eq!(r[2]["outcome"], "deployed", "{:#}", r[2]);
    assert_eq!(r[0]["outcome"], "stale-skipped", "{:#}", r[0]);
    assert_eq!(r[1]["outcome"], "stale-skipped", "{:#}", r[1]);
    assert!(
        r[0]["error"].as_str().unwrap().contains("newer upload"),
        "the report says why: {:#}",
        r[0]
    );
    assert_eq!(
        aws.code_sha256("ordered").await,
        expected_sha(&as_refs(&app(3))),
        "the function ends at v3"
    );
    assert_eq!(aws.versions("ordered").await, ["1"], "nothing deployed over v3");
    drop(worker);
}

/// The notification for the upload with `etag`, with `versionId` added to its record.
fn with_version_id(bodies: &[String], etag: &str, version_id: &str) -> String {
    let body = bodies
        .iter()
        .find(|b| b.contains(etag))
        .unwrap_or_else(|| panic!("no event for ETag {etag}"));
    let mut v: Value = serde_json::from_str(body).unwrap();
    v["Records"][0]["s3"]["object"]["versionId"] = Value::String(version_id.to_owned());
    v.to_string()
}

async fn futures_reports(aws: &Aws, stack: &Stack, key: &str, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        out.push(aws.wait_report(stack, key, id, T).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_and_messages_are_reported_once_and_worker_goes_on() {
    let moto = Moto::start();
    let stack = moto.bootstrap("bad", false);
    let aws = Aws::new(&stack.endpoint).await;
    let worker = Worker::spawn(&stack, &[]);

    let corrupt = aws
        .upload(
            &stack,
            "apps/corrupt.zip",
            b"PK\x03\x04 this is not really a zip".to_vec(),
        )
        .await;
    let manifest = aws
        .upload(
            &stack,
            "apps/badmanifest.zip",
            zip_of(&[("app.py", b"x = 1\n"), ("lambda.toml", b"memroy = 512\n")]),
        )
        .await;
    send(&aws, &stack.queue_url, "hello, I am not an event").await;

    let r = aws.wait_report(&stack, "apps/corrupt.zip", &corrupt, T).await;
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["error_class"], "permanent");
    assert!(r["error"].as_str().unwrap().contains("not a valid zip"), "{r:#}");
    let r = aws.wait_report(&stack, "apps/badmanifest.zip", &manifest, T).await;
    assert_eq!(r["outcome"], "failed");
    assert!(
        r["error"].as_str().unwrap().contains("memroy"),
        "the error names the key: {r:#}"
    );

    eventually(T, "queue drained", || queue_settled(&aws, &stack.queue_url)).await;
    eventually(T, "non-event counted", || async {
        worker.metric("auto_lambda_jobs_total{outcome=\"not-an-event\"}").await == 1.0
    })
    .await;
    assert_eq!(worker.metric("auto_lambda_jobs_total{outcome=\"failed\"}").await, 2.0);
    assert_eq!(
        aws.queue_counts(&stack.dlq_url).await,
        (0, 0),
        "permanent failures are not retried into the DLQ"
    );
    assert!(worker.log().contains("not an S3 event"), "the non-event is logged");

    // Still working: a good upload after all that deploys.
    let good = aws
        .upload(
            &stack,
            "apps/good.zip",
            zip_of(&[("app.py", b"def handler(e, c):\n    return 1\n")]),
        )
        .await;
    assert_eq!(
        aws.wait_report(&stack, "apps/good.zip", &good, T).await["outcome"],
        "deployed"
    );
    let health = http_get(worker.metrics_port, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
}
