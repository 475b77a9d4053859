//! Locked-down containers through the Docker Engine API: one-shot build steps for the
//! dependency stage ([`crate::deps`]) and long-lived "warm" containers that the verification
//! stage ([`crate::verify`]) runs its checks in with `exec`.
//!
//! Every container runs as a non-root user with all capabilities dropped, no privilege
//! escalation, a read-only root filesystem with a private `/tmp`, pids/memory/CPU limits, the
//! network the operator configured (`none` keeps it off the network entirely; on EC2 the
//! launch template's IMDSv2 hop limit of 1 keeps even a bridged container away from the
//! instance metadata service), the app mounted read-only at `/src` and one writable output
//! directory at `/out`. A wall-clock timeout kills it. It is removed on every path, including
//! when the job is cancelled, and containers left by a worker that was killed are removed when
//! the next worker starts.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StartContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

/// Label on every container: which worker process owns it, as `<hostname>/<pid>`.
pub const OWNER_LABEL: &str = "auto-lambda.owner";
/// Label on every container: what it is for, `build` (one dependency build step) or
/// `verifier` (a warm container for load checks).
pub const ROLE_LABEL: &str = "auto-lambda.role";

/// The user a warm container's main process runs as: `nobody`, which owns none of the files
/// it could read. Each check inside runs as a user of its own (see [`crate::verify`]).
pub const UNPRIVILEGED: &str = "65534:65534";

/// How many bytes of a check's output (an exec in a warm container) are kept.
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// The most of a build container's output kept (its last bytes): the whole log of any real
/// build, stored beside the status report; a build that prints more is cut at the front.
pub const MAX_LOG_BYTES: usize = 8 * 1024 * 1024;

/// Limits applied to every build container.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    pub timeout: Duration,
    /// Docker network mode: `none`, `bridge`, or a user-defined network.
    pub network: String,
    /// CA bundle mounted into the container for TLS-intercepting proxies.
    pub ca_bundle: Option<PathBuf>,
}

/// The longest a build image pull may take: a 2 GB image at 5 MB/s, with room to spare. A
/// registry that stops answering would otherwise hold the job (and its message) for ever.
pub const IMAGE_PULL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Why a container step failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("cannot reach the Docker Engine: {0}")]
    Engine(#[source] bollard::errors::Error),
    #[error("build image {image} is not available: {source}")]
    Image {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "pulling build image {image} did not finish within {after:?}; check the registry and the instance's network"
    )]
    PullTimedOut { image: String, after: Duration },
    #[error("the build container failed to run: {0}")]
    Run(#[source] bollard::errors::Error),
    #[error("the build exited with status {code}")]
    Failed { code: i64, log: String },
    #[error("the build ran out of memory (the container's limit is {limit_mib} MiB): make the build lighter, or raise --build-memory-mb")]
    OutOfMemory { limit_mib: i64, log: String },
    #[error("the build container was killed from outside (exit {code}; a Docker daemon restart, or an operator); the build will be retried")]
    Killed { code: i64, log: String },
    #[error("the build did not finish within {0:?} and was killed")]
    TimedOut(Duration, String),
    #[error("the check did not finish within {0:?}")]
    ExecTimedOut(Duration),
}

impl ContainerError {
    /// The container's whole output (at most [`MAX_LOG_BYTES`]), where there was one.
    pub fn log(&self) -> Option<&str> {
        match self {
            ContainerError::Failed { log, .. }
            | ContainerError::OutOfMemory { log, .. }
            | ContainerError::Killed { log, .. }
            | ContainerError::TimedOut(_, log) => Some(log),
            ContainerError::Engine(_)
            | ContainerError::Image { .. }
            | ContainerError::PullTimedOut { .. }
            | ContainerError::Run(_)
            | ContainerError::ExecTimedOut(_) => None,
        }
    }
}

/// One container run.
#[derive(Debug)]
pub struct Step<'a> {
    pub image: &'a str,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// Mounted read-only at `/src`.
    pub src: &'a Path,
    /// Mounted at `/out`; read-only when `out_read_only`.
    pub out: &'a Path,
    pub out_read_only: bool,
    /// Overrides the configured network.
    pub network: Option<&'a str>,
    /// More host paths, each mounted read-only at the container path beside it (the uv
    /// binary, the generated requirements).
    pub mounts: Vec<(PathBuf, String)>,
}

/// The Docker Engine connection, made on first use and shared by the stages that run
/// containers, so that a worker without Docker still deploys what needs none.
#[derive(Debug)]
pub struct Engine {
    limits: Limits,
    sandbox: tokio::sync::OnceCell<Sandbox>,
}

