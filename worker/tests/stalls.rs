//! Calls that never answer, through the real binary: a fault proxy (testkit) sits between the
//! worker and moto and stalls one kind of request. In every case the job ends within its
//! deadline, its outcome is on record or its message comes back, and nothing is deployed
//! twice. Each test prints how long the stalled call held the job.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use support::*;

const T: Duration = Duration::from_secs(120);

/// The deadline the tests give each job: long enough for a plain deploy on moto (about 1 s),
/// short enough that a stalled call is cut off quickly.
const JOB_TIMEOUT: &str = "8";

fn hello(version: u32) -> Vec<u8> {
    let code = format!("def handler(e, c):\n    return {version}\n");
    zip_of(&[("app.py", code.as_bytes())])
}

/// A worker whose every AWS call goes through `proxy`, with a short job deadline and quick
/// retries.
fn spawn(stack: &Stack, proxy: &FaultProxy, extra: &[&str]) -> Worker {
    let mut cmd = worker_command(stack);
    cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    let mut args = vec!["--job-timeout-secs", JOB_TIMEOUT, "--retry-base-secs", "1"];
    args.extend_from_slice(extra);
    Worker::spawn_with(&mut cmd, &args)
}

async fn setup(name: &str) -> (Moto, Stack, Aws, FaultProxy) {
    let moto = Moto::start();
    let stack = moto.bootstrap(name, false);
    let aws = Aws::new(&stack.endpoint).await;
    aws.sqs.purge_queue().queue_url(&stack.queue_url).send().await.unwrap();
    let proxy = FaultProxy::start(&stack.endpoint).await;
    (moto, stack, aws, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_download_is_cut_off_by_the_deadline_and_retried() {
    let (_moto, stack, aws, proxy) = setup("stall-get").await;
    proxy.add(
        Match::Path {
            method: "GET",
            fragment: "/apps/".into(),
        },
        Fault::Stall,
        Some(1),
    );
    let worker = spawn(&stack, &proxy, &[]);
    let started = Instant::now();
    let id = aws.upload(&stack, "apps/get.zip", hello(1)).await;
    let released = cut_off(&worker, started, "download").await;
    let report = aws.wait_report(&stack, "apps/get.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(aws.versions("get").await, ["1"]);
    assert_eq!(proxy.hits().len(), 1, "{:?}", proxy.hits());
    eventually(T, "the queue settled", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    drop(worker);
    eprintln!("stall GetObject: job released after {} ms", released.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_code_update_is_cut_off_and_the_upload_deploys_once() {
    let (_moto, stack, aws, proxy) = setup("stall-code").await;
    let worker = spawn(&stack, &proxy, &[]);
    let first = aws.upload(&stack, "apps/code.zip", hello(1)).await;
    let report = aws.wait_report(&stack, "apps/code.zip", &first, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");

    // UpdateFunctionCode is PUT /2015-03-31/functions/{name}/code.
    proxy.add(
        Match::Path {
            method: "PUT",
            fragment: "/code".into(),
        },
        Fault::Stall,
        Some(1),
    );
    let started = Instant::now();
    let second = aws.upload(&stack, "apps/code.zip", hello(2)).await;
    let released = cut_off(&worker, started, "deploy").await;
    let report = aws.wait_report(&stack, "apps/code.zip", &second, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(aws.versions("code").await, ["1", "2"], "one version per upload");
    assert_eq!(
        aws.code_sha256("code").await,
        expected_sha(&[("app.py", b"def handler(e, c):\n    return 2\n")])
    );
    drop(worker);
    eprintln!(
        "stall UpdateFunctionCode: job released after {} ms",
        released.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_delete_message_loses_nothing_and_deploys_once() {
    let (_moto, stack, aws, proxy) = setup("stall-delete").await;
    proxy.add(Match::Target("DeleteMessage"), Fault::Stall, Some(1));
    let worker = spawn(&stack, &proxy, &["--visibility-timeout-secs", "6"]);
    let started = Instant::now();
    let id = aws.upload(&stack, "apps/delete.zip", hello(1)).await;
    let report = aws.wait_report(&stack, "apps/delete.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    // The first DeleteMessage attempt is cut off by the SQS client's attempt timeout (30 s)
    // and retried; meanwhile the message may come back and be worked again, harmlessly.
    eventually(T, "the message deleted", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    let settled = started.elapsed();
    // The job whose DeleteMessage stalled lets go once the SQS client's attempt timeout ends
    // that attempt (its retry then settles or finds the message gone).
    eventually(T, "the stalled job released", || async {
        worker.metric("auto_lambda_jobs_in_flight").await == 0.0
    })
    .await;
    let released = started.elapsed();
    assert_eq!(aws.versions("delete").await, ["1"], "deployed once");
    eprintln!(
        "stall DeleteMessage: message settled after {} ms, stalled job released after {} ms",
        settled.as_millis(),
        released.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_status_report_keeps_the_message_until_it_is_on_record() {
    let (_moto, stack, aws, proxy) = setup("stall-report").await;
    proxy.add(
        Match::Path {
            method: "PUT",
            fragment: "/status/".into(),
        },
        Fault::Stall,
        Some(1),
    );
    let worker = spawn(&stack, &proxy, &[]);
    let started = Instant::now();
    let id = aws.upload(&stack, "apps/report.zip", hello(1)).await;
    let report = aws.wait_report(&stack, "apps/report.zip", &id, T).await;
    let released = started.elapsed();
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(
        report["attempt"], 2,
        "the first attempt's report never landed: {report:#}"
    );
    assert_eq!(aws.versions("report").await, ["1"], "deployed once");
    assert!(
        worker.log().contains("Cannot write the status report"),
        "{}",
        worker.log()
    );
    eventually(T, "the queue settled", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    eprintln!(
        "stall PutObject (report): outcome on record after {} ms",
        released.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_refuses_at_start_up_exits_75_then_starts_normally() {
    let (_moto, stack, aws, proxy) = setup("refuse").await;
    proxy.add(Match::Any, Fault::Refuse, None);
    let out = worker_command(&stack)
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .args(["--startup-timeout-secs", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));

    // The queue answers again: the next start (systemd's restart) works as usual.
    proxy.clear();
    let _worker = spawn(&stack, &proxy, &[]);
    let id = aws.upload(&stack, "apps/back.zip", hello(1)).await;
    let report = aws.wait_report(&stack, "apps/back.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
}

/// Waits until the worker says a job ran out of time in `stage`; returns the time since
/// `started`.
async fn cut_off(worker: &Worker, started: Instant, stage: &str) -> Duration {
    let needle = format!("ran out of time in its {stage} stage");
    eventually(T, "the job cut off by its deadline", || async {
        worker.log().contains(&needle)
    })
    .await;
    started.elapsed()
}
