//! The walking skeleton, end to end: an upload to moto's S3 becomes a deployed function,
//! through the real `auto-lambda-worker` binary.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::*;

const HELLO_V1: &[(&str, &[u8])] = &[
    ("app.py", b"def handler(event, context):\n    return {'v': 1}\n"),
    ("lib/util.py", b"X = 1\n"),
];
const HELLO_V2: &[(&str, &[u8])] = &[
    ("app.py", b"def handler(event, context):\n    return {'v': 2}\n"),
    ("lib/util.py", b"X = 1\n"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_deploys_then_changed_upload_updates() {
    let moto = Moto::start();
    let stack = moto.bootstrap("skel", false);
    let aws = Aws::new(&stack.endpoint).await;
    let mut worker = Worker::spawn(&stack, &[]);

    let key = "apps/hello-api.zip";
    let id = aws.upload(&stack, key, zip_of(HELLO_V1)).await;
    let report = aws.wait_report(&stack, key, &id, Duration::from_secs(30)).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["function_name"], "hello-api");
    let want = expected_sha(HELLO_V1);
    assert_eq!(report["code_sha256"], want.as_str());
    assert_eq!(
        aws.code_sha256("hello-api").await,
        want,
        "Lambda must run exactly the package the worker built"
    );

    let f = aws
        .lambda
        .get_function()
        .function_name("hello-api")
        .send()
        .await
        .unwrap();
    let cfg = f.configuration().unwrap();
    assert_eq!(
        cfg.runtime().unwrap().as_str(),
        "python3.13",
        "runtime detected from app.py"
    );
    assert_eq!(cfg.handler(), Some("app.handler"));
    assert_eq!(cfg.last_update_status().map(|s| s.as_str()), Some("Successful"));

    let id2 = aws.upload(&stack, key, zip_of(HELLO_V2)).await;
    let report = aws.wait_report(&stack, key, &id2, Duration::from_secs(30)).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    let want2 = expected_sha(HELLO_V2);
    assert_ne!(want, want2);
    assert_eq!(aws.code_sha256("hello-api").await, want2);
    assert_eq!(aws.versions("hello-api").await, ["1", "2"]);
    for stage in ["download", "unpack", "build", "package", "deploy"] {
        assert!(
            report["timings_ms"][stage].is_u64(),
            "timing for {stage} missing: {report:#}"
        );
    }

    // Every message was settled: nothing visible, nothing in flight.
    let counts = aws.queue_counts(&stack.queue_url).await;
    assert_eq!(counts, (0, 0));

    // On SIGTERM the worker flushes its deploy figures to CloudWatch for the dashboard.
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(30)), Some(0));
    let queue = stack.queue_url.rsplit('/').next().unwrap();
    assert_eq!(
        aws.cloudwatch_sum("Jobs", &[("QueueName", queue), ("Outcome", "deployed")])
            .await,
        2.0
    );
    assert!(
        aws.cloudwatch_sum("StageDuration", &[("QueueName", queue), ("Stage", "deploy")])
            .await
            > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_sets_name_runtime_and_alias() {
    let moto = Moto::start();
    let stack = moto.bootstrap("manifest", false);
    let aws = Aws::new(&stack.endpoint).await;
    let _worker = Worker::spawn(&stack, &["--function-prefix", "team-"]);

    let files: &[(&str, &[u8])] = &[
        ("lambda.toml", b"name = \"orders\"\nruntime = \"python3.11\"\nhandler = \"svc.main\"\nmemory = 512\ntimeout = 20\nalias = \"live\"\n[environment]\nSTAGE = \"test\"\n"),
        ("svc.py", b"def main(e, c):\n    return 1\n"),
    ];
    let key = "apps/whatever.zip";
    let id = aws.upload(&stack, key, zip_of(files)).await;
    let report = aws.wait_report(&stack, key, &id, Duration::from_secs(30)).await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["function_name"], "team-orders");

    let f = aws
        .lambda
        .get_function()
        .function_name("team-orders")
        .send()
        .await
        .unwrap();
    let cfg = f.configuration().unwrap();
    assert_eq!(cfg.runtime().unwrap().as_str(), "python3.11");
    assert_eq!(cfg.handler(), Some("svc.main"));
    assert_eq!(cfg.memory_size(), Some(512));
    assert_eq!(cfg.timeout(), Some(20));
    assert_eq!(cfg.environment().unwrap().variables().unwrap()["STAGE"], "test");
    let alias = aws
        .lambda
        .get_alias()
        .function_name("team-orders")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), report["version"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_over_50_mb_goes_through_s3_artifacts() {
    let moto = Moto::start();
    let stack = moto.bootstrap("big", false);
    let aws = Aws::new(&stack.endpoint).await;
    let _worker = Worker::spawn(&stack, &[]);

    // 56 MB that does not compress: the package stays above Lambda's 50 MB inline limit.
    let mut noise = vec![0u8; 56 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let files: Vec<(&str, &[u8])> = vec![("app.py", b"def handler(e, c):\n    return 1\n"), ("model.bin", &noise)];
    let id = aws.upload(&stack, "apps/big.zip", zip_of(&files)).await;
    let report = aws
        .wait_report(&stack, "apps/big.zip", &id, Duration::from_secs(120))
        .await;
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert!(report["package_bytes"].as_u64().unwrap() > 50 << 20);
    assert_eq!(aws.code_sha256("big").await, expected_sha(&files));
    let listed = aws
        .s3
        .list_objects_v2()
        .bucket(&stack.bucket)
        .prefix("artifacts/big/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1, "the package was staged under artifacts/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pure_example_deploys_as_it_is() {
    let moto = Moto::start();
    let stack = moto.bootstrap("examples", false);
    let aws = Aws::new(&stack.endpoint).await;
    let _worker = Worker::spawn(&stack, &[]);
    for (example, runtime) in [
        ("python-hello", "python3.13"),
        ("python-canary", "python3.13"),
        ("node-hello", "nodejs20.x"),
        ("provided-bootstrap", "provided.al2023"),
    ] {
        let files = dir_files(&repo_root().join("examples").join(example));
        let key = format!("apps/{example}.zip");
        let id = aws.upload(&stack, &key, zip_owned(&files)).await;
        let report = aws.wait_report(&stack, &key, &id, Duration::from_secs(30)).await;
        assert_eq!(report["outcome"], "deployed", "{example}: {report:#}");
        let f = aws.lambda.get_function().function_name(example).send().await.unwrap();
        assert_eq!(f.configuration().unwrap().runtime().unwrap().as_str(), runtime);
    }
}

#[test]
fn missing_queue_url_exits_64_naming_the_setting() {
    let stack = Stack::unreachable("http://127.0.0.1:9");
    let out = worker_command(&stack)
        .env_remove("AUTO_LAMBDA_QUEUE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--queue-url"), "{stderr}");

    let out = worker_command(&stack)
        .env("AUTO_LAMBDA_QUEUE_URL", "http://127.0.0.1:9/1/q")
        .env("AUTO_LAMBDA_WAIT_TIME_SECS", "99")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTO_LAMBDA_WAIT_TIME_SECS"));
}

#[test]
fn unreachable_endpoint_exits_75_naming_the_setting() {
    // Nothing listens there: it may yet (a network outage), so systemd should start it again.
    let port = free_port();
    let stack = Stack::unreachable(&format!("http://127.0.0.1:{port}"));
    let out = worker_command(&stack)
        .args(["--startup-timeout-secs", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--endpoint-url"), "{stderr}");
}

#[test]
fn docker_unreachable_at_start_up_exits_75_naming_it() {
    // The queue answers, the engine does not (docker.service still starting, or stopped): a
    // later start may succeed, so systemd should start the worker again.
    let moto = Moto::start();
    let stack = moto.bootstrap("nodocker", false);
    let out = worker_command(&stack)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["--startup-timeout-secs", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("cannot reach the Docker Engine"), "{stderr}");
}

#[test]
fn help_documents_every_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auto-lambda-worker"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--queue-url",
        "--role-arn",
        "--endpoint-url",
        "--concurrency",
        "--visibility-timeout-secs",
        "AUTO_LAMBDA_QUEUE_URL",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