impl Engine {
    /// An engine that connects on first use, applying `limits` to every container.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            sandbox: tokio::sync::OnceCell::new(),
        }
    }

    /// The connection; connects (and negotiates the API version) on first call, and again on
    /// the next call if that failed.
    pub async fn get(&self) -> Result<&Sandbox, ContainerError> {
        self.sandbox
            .get_or_try_init(|| Sandbox::connect(self.limits.clone()))
            .await
    }

    /// The connection if one was made.
    pub fn connected(&self) -> Option<&Sandbox> {
        self.sandbox.get()
    }
}

/// A Docker Engine connection with the sandbox settings.
#[derive(Debug, Clone)]
pub struct Sandbox {
    docker: Docker,
    limits: Limits,
    owner: String,
    /// Containers this process has created and not yet removed.
    live: Arc<Mutex<HashSet<String>>>,
}

impl Sandbox {
    /// Connects to the local engine (DOCKER_HOST or the Unix socket) and negotiates the API
    /// version, so that an older engine is spoken to in its own version.
    pub async fn connect(limits: Limits) -> Result<Self, ContainerError> {
        let docker = Docker::connect_with_local_defaults().map_err(ContainerError::Engine)?;
        let docker = docker.negotiate_version().await.map_err(ContainerError::Engine)?;
        docker.ping().await.map_err(ContainerError::Engine)?;
        Ok(Self {
            docker,
            limits,
            owner: owner_id(),
            live: Arc::default(),
        })
    }

    /// Whether `image` is on this host already (nothing is pulled).
    pub async fn image_present(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// The image's content id, pulling it first if it is not present.
    pub async fn image_id(&self, image: &str) -> Result<String, ContainerError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => return Ok(info.id.unwrap_or_default()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(source) => {
                return Err(ContainerError::Image {
                    image: image.to_owned(),
                    source,
                })
            }
        }
        tracing::info!(%image, "Pulling build image.");
        let options = CreateImageOptions {
            from_image: Some(image.to_owned()),
            ..Default::default()
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        let pulled = tokio::time::timeout(IMAGE_PULL_TIMEOUT, async {
            while let Some(progress) = pull.next().await {
                progress.map_err(|source| ContainerError::Image {
                    image: image.to_owned(),
                    source,
                })?;
            }
            Ok(())
        })
        .await;
        match pulled {
            Ok(result) => result?,
            // Dropping the stream closes the request; the daemon finishes or abandons the
            // pull on its own, and the next job asks again.
            Err(_) => {
                return Err(ContainerError::PullTimedOut {
                    image: image.to_owned(),
                    after: IMAGE_PULL_TIMEOUT,
                })
            }
        }
        let info = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|source| ContainerError::Image {
                image: image.to_owned(),
                source,
            })?;
        Ok(info.id.unwrap_or_default())
    }

