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
    let stack = moto.bootstrap_with("protect", false, Some(2));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_pool_instance_takes_work_only_while_in_service() {
    let moto = Moto::start();
    let stack = moto.bootstrap_with("warm", false, Some(1));
    let aws = Aws::new(&stack.endpoint).await;
    // S3's test event would be the one visible message the counts below see.
    aws.sqs.purge_queue().queue_url(&stack.queue_url).send().await.unwrap();
    let imds = FakeImds::start(&stack.instance_ids[0]).await;
    imds.set_lifecycle_state(Some("Warmed:Stopped"));
    let cache = tempfile::tempdir().unwrap();
    let a = args(
        cache.path(),
        &["--follow-lifecycle-state", "on", "--wait-time-secs", "1"],
    );
    let mut cmd = worker_command(&stack);
    let worker = Worker::spawn_with(cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint), &refs(&a));
    let hello = || zip_of(&[("app.py", b"def handler(e, c):\n    return 1\n")]);

    // Launched into the warm pool: it initialises, says so, and leaves the queue alone.
    eventually(T, "the worker to say it is in the warm pool", || async {
        worker.log().contains("in the warm pool")
    })
    .await;
    let id = aws.upload(&stack, "apps/warm.zip", hello()).await;
    eventually(T, "the upload's message to be queued", || async {
        aws.queue_counts(&stack.queue_url).await == (1, 0)
    })
    .await;
    // Two polls of the state and several receive rounds' worth of time: still untouched.
    tokio::time::sleep(auto_lambda_worker::lifecycle::POLL * 2).await;
    assert_eq!(aws.queue_counts(&stack.queue_url).await, (1, 0), "{}", worker.log());

    // Taken out of the pool: the queued upload deploys.
    imds.set_lifecycle_state(Some("InService"));
    let report = aws.wait_report(&stack, "apps/warm.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");

    // Scaled in back to the pool (reuse on scale-in): no new work from then on.
    imds.set_lifecycle_state(Some("Warmed:Stopped"));
    eventually(T, "the worker to stop taking work", || async {
        worker.log().matches("in the warm pool").count() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a receive already under way ends
    aws.upload(&stack, "apps/later.zip", hello()).await;
    eventually(T, "the later upload's message to be queued", || async {
        aws.queue_counts(&stack.queue_url).await == (1, 0)
    })
    .await;
    tokio::time::sleep(auto_lambda_worker::lifecycle::POLL).await;
    assert_eq!(aws.queue_counts(&stack.queue_url).await, (1, 0), "{}", worker.log());
}

/// A panic inside a job (injected with the `failpoints` feature, which `make test` builds
/// with) is a bug, but it must cost one attempt, not the worker or the message: it is logged,
/// counted, reported failed/transient, and the upload deploys on the next attempt.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_reported_counted_and_retried() {
    let moto = Moto::start();
    let stack = moto.bootstrap("panic", false);
    let aws = Aws::new(&stack.endpoint).await;
    let mut cmd = worker_command(&stack);
    cmd.env("FAILPOINTS", "job-stages=1*panic(injected by the test)");
    let worker = Worker::spawn_with(&mut cmd, &["--retry-base-secs", "2"]);
    let id = aws
        .upload(
            &stack,
            "apps/panics.zip",
            zip_of(&[("app.py", b"def handler(e, c):\n    return 1\n")]),
        )
        .await;

    let first = aws.wait_report_any(&stack, "apps/panics.zip", &id, T).await;
    assert_eq!(first["outcome"], "failed", "{first:#}");
    assert_eq!(first["error_class"], "transient", "{first:#}");
    assert_eq!(first["will_retry"], true, "{first:#}");
    assert!(
        first["error"].as_str().unwrap().contains("injected by the test"),
        "the panic's message is on record: {first:#}"
    );
    let report = aws.wait_report(&stack, "apps/panics.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["attempt"], 2, "{report:#}");
    assert_eq!(worker.metric("auto_lambda_job_panics_total").await, 1.0);
    eventually(T, "the in-flight gauge back to 0", || async {
        worker.metric("auto_lambda_jobs_in_flight").await == 0.0
    })
    .await;
    assert!(worker.log().contains("The job panicked"), "{}", worker.log());
    assert!(child_running(&worker), "the worker goes on");
}

#[cfg(feature = "failpoints")]
fn child_running(worker: &Worker) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &worker.child.id().to_string()])
        .status()
        .unwrap()
        .success()
}

