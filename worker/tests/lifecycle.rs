//! Crashes and shutdowns in the middle of a job, through the real binary: SIGKILL loses
//! nothing, SIGTERM finishes or hands back, and no build container outlives its job.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use futures_util::FutureExt;

use support::*;

const T: Duration = Duration::from_secs(120);

/// An app whose dependency build takes about `secs` seconds (its setup.py sleeps).
fn slow_app(secs: u32) -> Vec<(String, Vec<u8>)> {
    vec![
        ("app.py".into(), b"import slowpkg\ndef handler(e, c):\n    return slowpkg.VALUE\n".to_vec()),
        ("requirements.txt".into(), b"./vendor/slowpkg\n".to_vec()),
        (
            "vendor/slowpkg/setup.py".into(),
            format!("import time\ntime.sleep({secs})\nfrom setuptools import setup\nsetup(name='slowpkg', version='1.0', py_modules=['slowpkg'])\n").into_bytes(),
        ),
        ("vendor/slowpkg/slowpkg.py".into(), b"VALUE = 42\n".to_vec()),
    ]
}

fn args(cache: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--build-image",
        &format!("python3.13={}", test_build_image()),
        "--build-network",
        "none",
        "--concurrency",
        "1",
        "--visibility-timeout-secs",
        "6",
        "--cache-dir",
        &cache.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn refs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

async fn wait_for_build_container(worker: &Worker) {
    let pid = worker.child.id();
    eventually(T, "a build container to start", || async move {
        build_containers_left(pid) > 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_build_loses_nothing() {
    let moto = Moto::start();
    let stack = moto.bootstrap("kill", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let a = args(cache.path(), &[]);

    let mut first = Worker::spawn(&stack, &refs(&a));
    let id = aws.upload(&stack, "apps/slow.zip", zip_owned(&slow_app(4))).await;
    wait_for_build_container(&first).await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5));
    let dead_pid = first.child.id();
    assert!(
        build_containers_left(dead_pid) > 0,
        "SIGKILL leaves the build container behind"
    );

    // A second worker on the same host: it removes the orphan, and once the visibility timeout
    // runs out the message reappears and it finishes the job.
    let second = Worker::spawn(&stack, &refs(&a));
    let report = aws.wait_report(&stack, "apps/slow.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["attempt"], 2, "the job ran again after the crash");
    assert_eq!(build_containers_left(dead_pid), 0, "the orphan was reaped");
    eventually(T, "queue settled", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    assert_eq!(aws.versions("slow").await, ["1"], "deployed once");
    assert_eq!(build_containers_left(second.child.id()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_job_finish_within_grace() {
    let moto = Moto::start();
    let stack = moto.bootstrap("term", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let a = args(cache.path(), &["--shutdown-grace-secs", "60"]);

    let mut worker = Worker::spawn(&stack, &refs(&a));
    let id = aws.upload(&stack, "apps/graceful.zip", zip_owned(&slow_app(3))).await;
    wait_for_build_container(&worker).await;
    let signalled = std::time::Instant::now();
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(60)), Some(0), "{}", worker.log());
    let report = aws
        .wait_report(&stack, "apps/graceful.zip", &id, Duration::from_secs(5))
        .await;
    assert_eq!(report["outcome"], "deployed", "the job in hand finished: {report:#}");
    assert!(signalled.elapsed() < Duration::from_secs(60));
    assert_eq!(
        aws.queue_counts(&stack.queue_url).await,
        (0, 0),
        "its message was deleted"
    );
    assert_eq!(build_containers_left(worker.child.id()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_message_back_when_grace_runs_out() {
    let moto = Moto::start();
    let stack = moto.bootstrap("handback", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let a = args(
        cache.path(),
        &["--shutdown-grace-secs", "1", "--visibility-timeout-secs", "60"],
    );

    let mut worker = Worker::spawn(&stack, &refs(&a));
    let id = aws.upload(&stack, "apps/cutoff.zip", zip_owned(&slow_app(20))).await;
    wait_for_build_container(&worker).await;
    let signalled = std::time::Instant::now();
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(15)), Some(0), "{}", worker.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited soon after the grace period"
    );
    assert_eq!(
        build_containers_left(worker.child.id()),
        0,
        "the cut-off build's container was removed"
    );
    // Handed back: visible again at once, not after the 60 s visibility timeout.
    eventually(Duration::from_secs(5), "message visible again", || async {
        aws.queue_counts(&stack.queue_url).await == (1, 0)
    })
    .await;
    assert!(worker.log().contains("handing its message back"), "{}", worker.log());

    // Another worker takes it and finishes.
    let fast = args(cache.path(), &[]);
    let _next = Worker::spawn(&stack, &refs(&fast));
    let report = aws.wait_report(&stack, "apps/cutoff.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_is_protected_from_scale_in_while_busy() {
    let moto = Moto::start();
    let stack = moto.bootstrap_with("protect", false, 2);
    let aws = Aws::new(&stack.endpoint).await;
    let me = stack.instance_ids[0].clone();
    let imds = FakeImds::start(&me).await;
    let cache = tempfile::tempdir().unwrap();
    let a = args(cache.path(), &["--scale-in-protection", "on"]);
    let autoscaling = aws_sdk_autoscaling::Client::new(&aws.sdk);
    let protected = |id: String| {
        let autoscaling = autoscaling.clone();
        async move {
            let out = autoscaling
                .describe_auto_scaling_instances()
                .instance_ids(id)
                .send()
                .await
                .unwrap();
            out.auto_scaling_instances()[0]
                .protected_from_scale_in()
                .unwrap_or(false)
        }
    };
    assert!(!protected(me.clone()).await);

    let mut cmd = worker_command(&stack);
    let worker = Worker::spawn_with(cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint), &refs(&a));
    let id = aws.upload(&stack, "apps/busy.zip", zip_owned(&slow_app(3))).await;
    wait_for_build_container(&worker).await;
    assert!(protected(me.clone()).await, "protected while the job runs");
    assert!(!protected(stack.instance_ids[1].clone()).await, "only this instance");

    let report = aws.wait_report(&stack, "apps/busy.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    eventually(Duration::from_secs(10), "protection released when idle", || {
        protected(me.clone()).then(|p| async move { !p })
    })
    .await;
}
