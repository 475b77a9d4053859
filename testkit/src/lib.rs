//! Test harness shared by the integration tests of both binaries: a moto server per test on
//! a free loopback port, the pipeline's resources created by the same bootstrap the demo uses
//! (dev/localaws.py), and small loopback helpers.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

pub mod fault_proxy;
pub use fault_proxy::{Fault, FaultProxy, Match};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const REGION: &str = "us-east-1";

/// The local python3.13 image (Debian trixie); made by dev/build-image.sh, which `make test` runs.
pub const PYTHON_IMAGE: &str = "auto-lambda/build-python3.13:test";
/// The local nodejs20.x image (Debian trixie).
pub const NODE_IMAGE: &str = "auto-lambda/build-nodejs20.x:test";
/// The local python3.11 image (Debian bookworm).
pub const PYTHON311_IMAGE: &str = "auto-lambda/build-python3.11:test";

/// The worker binary at `binary`, configured for `stack` on moto: fake credentials, the
/// stack's queue and role, no scale-in protection (not on EC2), the local build images (each
/// has its runtime's own interpreter) and the runtimes they stand for as the defaults, and uv
/// as dev/setup.sh installs it (pinned in ami/files/uv-version).
pub fn worker_command(binary: &Path, stack: &Stack) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AUTO_LAMBDA_QUEUE_URL", &stack.queue_url)
        .env("AUTO_LAMBDA_ROLE_ARN", &stack.role_arn)
        .env("AUTO_LAMBDA_SCALE_IN_PROTECTION", "off")
        .env("AUTO_LAMBDA_FOLLOW_LIFECYCLE_STATE", "off")
        .env(
            "AUTO_LAMBDA_BUILD_IMAGES",
            format!("python3.13={PYTHON_IMAGE},python3.11={PYTHON311_IMAGE},nodejs20.x={NODE_IMAGE}"),
        )
        .env("AUTO_LAMBDA_DEFAULT_PYTHON_RUNTIME", "python3.13")
        .env("AUTO_LAMBDA_DEFAULT_NODE_RUNTIME", "nodejs20.x")
        .env("AUTO_LAMBDA_UV_BINARY", venv_bin("uv"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// A real shared object for this host (x86_64 here), compiled from the C source `c` by the
/// host's gcc: fixtures for the native-file audit.
pub fn compile_shared_object(c: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("auto-lambda-so-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, so) = (dir.join("m.c"), dir.join("m.so"));
    std::fs::write(&src, c).unwrap();
    let ok = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .expect("gcc runs")
        .success();
    assert!(ok, "gcc compiled the fixture");
    let bytes = std::fs::read(&so).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// SDK configuration for moto at `endpoint`: fixed region and fake credentials.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_cloudwatch::config::Credentials::new("testing", "testing", None, None, "test");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Data points of one metric in namespace AutoLambda, from `lookback` ago until a minute from
/// now, aggregated over `period_secs` with `statistic`.
pub async fn metric_datapoints(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    metric: &str,
    dims: &[(&str, &str)],
    lookback: Duration,
    period_secs: i32,
    statistic: aws_sdk_cloudwatch::types::Statistic,
) -> Vec<aws_sdk_cloudwatch::types::Datapoint> {
    use aws_sdk_cloudwatch::types::Dimension;
    let now = std::time::SystemTime::now();
    let out = cloudwatch
        .get_metric_statistics()
        .namespace("AutoLambda")
        .metric_name(metric)
        .set_dimensions(Some(
            dims.iter()
                .map(|(n, v)| Dimension::builder().name(*n).value(*v).build())
                .collect(),
        ))
        .start_time((now - lookback).into())
        .end_time((now + Duration::from_secs(60)).into())
        .period(period_secs)
        .statistics(statistic)
        .send()
        .await
        .unwrap();
    out.datapoints().to_vec()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

pub fn venv_bin(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (or dev/setup.sh) first",
        path.display()
    );
    path
}

/// A moto server, killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        // moto's server with Lambda's RevisionId enforced, as on AWS (see dev/moto_patches.py).
        let child = Command::new(venv_bin("python"))
            .arg(repo_root().join("dev/moto_patches.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        moto.wait_ready();
        moto
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto did not start on port {}", self.port);
    }

    /// Creates bucket, queue + DLQ, notification and role with dev/localaws.py.
    pub fn bootstrap(&self, name: &str, versioned: bool) -> Stack {
        self.bootstrap_with(name, versioned, None)
    }

    /// Like [`Moto::bootstrap`], plus, with `Some(n)`, a worker Auto Scaling group of `n`
    /// InService instances (`Some(0)`: an empty group).
    pub fn bootstrap_with(&self, name: &str, versioned: bool, group: Option<u32>) -> Stack {
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(repo_root().join("dev/localaws.py"))
            .args(["bootstrap", "--endpoint", &self.endpoint, "--name", name]);
        if versioned {
            cmd.arg("--versioned");
        }
        if let Some(instances) = group {
            cmd.args(["--asg", &instances.to_string()]);
        }
        let out = cmd.output().expect("run localaws.py bootstrap");
        assert!(
            out.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Stack {
            endpoint: self.endpoint.clone(),
            bucket: v["bucket"].as_str().unwrap().into(),
            queue_url: v["queue_url"].as_str().unwrap().into(),
            dlq_url: v["dlq_url"].as_str().unwrap().into(),
            role_arn: v["role_arn"].as_str().unwrap().into(),
            asg_name: v["asg_name"].as_str().map(Into::into),
            instance_ids: v["instance_ids"]
                .as_array()
                .map(|a| a.iter().map(|i| i.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default(),
        }
    }

    /// Freezes the server (SIGSTOP): every call hangs, as in an outage. [`Moto::resume`] thaws it.
    pub fn pause(&self) {
        let ok = Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -STOP moto");
    }

    pub fn resume(&self) {
        let ok = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -CONT moto");
    }

    /// Stops the server, as if AWS went away.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The resources of one pipeline.
#[derive(Clone, Debug)]
pub struct Stack {
    pub endpoint: String,
    pub bucket: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub role_arn: String,
    pub asg_name: Option<String>,
    pub instance_ids: Vec<String>,
}

impl Stack {
    /// A stack that points at nothing, for configuration tests.
    pub fn unreachable(endpoint: &str) -> Stack {
        Stack {
            endpoint: endpoint.to_owned(),
            bucket: String::new(),
            queue_url: format!("{endpoint}/123456789012/jobs"),
            dlq_url: String::new(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            asg_name: None,
            instance_ids: Vec::new(),
        }
    }
}

/// A minimal HTTP/1.0 GET on loopback, for /metrics and /healthz. Empty if nothing answers
/// (yet), so it can be polled while a server starts.
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let mut out = String::new();
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .is_ok()
    {
        let _ = s.read_to_string(&mut out).await;
    }
    out
}

/// A child process that is killed when dropped, so a failed test leaves nothing running.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A stand-in for the EC2 instance metadata service (IMDSv2): it hands out a session token
/// on `PUT /latest/api/token` and answers `GET /latest/meta-data/instance-id` and, once set
/// with [`FakeImds::set_lifecycle_state`], `.../autoscaling/target-lifecycle-state`; anything
/// else is 404, as on EC2. moto has no metadata service; this is the one fake the tests need
/// for it. Serves until dropped.
#[derive(Debug)]
pub struct FakeImds {
    pub endpoint: String,
    lifecycle_state: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeImds {
    pub async fn start(instance_id: &str) -> FakeImds {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let instance_id = instance_id.to_owned();
        let lifecycle_state = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let state = lifecycle_state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let instance_id = instance_id.clone();
                let lifecycle_state = state.lock().unwrap().clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut got = 0;
                    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..got]).to_string();
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let authorised = head
                        .to_ascii_lowercase()
                        .contains("x-aws-ec2-metadata-token: fake-imds-token");
                    let (status, body) = if line.starts_with("PUT /latest/api/token") {
                        ("200 OK", "fake-imds-token".to_owned())
                    } else if !authorised {
                        ("401 Unauthorized", String::new())
                    } else if line.starts_with("GET /latest/meta-data/instance-id ") {
                        ("200 OK", instance_id)
                    } else if line.starts_with("GET /latest/meta-data/autoscaling/target-lifecycle-state ") {
                        match lifecycle_state {
                            Some(state) => ("200 OK", state),
                            None => ("404 Not Found", String::new()),
                        }
                    } else {
                        ("404 Not Found", String::new())
                    };
                    let reply = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nConnection: close\r\n\r\n{body}", body.len());
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        FakeImds {
            endpoint,
            lifecycle_state,
            task,
        }
    }

    /// What `autoscaling/target-lifecycle-state` answers from now on (`None`: 404).
    pub fn set_lifecycle_state(&self, state: Option<&str>) {
        *self.lifecycle_state.lock().unwrap() = state.map(Into::into);
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.task.abort();
    }
}