/// A job that outlasts `--job-timeout-secs` is cancelled: its build container is removed, a
/// transient report names the stage that ran out of time, and the message comes back later
/// (hidden for the retry backoff, not lost and not deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_is_cancelled_reported_and_retried() {
    let moto = Moto::start();
    let stack = moto.bootstrap("deadline", false);
    let aws = Aws::new(&stack.endpoint).await;
    aws.sqs.purge_queue().queue_url(&stack.queue_url).send().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let a = args(cache.path(), &["--job-timeout-secs", "5", "--retry-base-secs", "60"]);
    let worker = Worker::spawn(&stack, &refs(&a));
    let started = std::time::Instant::now();
    let id = aws.upload(&stack, "apps/late.zip", zip_owned(&slow_app(120))).await;
    let report = aws.wait_report_any(&stack, "apps/late.zip", &id, T).await;
    let released = started.elapsed();
    assert_eq!(report["outcome"], "failed", "{report:#}");
    assert_eq!(report["error_class"], "transient", "{report:#}");
    assert_eq!(report["will_retry"], true, "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("ran out of time in its build stage"), "{error}");
    assert!(released < Duration::from_secs(60), "released after {released:?}");
    let pid = worker.child.id();
    eventually(T, "the build container removed", || async move {
        build_containers_left(pid) == 0
    })
    .await;
    // Hidden for the backoff (about 60 s), then it comes back: not deleted, not lost.
    assert_eq!(aws.queue_counts(&stack.queue_url).await, (0, 1));
    eprintln!("deadline: job released {} ms after the upload", released.as_millis());
}

/// What a Docker daemon restart does to a build in progress: the daemon stops its container
/// from outside (SIGTERM, then SIGKILL after 10 s; a build's PID 1 has no TERM handler, so the
/// KILL is what ends it, as `docker kill` does here). That is no fault of the upload: the job is reported transient and the build
/// runs again. (Restarting the daemon itself is not done here: it is shared with every other
/// test and with CI.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_container_killed_from_outside_is_retried_not_failed() {
    let moto = Moto::start();
    let stack = moto.bootstrap("killed", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let a = args(cache.path(), &["--retry-base-secs", "1"]);
    let worker = Worker::spawn(&stack, &refs(&a));
    let id = aws.upload(&stack, "apps/killed.zip", zip_owned(&slow_app(4))).await;
    let pid = worker.child.id();
    let mut ids = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while ids.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no build container started");
        tokio::time::sleep(Duration::from_millis(100)).await;
        ids = worker_containers(pid, "build", false).await.1;
    }
    let killed = std::process::Command::new("docker")
        .args(["kill"])
        .args(&ids)
        .output()
        .unwrap();
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    eventually(T, "the kill reported as transient", || async {
        worker.log().contains("killed from outside")
    })
    .await;
    let report = aws.wait_report(&stack, "apps/killed.zip", &id, T).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["attempt"], 2, "{report:#}");
}

/// A build that needs more memory than the container may have is the upload's problem, and the
/// report says so in words, with the limit and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_out_of_memory_is_reported_with_the_limit() {
    let moto = Moto::start();
    let stack = moto.bootstrap("oom", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let a = args(cache.path(), &["--build-memory-mb", "96"]);
    let _worker = Worker::spawn(&stack, &refs(&a));
    let files = vec![
        ("app.py".to_owned(), b"def handler(e, c):\n    return 1\n".to_vec()),
        ("requirements.txt".to_owned(), b"./vendor/hungry\n".to_vec()),
        (
            "vendor/hungry/setup.py".to_owned(),
            b"x = bytearray(512 * 1024 * 1024)\nfrom setuptools import setup\nsetup(name='hungry', version='1.0')\n"
                .to_vec(),
        ),
    ];
    let id = aws.upload(&stack, "apps/oom.zip", zip_owned(&files)).await;
    let report = aws.wait_report(&stack, "apps/oom.zip", &id, T).await;
    assert_eq!(report["outcome"], "failed", "{report:#}");
    assert_eq!(report["error_class"], "permanent", "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("ran out of memory") && error.contains("96 MiB"),
        "{error}"
    );
    assert!(error.contains("--build-memory-mb"), "{error}");
}

/// A launching instance goes on (into the warm pool, or into service) only once its worker is
/// ready: the worker completes the group's launch lifecycle hook after initialising. A wrong
/// hook name is refused by Auto Scaling and said in the log; the worker runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_worker_completes_the_launch_lifecycle_hook() {
    let moto = Moto::start();
    let stack = moto.bootstrap_with("ready", false, Some(1));
    let aws = Aws::new(&stack.endpoint).await;
    let autoscaling = aws_sdk_autoscaling::Client::new(&aws.sdk);
    autoscaling
        .put_lifecycle_hook()
        .auto_scaling_group_name(stack.asg_name.as_deref().unwrap())
        .lifecycle_hook_name("worker-ready")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
        .default_result("ABANDON")
        .send()
        .await
        .unwrap();
    let imds = FakeImds::start(&stack.instance_ids[0]).await;
    let cache = tempfile::tempdir().unwrap();
    for (hook, said) in [
        ("worker-ready", "Completed the launch lifecycle action"),
        ("no-such-hook", "Cannot complete the launch lifecycle action"),
    ] {
        let a = args(cache.path(), &["--launch-lifecycle-hook", hook]);
        let mut cmd = worker_command(&stack);
        let worker = Worker::spawn_with(cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint), &refs(&a));
        eventually(T, said, || async { worker.log().contains(said) }).await;
        if hook == "no-such-hook" {
            assert!(worker.log().contains("ValidationError"), "{}", worker.log());
        }
        eventually(T, "the worker started", || async {
            worker.log().contains("Worker started.")
        })
        .await;
    }
}
