//! The uploader's command through the real binaries: `auto-lambda` against moto, with the real
//! `auto-lambda-worker` deploying what it pushes, builds in the local images.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use auto_lambda_testkit::*;
use serde_json::Value;

fn cli_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_auto-lambda"))
}

/// The worker binary, built beside this one by `cargo build --bins` / `cargo nextest run
/// --workspace`.
fn worker_path() -> PathBuf {
    let path = cli_path().with_file_name("auto-lambda-worker");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --bins` first",
        path.display()
    );
    path
}

/// A running worker, killed on drop; builds reach PyPI (bridge network, the host's CA bundle).
struct Worker {
    child: Child,
    _cache: tempfile::TempDir,
}

impl Worker {
    fn start(stack: &Stack) -> Worker {
        let cache = tempfile::tempdir().unwrap();
        let mut cmd = worker_command(&worker_path(), stack);
        cmd.args(["--wait-time-secs", "1", "--build-network", "bridge", "--cache-dir"])
            .arg(cache.path());
        let ca = "/etc/ssl/certs/ca-certificates.crt";
        if Path::new(ca).is_file() {
            cmd.args(["--build-ca-bundle", ca]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        Worker { child, _cache: cache }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `auto-lambda ARGS` against moto.
fn cli(stack: &Stack, args: &[&str]) -> Output {
    Command::new(cli_path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AUTO_LAMBDA_BUCKET", &stack.bucket)
        .env("AUTO_LAMBDA_DEFAULT_PYTHON_RUNTIME", "python3.13")
        .env("AUTO_LAMBDA_DEFAULT_NODE_RUNTIME", "nodejs20.x")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn example(name: &str) -> String {
    repo_root().join("examples").join(name).display().to_string()
}

async fn uploads(stack: &Stack) -> usize {
    let sdk = sdk_config(&stack.endpoint).await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let out = s3
        .list_objects_v2()
        .bucket(&stack.bucket)
        .prefix("apps/")
        .send()
        .await
        .unwrap();
    out.contents().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_wait_deploys_every_example_and_a_repush_is_unchanged() {
    let moto = Moto::start();
    let stack = moto.bootstrap("cliexamples", false);
    let _worker = Worker::start(&stack);
    let examples: Vec<String> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(examples.len() >= 7, "{examples:?}");
    for name in &examples {
        let out = cli(&stack, &["push", "--wait", "--timeout", "300", &example(name)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        assert!(stdout.contains("outcome    deployed"), "{name}: {}", text(&out));
        assert!(stdout.contains("version    1"), "{name}: {}", text(&out));
    }
    // The same directory again: the same bytes, so the worker says unchanged.
    let out = cli(&stack, &["push", "--wait", &example("python-hello")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("outcome    unchanged"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_caught_before_anything_is_uploaded() {
    let moto = Moto::start();
    let stack = moto.bootstrap("clicheck", false);
    let app = tempfile::Builder::new().prefix("app").tempdir().unwrap();
    std::fs::write(app.path().join("app.py"), "def handler(e, c):\n    return 1\n").unwrap();
    std::fs::write(app.path().join("lambda.toml"), "memroy = 512\n").unwrap();
    let dir = app.path().display().to_string();
    for args in [vec!["check", dir.as_str()], vec!["push", "--wait", dir.as_str()]] {
        let out = cli(&stack, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("memroy"),
            "{}",
            text(&out)
        );
    }
    // The folder zipped instead of its contents, and a macOS binary: refused the same way.
    let nested = tempfile::Builder::new().prefix("nested").tempdir().unwrap();
    std::fs::create_dir(nested.path().join("orders-api")).unwrap();
    std::fs::write(nested.path().join("orders-api/app.py"), "").unwrap();
    let out = cli(&stack, &["push", &nested.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("orders-api"),
        "{}",
        text(&out)
    );
    let macho = tempfile::Builder::new().prefix("macho").tempdir().unwrap();
    std::fs::write(macho.path().join("app.py"), "def handler(e, c):\n    return 1\n").unwrap();
    std::fs::write(
        macho.path().join("_speedups.abi3.so"),
        [0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1],
    )
    .unwrap();
    let out = cli(&stack, &["push", &macho.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Mach-O"),
        "{}",
        text(&out)
    );
    assert_eq!(uploads(&stack).await, 0, "nothing was written to the bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_package_exits_failed_with_the_workers_error() {
    let moto = Moto::start();
    let stack = moto.bootstrap("clifail", false);
    let _worker = Worker::start(&stack);
    let app = tempfile::Builder::new().prefix("app").tempdir().unwrap();
    std::fs::write(app.path().join("app.py"), "def handler(e, c):\n    return 1\n").unwrap();
    std::fs::write(app.path().join("lambda.toml"), "handler = \"app.hander\"\n").unwrap();
    let out = cli(&stack, &["push", "--wait", &app.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("outcome    failed (permanent)"), "{}", text(&out));
    assert!(
        stdout.contains("has no `hander`"),
        "the worker's error is printed: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_carries_the_report_and_status_reads_it_back() {
    let moto = Moto::start();
    let stack = moto.bootstrap("clijson", false);
    let _worker = Worker::start(&stack);
    let out = cli(&stack, &["check", "--json", &example("python-hello")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let local: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(local["function"]["name"], "python-hello");
    assert_eq!(local["function"]["runtime"], "python3.13");

    let out = cli(&stack, &["push", "--wait", "--json", &example("python-hello")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["function_name"], "python-hello");
    assert_eq!(report["version"], "1");
    assert_eq!(report["checks"]["handler"], "app.handler callable");
    assert!(report["timings_ms"]["verify"].is_u64());
    let client = &report["client"];
    eprintln!(
        "push --wait of examples/python-hello: local {} ms, upload {} ms, waiting for the worker {} ms",
        client["local_ms"], client["upload_ms"], client["wait_ms"]
    );

    let out = cli(&stack, &["status", "--json", "apps/python-hello.zip"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["code_sha256"], report["code_sha256"]);
    let out = cli(&stack, &["status", "apps/never-uploaded.zip"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));

    // Pushed without --wait, then followed with `status --watch` until its report is final.
    let out = cli(&stack, &["push", "--key", "apps/watched.zip", &example("node-hello")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("uploaded   s3://"),
        "{}",
        text(&out)
    );
    let out = cli(&stack, &["status", "--watch", "--timeout", "120", "apps/watched.zip"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("outcome    deployed") && stdout.contains("function   watched"),
        "{}",
        text(&out)
    );

    // Pushed again, changed: --watch waits for this upload's report, not the last one's.
    let changed = tempfile::Builder::new().prefix("watched").tempdir().unwrap();
    std::fs::write(
        changed.path().join("index.mjs"),
        "export const handler = async () => 'v2';\n",
    )
    .unwrap();
    std::fs::write(changed.path().join("lambda.toml"), "runtime = \"nodejs20.x\"\n").unwrap();
    let dir = changed.path().display().to_string();
    let out = cli(&stack, &["push", "--key", "apps/watched.zip", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cli(
        &stack,
        &["status", "--watch", "--json", "--timeout", "120", "apps/watched.zip"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(second["version"], "2", "the new upload's report: {second:#}");
}