    /// Runs one step to completion and returns the tail of its output.
    pub async fn run(&self, step: Step<'_>) -> Result<String, ContainerError> {
        let user = container_user(step.out);
        let mut mounts = vec![bind(step.src, "/src", true), bind(step.out, "/out", step.out_read_only)];
        for (host, target) in &step.mounts {
            mounts.push(bind(host, target, true));
        }
        let mut env = step.env;
        env.extend([
            "HOME=/tmp".to_owned(),
            "PIP_NO_CACHE_DIR=1".to_owned(),
            "PIP_DISABLE_PIP_VERSION_CHECK=1".to_owned(),
        ]);
        if let Some(ca) = &self.limits.ca_bundle {
            mounts.push(bind(ca, "/etc/auto-lambda/ca.pem", true));
            for var in ["PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"] {
                env.push(format!("{var}=/etc/auto-lambda/ca.pem"));
            }
        }
        let host = HostConfig {
            mounts: Some(mounts),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                "rw,exec,nosuid,size=1g".to_owned(),
            )])),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            pids_limit: Some(self.limits.pids),
            memory: Some(self.limits.memory_bytes),
            memory_swap: Some(self.limits.memory_bytes),
            nano_cpus: Some(self.limits.nano_cpus),
            readonly_rootfs: Some(true),
            network_mode: Some(step.network.unwrap_or(&self.limits.network).to_owned()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(step.image.to_owned()),
            cmd: Some(step.cmd),
            env: Some(env),
            user: Some(user),
            working_dir: Some("/tmp".to_owned()),
            host_config: Some(host),
            ..Default::default()
        };
        let id = self.create(body, "build").await?;
        // Removes the container however this function ends, cancellation included.
        let guard = RemoveOnDrop {
            docker: self.docker.clone(),
            id: Some(id.clone()),
            live: self.live.clone(),
        };
        let result = self.start_and_wait(&id).await;
        guard.remove().await;
        result
    }

    async fn start_and_wait(&self, id: &str) -> Result<String, ContainerError> {
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(ContainerError::Run)?;
        let mut wait = self.docker.wait_container(id, None::<WaitContainerOptions>);
        let waited = tokio::time::timeout(self.limits.timeout, wait.next()).await;
        let code = match waited {
            Err(_) => {
                let _ = self
                    .docker
                    .kill_container(id, Some(KillContainerOptions { signal: "KILL".into() }))
                    .await;
                return Err(ContainerError::TimedOut(self.limits.timeout, self.log(id).await));
            }
            Ok(Some(Ok(status))) => status.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => code,
            Ok(Some(Err(e))) => return Err(ContainerError::Run(e)),
            Ok(None) => {
                return Err(ContainerError::Run(bollard::errors::Error::DockerStreamError {
                    error: "wait stream ended".into(),
                }))
            }
        };
        let log = self.log(id).await;
        if code == 0 {
            return Ok(log);
        }
        // The kernel's OOM killer may have ended the build's process or one of its children
        // (pip then exits 1): the build's fault, said in words. Otherwise 137 and 143, SIGKILL
        // and SIGTERM, came from outside (our own kill, the timeout, returned above): a Docker
        // daemon restart stops every container, and that is no fault of the upload.
        let oom_killed = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(ContainerError::Engine)?
            .state
            .and_then(|s| s.oom_killed)
            == Some(true);
        if oom_killed {
            return Err(ContainerError::OutOfMemory {
                limit_mib: self.limits.memory_bytes >> 20,
                log,
            });
        }
        if code == 137 || code == 143 {
            return Err(ContainerError::Killed { code, log });
        }
        Err(ContainerError::Failed { code, log })
    }

    /// The container's whole output, stdout and stderr interleaved, at most its last
    /// [`MAX_LOG_BYTES`].
    async fn log(&self, id: &str) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        };
        let mut logs = self.docker.logs(id, Some(options));
        let mut out = Vec::new();
        while let Some(Ok(chunk)) = logs.next().await {
            out.extend_from_slice(chunk.as_ref());
            if out.len() > 2 * MAX_LOG_BYTES {
                out.drain(..out.len() - MAX_LOG_BYTES);
            }
        }
        let start = out.len().saturating_sub(MAX_LOG_BYTES);
        String::from_utf8_lossy(&out[start..]).into_owned()
    }

    /// Starts a long-lived container of `image` for repeated [`Sandbox::exec`] calls: no
    /// network, a read-only root with a private `/tmp`, every capability dropped, no privilege
    /// escalation, the memory/CPU limits of a build, 128 processes, an init process that reaps
    /// what the checks leave behind, and `mount` bind-mounted read-only at `target`. Its main
    /// process sleeps; it carries the owner label, so a killed worker's warm containers are
    /// reaped like its build containers. Returns the container id.
    pub async fn start_warm(&self, image: &str, mount: &Path, target: &str) -> Result<String, ContainerError> {
        let host = HostConfig {
            mounts: Some(vec![bind(mount, target, true)]),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                "rw,nosuid,nodev,size=256m".to_owned(),
            )])),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            pids_limit: Some(128),
            memory: Some(self.limits.memory_bytes),
            memory_swap: Some(self.limits.memory_bytes),
            nano_cpus: Some(self.limits.nano_cpus),
            readonly_rootfs: Some(true),
            network_mode: Some("none".to_owned()),
            init: Some(true),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            env: Some(vec!["HOME=/tmp".to_owned()]),
            user: Some(UNPRIVILEGED.to_owned()),
            working_dir: Some("/tmp".to_owned()),
            host_config: Some(host),
            ..Default::default()
        };
        let id = self.create(body, "verifier").await?;
        if let Err(err) = self.docker.start_container(&id, None::<StartContainerOptions>).await {
            self.remove(&id).await;
            return Err(ContainerError::Run(err));
        }
        Ok(id)
    }

    /// Creates a container from `body` with this process's owner label and `role`, and
    /// records it as live until removed. Returns its id.
    async fn create(&self, mut body: ContainerCreateBody, role: &str) -> Result<String, ContainerError> {
        body.labels = Some(HashMap::from([
            (OWNER_LABEL.to_owned(), self.owner.clone()),
            (ROLE_LABEL.to_owned(), role.to_owned()),
        ]));
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(ContainerError::Run)?;
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(created.id.clone());
        Ok(created.id)
    }

    /// Runs `cmd` in the running container `id` as `user` (`uid:gid`), with `env` and working
    /// directory `workdir`, and returns its exit code and output (stdout and stderr, the last
    /// 16 KiB). After `timeout` the wait is abandoned with [`ContainerError::ExecTimedOut`]:
    /// the Engine API cannot kill an exec, so the caller removes the container.
    pub async fn exec(
        &self,
        id: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        workdir: &str,
        user: &str,
        timeout: Duration,
    ) -> Result<(i64, String), ContainerError> {
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            env: Some(env),
            user: Some(user.to_owned()),
            working_dir: Some(workdir.to_owned()),
            ..Default::default()
        };
        let run = async {
            let exec = self
                .docker
                .create_exec(id, options)
                .await
                .map_err(ContainerError::Run)?;
            let mut out = Vec::new();
            if let StartExecResults::Attached { mut output, .. } = self
                .docker
                .start_exec(&exec.id, None::<StartExecOptions>)
                .await
                .map_err(ContainerError::Run)?
            {
                while let Some(chunk) = output.next().await {
                    out.extend_from_slice(chunk.map_err(ContainerError::Run)?.as_ref());
                    if out.len() > 4 * LOG_TAIL_BYTES {
                        out.drain(..out.len() - LOG_TAIL_BYTES);
                    }
                }
            }
            let code = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(ContainerError::Run)?
                .exit_code
                .unwrap_or(-1);
            let start = out.len().saturating_sub(LOG_TAIL_BYTES);
            Ok((code, String::from_utf8_lossy(&out[start..]).into_owned()))
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or(Err(ContainerError::ExecTimedOut(timeout)))
    }

    /// Force-removes one container of this process (a warm one that is no longer wanted).
    pub async fn remove(&self, id: &str) {
        remove(&self.docker, &self.live, id).await;
    }

    /// Removes every container this process still has, e.g. of jobs cut off at shutdown.
    pub async fn remove_all(&self) {
        let ids: Vec<String> = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for id in ids {
            remove(&self.docker, &self.live, &id).await;
        }
    }

    /// Removes build containers left behind by worker processes on this host that no longer
    /// exist (a SIGKILL leaves its container running). Returns how many were removed.
    pub async fn reap_orphans(&self) -> usize {
        let host = self.owner.rsplit_once('/').map_or("", |(h, _)| h).to_owned();
        let filters = HashMap::from([("label".to_owned(), vec![OWNER_LABEL.to_owned()])]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let Ok(containers) = self.docker.list_containers(Some(options)).await else {
            return 0;
        };
        let mut removed = 0;
        for c in containers {
            let owner = c
                .labels
                .as_ref()
                .and_then(|l| l.get(OWNER_LABEL))
                .cloned()
                .unwrap_or_default();
            let Some((owner_host, pid)) = owner.rsplit_once('/') else {
                continue;
            };
            let alive = Path::new("/proc").join(pid).exists();
            if owner_host == host && owner != self.owner && !alive {
                if let Some(id) = c.id {
                    let options = RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    };
                    if self.docker.remove_container(&id, Some(options)).await.is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        removed
    }
}

/// Force-removes a container when dropped, unless [`RemoveOnDrop::remove`] already did.
/// If the job is cancelled mid-run, the removal is spawned; [`Sandbox::remove_all`] at
/// shutdown catches any that the runtime did not get to.
struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
    live: Arc<Mutex<HashSet<String>>>,
}

impl RemoveOnDrop {
    async fn remove(mut self) {
        if let Some(id) = self.id.take() {
            remove(&self.docker, &self.live, &id).await;
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let (docker, live) = (self.docker.clone(), self.live.clone());
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { remove(&docker, &live, &id).await });
            }
        }
    }
}

