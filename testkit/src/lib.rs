//! Test harness shared by the integration tests of both binaries: a moto server per test on
//! a free loopback port, the pipeline's resources created by the same bootstrap the demo uses
//! (dev/localaws.py), and small loopback helpers.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const REGION: &str = "us-east-1";

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
        let child = Command::new(venv_bin("moto_server"))
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
        self.bootstrap_with(name, versioned, 0)
    }

    /// Like [`Moto::bootstrap`], plus a worker Auto Scaling group of `instances` (when > 0).
    pub fn bootstrap_with(&self, name: &str, versioned: bool, instances: u32) -> Stack {
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(repo_root().join("dev/localaws.py"))
            .args(["bootstrap", "--endpoint", &self.endpoint, "--name", name]);
        if versioned {
            cmd.arg("--versioned");
        }
        if instances > 0 {
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
