//! Test harness: a moto server per test on a free loopback port, the pipeline's resources
//! created by the same bootstrap the demo uses, and the real `auto-lambda-worker` binary.
#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use auto_lambda_testkit::*;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

/// SDK clients pointed at moto.
pub struct Aws {
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Aws {
    pub async fn new(endpoint: &str) -> Aws {
        let sdk = sdk_config(endpoint).await;
        Aws {
            s3: aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build()),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            sdk,
        }
    }

    /// Uploads bytes; returns the id its status report is filed under (versionId or ETag).
    pub async fn upload(&self, stack: &Stack, key: &str, body: Vec<u8>) -> String {
        let out = self
            .s3
            .put_object()
            .bucket(&stack.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        out.version_id()
            .map(str::to_owned)
            .unwrap_or_else(|| out.e_tag().unwrap().trim_matches('"').to_owned())
    }

    /// Waits for a final status report (one that will not be retried).
    pub async fn wait_report(&self, stack: &Stack, key: &str, id: &str, timeout: Duration) -> Value {
        let report_key = format!("status/{key}/{id}.json");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(out) = self.s3.get_object().bucket(&stack.bucket).key(&report_key).send().await {
                let bytes = out.body.collect().await.unwrap().into_bytes();
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                if !v["will_retry"].as_bool().unwrap_or(false) {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no final report at {report_key} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The sum of a metric in namespace AutoLambda over the last ten minutes.
    pub async fn cloudwatch_sum(&self, metric: &str, dims: &[(&str, &str)]) -> f64 {
        use aws_sdk_cloudwatch::types::Statistic;
        let points = metric_datapoints(
            &self.cloudwatch,
            metric,
            dims,
            Duration::from_secs(600),
            60,
            Statistic::Sum,
        )
        .await;
        points.iter().filter_map(|d| d.sum()).sum()
    }

    /// The text of an object named by an `s3://bucket/key` URI (a report's `build_log`).
    pub async fn read_s3_uri(&self, uri: &str) -> String {
        let (bucket, key) = uri
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .unwrap_or_else(|| panic!("not an s3:// URI: {uri}"));
        let out = self.s3.get_object().bucket(bucket).key(key).send().await.unwrap();
        String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
    }

    /// Waits for any status report, final or not.
    pub async fn wait_report_any(&self, stack: &Stack, key: &str, id: &str, timeout: Duration) -> Value {
        let report_key = format!("status/{key}/{id}.json");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(out) = self.s3.get_object().bucket(&stack.bucket).key(&report_key).send().await {
                let bytes = out.body.collect().await.unwrap().into_bytes();
                return serde_json::from_slice(&bytes).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no report at {report_key} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn code_sha256(&self, function: &str) -> String {
        let f = self.lambda.get_function().function_name(function).send().await.unwrap();
        f.configuration().unwrap().code_sha256().unwrap().to_owned()
    }

    /// Published versions of a function (without $LATEST).
    pub async fn versions(&self, function: &str) -> Vec<String> {
        let out = self
            .lambda
            .list_versions_by_function()
            .function_name(function)
            .send()
            .await
            .unwrap();
        out.versions()
            .iter()
            .filter_map(|v| v.version())
            .filter(|v| *v != "$LATEST")
            .map(str::to_owned)
            .collect()
    }

    pub async fn queue_counts(&self, queue_url: &str) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let a = out.attributes().unwrap();
        let n = |k: A| a.get(&k).unwrap().parse::<u64>().unwrap();
        (
            n(A::ApproximateNumberOfMessages),
            n(A::ApproximateNumberOfMessagesNotVisible),
        )
    }
}

/// A zip of `(name, content)` pairs, written the way a user's zip tool would.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(content).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The CodeSha256 the worker must produce for these files: built independently in this process
/// with the library's packager, from the same tree.
pub fn expected_sha(files: &[(&str, &[u8])]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    auto_lambda_worker::package::build(dir.path(), &out.path().join("p.zip"))
        .unwrap()
        .code_sha256
}

/// The real worker binary, killed on drop. Its log goes to a file kept for failures.
pub struct Worker {
    pub child: Child,
    pub log: PathBuf,
    pub metrics_port: u16,
    _dir: tempfile::TempDir,
}

impl Worker {
    pub fn spawn(stack: &Stack, extra: &[&str]) -> Worker {
        Self::spawn_with(&mut worker_command(stack), extra)
    }

    /// Spawns the worker from a prepared command (see [`worker_command`]).
    pub fn spawn_with(cmd: &mut Command, extra: &[&str]) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("worker.log");
        let metrics_port = free_port();
        let child = cmd
            .args([
                "--wait-time-secs",
                "1",
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start auto-lambda-worker");
        Worker {
            child,
            log,
            metrics_port,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal by name (TERM, KILL) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit within {timeout:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The sum of `auto_lambda_jobs_total` over these outcomes.
    pub async fn outcomes(&self, outcomes: &[&str]) -> f64 {
        let mut sum = 0.0;
        for o in outcomes {
            sum += self.metric(&format!("auto_lambda_jobs_total{{outcome=\"{o}\"}}")).await;
        }
        sum
    }

    /// The value of one Prometheus series, e.g. `auto_lambda_jobs_total{outcome="deployed"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = http_get(self.metrics_port, "/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- worker log ---\n{}", self.log());
        }
    }
}

/// A worker that builds offline in the local python3.13 image, one job at a time, with its
/// dependency cache in `cache`, plus `extra` flags.
pub fn spawn_builder(stack: &Stack, cache: &Path, extra: &[&str]) -> Worker {
    let image = format!("python3.13={}", test_build_image());
    let cache = cache.display().to_string();
    let mut args = vec![
        "--build-image",
        &image,
        "--build-network",
        "none",
        "--concurrency",
        "1",
        "--cache-dir",
        &cache,
    ];
    args.extend_from_slice(extra);
    Worker::spawn(stack, &args)
}

/// The worker binary with moto's endpoint and fake credentials in its environment.
pub fn worker_command(stack: &Stack) -> Command {
    auto_lambda_testkit::worker_command(Path::new(env!("CARGO_BIN_EXE_auto-lambda-worker")), stack)
}

/// The local python3.13 build image, checked to be present.
pub fn test_build_image() -> String {
    local_image(PYTHON_IMAGE)
}

/// A local build image, checked to be present.
pub fn local_image(image: &str) -> String {
    let image = image.to_owned();
    let ok = Command::new("docker")
        .args(["image", "inspect", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "build image {image} is missing: run `make test` (or dev/build-image.sh all) first"
    );
    image
}

/// Build containers of the worker process `pid` still present (running or not), found by
/// the owner and role labels the worker puts on them.
pub fn build_containers_left(pid: u32) -> usize {
    containers_of(pid, "build")
}

/// Containers of the worker process `pid` with role `role` (`build` or `verifier`).
pub fn containers_of(pid: u32, role: &str) -> usize {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let owner = format!("label=auto-lambda.owner={}/{pid}", host.trim());
    let role = format!("label=auto-lambda.role={role}");
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &owner, "--filter", &role])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Every file under `dir`, as (relative name, content), sorted.
pub fn dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let name = entry.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
    out
}

/// A zip of owned `(name, content)` pairs.
pub fn zip_owned(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    zip_of(&refs)
}

/// What jobs left in a worker's `--work-dir`: every entry except the verifier's staging
/// directory (`auto-lambda-verify-<pid>`, which lives as long as the worker), plus whatever
/// is inside that.
pub fn job_leftovers(work: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(work).unwrap() {
        let path = entry.unwrap().path();
        let staging = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("auto-lambda-verify-"));
        if staging {
            out.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            out.push(path);
        }
    }
    out
}

/// A container's bind mounts as `source:target:ro|rw`, from its inspected host config. The
/// worker mounts with `Mounts` (type bind), never `Binds`, so a source the Engine cannot see is
/// an error rather than an empty directory made on its host: that is asserted here too.
#[allow(dead_code)] // not every test binary inspects containers
pub fn bind_mounts(hc: &bollard::models::HostConfig) -> Vec<String> {
    assert!(
        hc.binds.as_ref().is_none_or(|b| b.is_empty()),
        "no Binds: {:?}",
        hc.binds
    );
    hc.mounts
        .iter()
        .flatten()
        .map(|m| {
            assert_eq!(m.typ, Some(bollard::models::MountType::BIND), "{m:?}");
            let mode = if m.read_only == Some(true) { "ro" } else { "rw" };
            format!(
                "{}:{}:{mode}",
                m.source.as_deref().unwrap_or_default(),
                m.target.as_deref().unwrap_or_default()
            )
        })
        .collect()
}

/// The Docker Engine, and the ids of the containers worker `pid` on this host started for
/// `role` (`build` or `verifier`), by the owner and role labels the sandbox puts on them;
/// `all`: stopped ones too.
#[allow(dead_code)] // not every test binary inspects containers
pub async fn worker_containers(pid: u32, role: &str, all: bool) -> (bollard::Docker, Vec<String>) {
    let docker = bollard::Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let filters = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![
            format!("auto-lambda.owner={}/{pid}", host.trim()),
            format!("auto-lambda.role={role}"),
        ],
    )]);
    let options = bollard::query_parameters::ListContainersOptions {
        all,
        filters: Some(filters),
        ..Default::default()
    };
    let ids = docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    (docker, ids)
}