async fn remove(docker: &Docker, live: &Mutex<HashSet<String>>, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            live.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        }
        Err(err) => tracing::warn!(container = %id, error = %err, "Cannot remove build container."),
    }
}

/// `<hostname>/<pid>` of this process.
fn owner_id() -> String {
    // gethostname(2), not /proc/sys: the systemd unit hides /proc/sys (ProcSubset=pid).
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    format!("{host}/{}", std::process::id())
}

/// A bind mount of the worker's `source` at `target`. A mount, not a `Binds` entry: for a
/// source the Docker Engine cannot see (a worker in a container of its own, with the host's
/// socket), container creation then fails with "bind source path does not exist: …" instead of
/// the Engine creating an empty directory there on its host.
fn bind(source: &Path, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_owned()),
        source: Some(source.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// The user the container runs as: the owner of the output directory (the worker's own
/// service user), so that what the build writes belongs to the worker. If the worker runs as
/// root, the build still does not: it runs as `nobody`, with the output directory opened to it.
fn container_user(out: &Path) -> String {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    match std::fs::metadata(out) {
        Ok(meta) if meta.uid() != 0 => format!("{}:{}", meta.uid(), meta.gid()),
        _ => {
            let _ = std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o777));
            "65534:65534".to_owned()
        }
    }
}
