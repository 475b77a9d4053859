//! The real `queue-metric-publisher` binary against moto: what it publishes is what the queue
//! and the worker group held at each tick.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::Duration;

use auto_lambda_testkit::*;

fn publisher(stack: &Stack) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_queue-metric-publisher"));
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("QMP_QUEUE_URL", &stack.queue_url)
        .stdin(Stdio::null());
    cmd
}

/// Empties the queue (S3's test event), sends `messages` and takes `in_flight` of them,
/// hidden for 5 minutes.
async fn queue_holds(sqs: &aws_sdk_sqs::Client, queue_url: &str, messages: usize, in_flight: i32) {
    sqs.purge_queue().queue_url(queue_url).send().await.unwrap();
    for i in 0..messages {
        sqs.send_message()
            .queue_url(queue_url)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    let taken = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(in_flight)
        .visibility_timeout(300)
        .send()
        .await
        .unwrap();
    assert_eq!(taken.messages().len(), in_flight as usize);
}

/// The Maximum of each 1-second data point of one metric in the last five minutes.
async fn datapoints(cw: &aws_sdk_cloudwatch::Client, metric: &str, dims: &[(&str, &str)]) -> Vec<f64> {
    use aws_sdk_cloudwatch::types::Statistic;
    let points = metric_datapoints(cw, metric, dims, Duration::from_secs(300), 1, Statistic::Maximum).await;
    points.iter().filter_map(|d| d.maximum()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_figures_match_the_queue_and_group() {
    let moto = Moto::start();
    let stack = moto.bootstrap_with("qmp", false, Some(2));
    let cfg = sdk_config(&stack.endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);

    // 4 visible, 3 in flight.
    queue_holds(&sqs, &stack.queue_url, 7, 3).await;

    let asg = stack.asg_name.clone().unwrap();
    let metrics_port = free_port();
    let mut child = KillOnDrop(
        publisher(&stack)
            .args([
                "--period-secs",
                "1",
                "--asg-name",
                &asg,
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(30), "three ticks published", || async {
        let text = http_get(metrics_port, "/metrics").await;
        text.lines().any(|l| {
            l.starts_with("qmp_ticks_total")
                && l.split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
                    >= 4.0
        })
    })
    .await;
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM stops it cleanly");

    let queue = stack.queue_url.rsplit('/').next().unwrap().to_owned();
    let visible = datapoints(&cw, "Visible", &[("QueueName", &queue)]).await;
    let in_flight = datapoints(&cw, "NotVisible", &[("QueueName", &queue)]).await;
    let group_dims = [("QueueName", queue.as_str()), ("AutoScalingGroupName", asg.as_str())];
    let per_instance = datapoints(&cw, "BacklogPerInstance", &group_dims).await;
    let work = datapoints(&cw, "WorkPerInstance", &group_dims).await;
    assert!(visible.len() >= 2, "a data point per tick: {visible:?}");
    assert!(
        visible.iter().all(|v| *v == 4.0),
        "4 visible at every tick: {visible:?}"
    );
    assert!(
        in_flight.iter().all(|v| *v == 3.0),
        "3 in flight at every tick: {in_flight:?}"
    );
    assert_eq!(per_instance.len(), visible.len());
    assert!(
        per_instance.iter().all(|v| *v == 2.0),
        "4 visible / 2 InService: {per_instance:?}"
    );
    assert_eq!(work.len(), visible.len());
    assert!(
        work.iter().all(|v| *v == 3.5),
        "(4 visible + 3 in flight) / 2 InService: {work:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_fleet_with_work_in_hand_counts_as_one_instance() {
    // Between jobs of a trickle the group can be at zero while a message is still hidden
    // (being retried after a failed attempt, or held by an instance that is terminating):
    // that work must still read as work, or target tracking keeps the fleet at zero.
    let moto = Moto::start();
    let stack = moto.bootstrap_with("empty", false, Some(0));
    let cfg = sdk_config(&stack.endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);
    queue_holds(&sqs, &stack.queue_url, 3, 3).await;

    let asg = stack.asg_name.clone().unwrap();
    let out = publisher(&stack).args(["--once", "--asg-name", &asg]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let queue = stack.queue_url.rsplit('/').next().unwrap().to_owned();
    let group_dims = [("QueueName", queue.as_str()), ("AutoScalingGroupName", asg.as_str())];
    let in_service = datapoints(&cw, "InServiceInstances", &[("AutoScalingGroupName", &asg)]).await;
    let work = datapoints(&cw, "WorkPerInstance", &group_dims).await;
    let backlog = datapoints(&cw, "BacklogPerInstance", &group_dims).await;
    assert_eq!(in_service, [0.0], "the group is empty");
    assert_eq!(work, [3.0], "3 in flight / max(0, 1)");
    assert_eq!(backlog, [0.0], "nothing visible");
}

#[test]
fn dry_run_once_prints_what_would_be_published() {
    let moto = Moto::start();
    let stack = moto.bootstrap("dry", false);
    let out = publisher(&stack).args(["--once", "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("AutoLambda Visible{QueueName=dry-jobs} "), "{stdout}");
    assert!(
        stdout.contains("AutoLambda NotVisible{QueueName=dry-jobs} 0"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("PerInstance"),
        "no group, no per-instance figure: {stdout}"
    );
}

#[test]
fn bad_config_exits_64_naming_the_setting() {
    let stack = Stack::unreachable("http://127.0.0.1:9");
    let out = publisher(&stack).args(["--period-secs", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--period-secs"));
    let out = publisher(&stack).env_remove("QMP_QUEUE_URL").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--queue-url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_running_through_an_outage() {
    // Nothing listens: every tick fails, the process keeps going and says so.
    let stack = Stack::unreachable(&format!("http://127.0.0.1:{}", free_port()));
    let metrics_port = free_port();
    let mut child = KillOnDrop(
        publisher(&stack)
            .args([
                "--period-secs",
                "1",
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(30), "failed ticks counted", || async {
        http_get(metrics_port, "/metrics")
            .await
            .lines()
            .any(|l| l.starts_with("qmp_sample_errors_total 2"))
    })
    .await;
    assert!(child.0.try_wait().unwrap().is_none(), "still running");
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}
