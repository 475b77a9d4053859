//! Native dependencies: built for Lambda's OS and architecture, cached.
//!
//! Where a Python app's dependencies come from is [`source`]'s business (requirements.txt,
//! uv.lock, poetry.lock, pylock.toml, pyproject.toml); Node apps need `package.json` with a
//! `package-lock.json`. How they are installed:
//!
//! * **In the runtime's build image** (`--build-mode docker`, the default, when the function's
//!   architecture is the worker's): `uv pip install --target` (or `pip install -t`, or
//!   `npm ci --omit=dev`) in the image (the AWS SAM build images unless overridden), in the
//!   sandbox of [`crate::sandbox`]. uv is the worker's own static binary, mounted read-only, so
//!   no image has to change; it picks wheels for the runtime's glibc, not the image's.
//! * **Wheels only, on the worker** (`--build-mode wheels`, formerly `pip-platform`, for hosts
//!   without Docker; and in docker mode for a function of the other architecture, so one fleet
//!   serves both without QEMU): uv (or pip) downloads prebuilt manylinux wheels for the
//!   function's Python version, architecture and glibc. Nothing is compiled; a requirement
//!   with no such wheel is a permanent error that names it.
//!
//! * **Wheels first** (docker mode, uv, the default): a Python app's dependencies are first
//!   installed as wheels on the worker, from uv's cache kept between jobs (`<cache-dir>/uv`),
//!   and a container starts only when that fails (a requirement with no wheel for the
//!   platform, a local package). A warm-cache install is a hard link per file. Installing a
//!   wheel runs no code from the upload (uv gets the worker's Python as an absolute path, so
//!   it never looks for, and runs, an interpreter in the upload's copy), and uv keys its cache
//!   by index URL, so one upload cannot plant a package for another that uses a different
//!   index. Exact versions only (see `pinned`).
//!
//! Platform tags always come from the runtime, never from the build host: Amazon Linux 2
//! runtimes (python3.9–3.11, glibc 2.26) take manylinux wheels up to 2.26 (uv's nearest
//! target at or below it is `manylinux_2_17`), Amazon Linux 2023 runtimes (glibc 2.34) up to
//! 2.34.
//!
//! Either way the result is a zip of deflated entries in the [`cache`], which the packager
//! copies raw into the deployment package. Whether the result loads is [`crate::verify`]'s
//! business, for every package, built now or taken from the cache.

pub mod cache;
pub mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::manifest::{Architecture, FunctionSpec};
use crate::package::{self, PackageError};
use crate::sandbox::{self as container, ContainerError, Engine, Sandbox, Step};
use cache::{Cache, Hit, KeyBuilder};
use source::{Origin, SourceError};

/// How dependencies are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildMode {
    /// In a build container through the Docker Engine (wheels only, on the worker, for a
    /// function of the other architecture).
    Docker,
    /// Prebuilt manylinux wheels only, downloaded on the worker (Python only; no Docker).
    #[value(alias = "pip-platform")]
    Wheels,
}

/// Which tool installs Python dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PythonInstaller {
    /// uv when the worker has it, pip otherwise.
    Auto,
    /// uv (`uv pip install --target`); the worker must have it.
    Uv,
    /// pip (`pip install -t`).
    Pip,
}

/// Build settings, from the worker's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: BuildMode,
    /// Build image per runtime; runtimes not listed use `public.ecr.aws/sam/build-<runtime>`.
    pub images: BTreeMap<String, String>,
    pub limits: container::Limits,
    /// Python on the worker, for wheels-only installs.
    pub host_python: String,
    pub installer: PythonInstaller,
    /// The uv binary (statically linked: it runs on the worker and, mounted, in any image).
    pub uv: Option<PathBuf>,
    /// Docker mode: try a wheels-only install on the worker (uv only) before a container.
    pub wheels_first: bool,
    /// uv's cache for installs on the worker, kept between jobs (only wheels go in: no code
    /// from an upload runs there). Build containers get an empty cache of their own.
    pub uv_cache: PathBuf,
}

/// Built dependencies, ready to be merged into a package.
#[derive(Debug, Clone)]
pub struct Deps {
    /// A zip of deflated entries (see [`package::build`]).
    pub zip: PathBuf,
    /// `None` when built now; where the cache hit came from otherwise.
    pub hit: Option<Hit>,
    /// The whole build output (at most [`crate::sandbox::MAX_LOG_BYTES`]); empty for a
    /// cache hit.
    pub log: String,
    /// Which file they came from: `requirements.txt`, `uv.lock`, `poetry.lock`,
    /// `pylock.toml`, `pyproject.toml (unlocked)`, `package-lock.json`.
    pub from: &'static str,
    /// What installed them: `uv`, `pip`, `npm`.
    pub installer: &'static str,
    /// Where they were installed, when built now: `worker` (wheels only) or `container`.
    pub built_on: Option<&'static str>,
}

/// Why dependencies could not be built. Classified in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot build {wanted} Node.js dependencies on this {host} worker; run {wanted} functions on a worker group of that architecture")]
    Architecture { wanted: &'static str, host: &'static str },
    #[error("package.json lists dependencies but there is no package-lock.json; npm ci needs a lock file")]
    NoLockFile,
    #[error("{0}")]
    Unsupported(String),
    #[error("`{requirement}` has no prebuilt wheel for {platform} (Python {python}), and this worker does not compile for {arch}: use a version that publishes such a wheel, or run {arch} functions on a worker group of that architecture")]
    NoWheel {
        requirement: String,
        platform: String,
        python: String,
        arch: &'static str,
        log: String,
    },
    #[error("{tool} exited with status {code}")]
    Install { tool: &'static str, code: i32, log: String },
    #[error("{tool} did not finish within {limit:?} and was killed")]
    InstallTimedOut { tool: &'static str, limit: Duration },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the build: {0}")]
    Io(#[source] std::io::Error),
    #[error("cannot zip the built dependencies: {0}")]
    Package(#[from] PackageError),
}

impl BuildError {
    /// The build's whole output, where there was one: stored beside the status report, whose
    /// own field keeps the tail.
    pub fn log(&self) -> Option<&str> {
        match self {
            BuildError::Container(e) => e.log(),
            BuildError::Install { log, .. } | BuildError::NoWheel { log, .. } => Some(log),
            BuildError::Source(_)
            | BuildError::Architecture { .. }
            | BuildError::NoLockFile
            | BuildError::Unsupported(_)
            | BuildError::InstallTimedOut { .. }
            | BuildError::Spawn { .. }
            | BuildError::Io(_)
            | BuildError::Package(_) => None,
        }
    }
}

/// What an app asks to have installed.
#[derive(Debug)]
enum Plan {
    Python(source::Plan),
    Node,
}

/// Where the install runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// In a container of this build image.
    Container(String),
    /// Wheels only, on the worker.
    HostWheels,
}

/// The installing tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Uv,
    Pip,
    Npm,
}

impl Tool {
    fn as_str(self) -> &'static str {
        match self {
            Tool::Uv => "uv",
            Tool::Pip => "pip",
            Tool::Npm => "npm",
        }
    }
}

/// Where uv sits inside a build container.
const UV_IN_CONTAINER: &str = "/opt/auto-lambda/uv";

/// Builds dependencies with the configured mode and cache.
#[derive(Debug)]
pub struct Builder {
    settings: Settings,
    cache: Cache,
    engine: Arc<Engine>,
    /// `uv --version`, when there is a uv.
    uv_version: Option<String>,
}

impl Builder {
    /// `settings.uv`, if set, is asked for its version once, here.
    pub fn new(settings: Settings, cache: Cache, engine: Arc<Engine>) -> Self {
        let uv_version = settings.uv.as_ref().and_then(|uv| {
            let out = std::process::Command::new(uv).arg("--version").output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        });
        Self {
            settings,
            cache,
            engine,
            uv_version,
        }
    }

    /// Connects to Docker (docker mode) and removes build containers orphaned by killed
    /// workers. A failure is logged, not fatal: pure-code apps deploy without Docker, and the
    /// connection is retried by the first job that needs it.
    /// In docker mode: connects to the Docker Engine, trying again until `within` has passed
    /// (the engine may still be starting at boot), and removes containers a killed worker left.
    /// Fails only when the engine cannot be reached in that time.
    pub async fn prepare(&self, within: Duration) -> Result<(), ContainerError> {
        if self.settings.mode != BuildMode::Docker {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut delay = Duration::from_millis(250);
        let sandbox = loop {
            match self.sandbox().await {
                Ok(sandbox) => break sandbox,
                Err(err) if tokio::time::Instant::now() + delay > deadline => return Err(err),
                Err(err) => {
                    tracing::info!(error = %err, "Docker not reachable yet; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let reaped = sandbox.reap_orphans().await;
        if reaped > 0 {
            tracing::info!(reaped, "Removed containers left by a killed worker.");
        }
        Ok(())
    }

    /// Removes build containers of jobs that were cut off. Called once all jobs have ended.
    pub async fn shutdown(&self) {
        if let Some(sandbox) = self.engine.connected() {
            sandbox.remove_all().await;
        }
    }

    async fn sandbox(&self) -> Result<&Sandbox, ContainerError> {
        self.engine.get().await
    }

    fn python_tool(&self, origin: Origin) -> Result<Tool, BuildError> {
        let tool = match (self.settings.installer, &self.uv_version) {
            (PythonInstaller::Pip, _) => Tool::Pip,
            (PythonInstaller::Uv | PythonInstaller::Auto, Some(_)) => Tool::Uv,
            (PythonInstaller::Uv, None) => {
                return Err(BuildError::Unsupported(
                    "--python-installer uv, but the worker has no working uv (--uv-binary)".into(),
                ))
            }
            (PythonInstaller::Auto, None) => Tool::Pip,
        };
        if origin == Origin::Pylock && tool == Tool::Pip {
            return Err(SourceError::NoUv {
                origin: "pylock.toml",
                reason: "pip cannot install from pylock.toml".into(),
            }
            .into());
        }
        Ok(tool)
    }

    /// Builds (or finds in the cache) the dependencies of the app unpacked at `app`.
    /// `Ok(None)`: nothing to build.
    pub async fn build(&self, app: &Path, spec: &FunctionSpec, work: &Path) -> Result<Option<Deps>, BuildError> {
        let Some(plan) = self.plan(app, spec, work)? else {
            return Ok(None);
        };
        let native = host_architecture() == Some(spec.architecture);
        let route = match (&plan, self.settings.mode) {
            (Plan::Node, BuildMode::Wheels) => {
                return Err(BuildError::Unsupported(
                    "--build-mode wheels installs Python dependencies only; Node apps need --build-mode docker".into(),
                ))
            }
            (Plan::Node, BuildMode::Docker) if !native => {
                let host = host_architecture();
                return Err(BuildError::Architecture {
                    wanted: spec.architecture.as_str(),
                    host: host.map_or("unknown", Architecture::as_str),
                });
            }
            (_, BuildMode::Docker) if native => Route::Container(self.image(&spec.runtime)),
            (Plan::Python(_), _) => Route::HostWheels,
            (Plan::Node, _) => unreachable!("every Node case is matched above"),
        };
        let (tool, from) = match &plan {
            Plan::Python(p) => (self.python_tool(p.origin)?, p.origin.as_str()),
            Plan::Node => (Tool::Npm, "package-lock.json"),
        };
        let toolchain = match &route {
            Route::Container(image) => format!("docker:{}", self.sandbox().await?.image_id(image).await?),
            Route::HostWheels => format!("wheels:{}", self.settings.host_python),
        };
        let installer = match tool {
            Tool::Uv => self.uv_version.clone().unwrap_or_default(),
            other => other.as_str().to_owned(),
        };
        let key = cache_key(app, spec, &plan, &toolchain, &installer)?;
        if let Some((zip, hit)) = self.cache.get(&key).await {
            tracing::info!(?hit, key = %&key[..12], "Dependencies from cache.");
            return Ok(Some(Deps {
                zip,
                hit: Some(hit),
                log: String::new(),
                from,
                installer: tool.as_str(),
                built_on: None,
            }));
        }

        let out = work.join("deps");
        std::fs::create_dir(&out).map_err(BuildError::Io)?;
        let inputs = work.join("inputs");
        std::fs::create_dir(&inputs).map_err(BuildError::Io)?;
        if let Plan::Python(p) = &plan {
            for (name, content) in &p.overlay {
                let path = inputs.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(BuildError::Io)?;
                }
                std::fs::write(path, content).map_err(BuildError::Io)?;
            }
        }
        let (log, built_on) = match (&route, &plan) {
            (Route::Container(image), Plan::Python(p)) if self.wheels_first(tool, p) => {
                // Offline builds stay offline: only what the app brings (`--find-links`).
                let offline = self.settings.limits.network == "none";
                match self
                    .build_wheels(app, &inputs, &out, work, p, tool, spec, offline)
                    .await
                {
                    Ok(log) => (log, "worker"),
                    // A container would wait for the same index as long again.
                    Err(err @ BuildError::InstallTimedOut { .. }) => return Err(err),
                    Err(err) => {
                        let log = err.log().map(|l| tail(l, 2048)).unwrap_or_default();
                        tracing::info!(error = %err, %log, "Not installable as wheels on the worker; building in a container.");
                        std::fs::remove_dir_all(&out)
                            .and_then(|()| std::fs::create_dir(&out))
                            .map_err(BuildError::Io)?;
                        let log = self
                            .build_in_container(app, &inputs, &out, image, &plan, tool, spec)
                            .await?;
                        (log, "container")
                    }
                }
            }
            (Route::Container(image), _) => {
                let log = self
                    .build_in_container(app, &inputs, &out, image, &plan, tool, spec)
                    .await?;
                (log, "container")
            }
            (Route::HostWheels, Plan::Python(p)) => (
                self.build_wheels(app, &inputs, &out, work, p, tool, spec, false)
                    .await?,
                "worker",
            ),
            (Route::HostWheels, Plan::Node) => unreachable!("Node never installs wheels"),
        };
        let zip = work.join("deps.zip");
        let (out_c, zip_c) = (out.clone(), zip.clone());
        tokio::task::spawn_blocking(move || package::build(&out_c, &zip_c))
            .await
            .map_err(|e| BuildError::Io(std::io::Error::other(e)))??;
        let zip = self.cache.put(&key, &zip).await.unwrap_or(zip);
        Ok(Some(Deps {
            zip,
            hit: None,
            log,
            from,
            installer: tool.as_str(),
            built_on: Some(built_on),
        }))
    }

    /// Whether a docker-mode Python build first tries wheels on the worker: uv only (its cache
    /// makes it fast; pip's would not), not for local packages, which must be built, and only
    /// for exact versions: with a range, a wheels-only install would quietly pick an older
    /// release when the newest has no wheel for the platform, where a container builds it.
    fn wheels_first(&self, tool: Tool, plan: &source::Plan) -> bool {
        self.settings.wheels_first && tool == Tool::Uv && plan.local_paths.is_empty() && pinned(plan)
    }

    fn image(&self, runtime: &str) -> String {
        build_image(&self.settings.images, runtime)
    }

    /// What the app asks to have installed, if anything.
    fn plan(&self, app: &Path, spec: &FunctionSpec, work: &Path) -> Result<Option<Plan>, BuildError> {
        if spec.runtime.starts_with("python") {
            let uv = self.uv_version.as_ref().and(self.settings.uv.as_deref());
            return Ok(source::python(app, uv, work)?.map(Plan::Python));
        }
        if spec.runtime.starts_with("nodejs") && app.join("package.json").is_file() {
            let text = std::fs::read_to_string(app.join("package.json")).map_err(BuildError::Io)?;
            let manifest: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| BuildError::Unsupported(format!("package.json is not valid JSON: {e}")))?;
            let has_deps = manifest
                .get("dependencies")
                .and_then(|d| d.as_object())
                .is_some_and(|d| !d.is_empty());
            if !has_deps {
                return Ok(None);
            }
            if !app.join("package-lock.json").is_file() {
                return Err(BuildError::NoLockFile);
            }
            return Ok(Some(Plan::Node));
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    async fn build_in_container(
        &self,
        app: &Path,
        inputs: &Path,
        out: &Path,
        image: &str,
        plan: &Plan,
        tool: Tool,
        spec: &FunctionSpec,
    ) -> Result<String, BuildError> {
        let sandbox = self.sandbox().await?;
        // The source mount is read-only, and installers build local packages in place, so the
        // build works on a copy in the container's /tmp, with the generated or re-encoded
        // requirements from /in laid over it. Nothing from the upload reaches a shell: the
        // scripts are constant, and what varies comes in through environment variables.
        // Offline, no build backend can be fetched into an isolated environment: local
        // packages build with the image's own setuptools, and no index is consulted.
        let offline = self.settings.limits.network == "none";
        let prepare = "cp -R /src /tmp/src && cp -R /in/. /tmp/src/ && cd /tmp/src && exec";
        let script = match (tool, offline) {
            (Tool::Uv, false) => format!("{prepare} {UV_IN_CONTAINER} pip install --no-config --no-progress --link-mode copy --python python3 --python-platform \"$AL_UV_PLATFORM\" --python-version \"$AL_PYTHON_VERSION\" --target /out -r \"$AL_REQUIREMENTS\""),
            (Tool::Uv, true) => format!("{prepare} {UV_IN_CONTAINER} pip install --no-config --no-progress --link-mode copy --offline --no-index --no-build-isolation --python python3 --python-platform \"$AL_UV_PLATFORM\" --python-version \"$AL_PYTHON_VERSION\" --target /out -r \"$AL_REQUIREMENTS\""),
            (Tool::Pip, false) => format!("{prepare} python3 -m pip install --no-input --no-compile --target /out -r \"$AL_REQUIREMENTS\""),
            (Tool::Pip, true) => format!("{prepare} python3 -m pip install --no-input --no-compile --no-index --no-build-isolation --target /out -r \"$AL_REQUIREMENTS\""),
            // `cp -L`: `file:` dependencies are symlinks in node_modules; the package needs the files.
            (Tool::Npm, _) => "cp -R /src /tmp/src && cd /tmp/src && npm ci --omit=dev --no-audit --no-fund && cp -RL node_modules /out/".to_owned(),
        };
        let mut env = vec![];
        let mut mounts = vec![(inputs.to_owned(), "/in".to_owned())];
        if let Plan::Python(p) = plan {
            env.push(format!("AL_REQUIREMENTS={}", p.requirements));
            env.push(format!("AL_UV_PLATFORM={}", uv_platform(spec)));
            env.push(format!("AL_PYTHON_VERSION={}", python_version(spec)));
            env.push("UV_CACHE_DIR=/tmp/uv-cache".to_owned());
            env.push("UV_PYTHON_DOWNLOADS=never".to_owned());
        }
        if tool == Tool::Uv {
            if let Some(uv) = &self.settings.uv {
                mounts.push((uv.clone(), UV_IN_CONTAINER.to_owned()));
            }
        }
        let step = Step {
            image,
            cmd: vec!["sh".into(), "-c".into(), script],
            env,
            src: app,
            out,
            out_read_only: false,
            network: None,
            mounts,
        };
        let log = sandbox.run(step).await?;
        Ok(log)
    }

    /// Wheels only, on the worker: nothing is compiled, so nothing of the target
    /// architecture has to run here.
    #[allow(clippy::too_many_arguments)]
    async fn build_wheels(
        &self,
        app: &Path,
        inputs: &Path,
        out: &Path,
        work: &Path,
        plan: &source::Plan,
        tool: Tool,
        spec: &FunctionSpec,
        offline: bool,
    ) -> Result<String, BuildError> {
        // A copy of the app with the requirements laid over it, as in a container.
        let tree = work.join("src");
        crate::artifact::copy_tree(app, &tree, |_, _| false).map_err(BuildError::Io)?;
        crate::artifact::copy_tree(inputs, &tree, |_, _| false).map_err(BuildError::Io)?;
        // An absolute path: uv takes a bare name like `python3` as a version request and
        // would look for a virtual environment first, in the working directory (a copy of the
        // upload) too, executing any `bin/python` it finds there.
        let python = absolute_program(&self.settings.host_python).ok_or_else(|| BuildError::Spawn {
            program: self.settings.host_python.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found on PATH"),
        })?;
        let python = python.to_string_lossy().into_owned();
        let python = &python;
        let version = python_version(spec);
        let (program, mut cmd) = match tool {
            Tool::Uv => {
                let uv = self.settings.uv.clone().unwrap_or_default();
                let mut cmd = tokio::process::Command::new(&uv);
                // Hard links from the cache (uv copies where the cache is on another file
                // system): nothing writes to the installed tree before it is zipped.
                cmd.args([
                    "pip",
                    "install",
                    "--no-config",
                    "--no-progress",
                    "--link-mode",
                    "hardlink",
                ])
                .args(["--python", python])
                .args(["--python-platform", &uv_platform(spec)])
                .args(["--python-version", &version])
                .args(["--only-binary", ":all:"])
                .env("UV_CACHE_DIR", &self.settings.uv_cache)
                .env("UV_PYTHON_DOWNLOADS", "never")
                .env_remove("VIRTUAL_ENV");
                if offline {
                    cmd.args(["--offline", "--no-index"]);
                }
                (uv.display().to_string(), cmd)
            }
            _ => {
                let mut cmd = tokio::process::Command::new(python);
                // -I: the working directory (a copy of the upload) is not on sys.path, so an
                // uploaded `pip/` cannot stand in for pip.
                cmd.args([
                    "-I",
                    "-m",
                    "pip",
                    "install",
                    "--no-input",
                    "--no-compile",
                    "--disable-pip-version-check",
                ]);
                for tag in pip_platforms(spec) {
                    cmd.args(["--platform", &tag]);
                }
                cmd.args(["--only-binary=:all:", "--implementation", "cp"])
                    .args(["--python-version", &version]);
                if offline {
                    cmd.arg("--no-index");
                }
                (python.clone(), cmd)
            }
        };
        // Behind a TLS-intercepting proxy the installer on the worker needs the same CA
        // bundle as build containers (uv and pip both read SSL_CERT_FILE; pip also PIP_CERT).
        if let Some(ca) = &self.settings.limits.ca_bundle {
            cmd.env("SSL_CERT_FILE", ca).env("PIP_CERT", ca);
        }
        cmd.arg("--target")
            .arg(out)
            .args(["-r", &plan.requirements])
            .current_dir(&tree)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let limit = self.settings.limits.timeout;
        let output = match tokio::time::timeout(limit, cmd.output()).await {
            Err(_) => {
                return Err(BuildError::InstallTimedOut {
                    tool: tool.as_str(),
                    limit,
                })
            }
            Ok(Err(source)) => return Err(BuildError::Spawn { program, source }),
            Ok(Ok(output)) => output,
        };
        let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&output.stderr));
        let log = tail(&log, crate::sandbox::MAX_LOG_BYTES);
        if output.status.success() {
            return Ok(log);
        }
        match missing_wheel(&log, plan) {
            Some(requirement) => Err(BuildError::NoWheel {
                requirement,
                platform: uv_platform(spec),
                python: version,
                arch: spec.architecture.as_str(),
                log,
            }),
            None => Err(BuildError::Install {
                tool: tool.as_str(),
                code: output.status.code().unwrap_or(-1),
                log,
            }),
        }
    }
}

/// Whether every requirement is an exact version: a lock (uv.lock, poetry.lock, pylock.toml
/// export exact pins), or requirements files whose every requirement line has `==`/`===` or
/// a direct reference (`name @ url`). Files that are not UTF-8 count as not pinned.
fn pinned(plan: &source::Plan) -> bool {
    match plan.origin {
        Origin::UvLock | Origin::PoetryLock | Origin::Pylock => true,
        Origin::PyprojectUnlocked => false,
        Origin::Requirements => plan.inputs.iter().all(|(_, bytes)| {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return false;
            };
            text.replace("\\\n", " ").lines().all(|line| {
                let line = line.split(" #").next().unwrap_or("").trim();
                let requirement = line.split(';').next().unwrap_or("").trim();
                line.is_empty()
                    || line.starts_with('#')
                    || line.starts_with('-')
                    || requirement.contains("==")
                    || requirement.contains(" @ ")
            })
        }),
    }
}

/// `program` as an absolute path: itself if it has a `/`, else the first match on PATH.
fn absolute_program(program: &str) -> Option<PathBuf> {
    let path = Path::new(program);
    if program.contains('/') {
        return std::path::absolute(path).ok();
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The requirement an installer could find no wheel for, from its output: uv says "Wheels are
/// required for `X`", "Because X==1 has no usable wheels" or, for a local source tree,
/// "Building source distributions is disabled"; pip says "No matching distribution found for X".
fn missing_wheel(log: &str, plan: &source::Plan) -> Option<String> {
    if let Some(rest) = log.split("Wheels are required for `").nth(1) {
        return rest.split('`').next().map(str::to_owned);
    }
    if let Some(rest) = log.split("Because ").nth(1) {
        if rest.contains("has no usable wheels") || rest.contains("no wheels with a matching") {
            return rest
                .split_whitespace()
                .next()
                .map(|r| r.trim_end_matches(',').to_owned());
        }
    }
    if log.contains("Building source distributions is disabled") {
        let local: Vec<String> = plan.local_paths.iter().map(|p| format!("./{}", p.display())).collect();
        return Some(if local.is_empty() {
            "a source-only requirement".to_owned()
        } else {
            local.join("`, `")
        });
    }
    if let Some(rest) = log.split("No matching distribution found for ").nth(1) {
        return rest.split_whitespace().next().map(str::to_owned);
    }
    None
}

/// `python3.13` → `3.13`.
fn python_version(spec: &FunctionSpec) -> String {
    crate::verify::interpreter_of(&spec.runtime)
}

/// uv's `--python-platform` for the runtime: `x86_64-manylinux_2_34` on Amazon Linux 2023;
/// on Amazon Linux 2 (glibc 2.26) `…-manylinux_2_17`, the newest target uv offers at or
/// below 2.26 (`uv pip install --help`: 2_17, then 2_28).
fn uv_platform(spec: &FunctionSpec) -> String {
    let tag = match crate::verify::runtime_glibc(&spec.runtime).0 {
        (2, minor) if minor >= 34 => "manylinux_2_34",
        _ => "manylinux_2_17",
    };
    format!("{}-{tag}", spec.architecture.linux_name())
}

/// pip's `--platform` values for the runtime, newest first: every manylinux tag the runtime's
/// glibc accepts (`manylinux_2_26_x86_64` … `manylinux_2_17_x86_64`, `manylinux2014_x86_64`,
/// and on x86_64 the older `manylinux2010`/`manylinux1` aliases). pip does not widen one
/// `--platform` to the older tags it implies (pip 23: `--platform manylinux_2_34_x86_64`
/// finds no numpy, whose wheels say `manylinux_2_28`), so each is given.
fn pip_platforms(spec: &FunctionSpec) -> Vec<String> {
    let ((_, newest), _) = crate::verify::runtime_glibc(&spec.runtime);
    let arch = spec.architecture.linux_name();
    let mut tags: Vec<String> = (17..=newest)
        .rev()
        .map(|minor| format!("manylinux_2_{minor}_{arch}"))
        .collect();
    tags.push(format!("manylinux2014_{arch}"));
    if spec.architecture == Architecture::X86_64 {
        tags.extend(
            [
                "manylinux_2_12_x86_64",
                "manylinux2010_x86_64",
                "manylinux_2_5_x86_64",
                "manylinux1_x86_64",
            ]
            .map(String::from),
        );
    }
    tags
}

/// The build image of `runtime`: the configured one (`--build-image RUNTIME=IMAGE`), else the
/// AWS SAM build image `public.ecr.aws/sam/build-<runtime>`
/// (<https://gallery.ecr.aws/sam/>), which has the runtime's own interpreter.
pub fn build_image(images: &BTreeMap<String, String>, runtime: &str) -> String {
    images
        .get(runtime)
        .cloned()
        .unwrap_or_else(|| format!("public.ecr.aws/sam/build-{runtime}"))
}

/// The architecture of this worker, as Lambda names it; `None` on any other CPU.
pub fn host_architecture() -> Option<Architecture> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Architecture::X86_64),
        "aarch64" => Some(Architecture::Arm64),
        _ => None,
    }
}

/// Everything that determines the built tree: runtime, architecture, toolchain (image id or
/// the worker's Python), the installer and its version, the platform tag, and the dependency
/// files as read. A requirement that points into the app (`./vendor/pkg`, `file:…`) adds the
/// files under that path, so a code-only change keeps hitting the cache while a change to a
/// vendored package does not.
fn cache_key(
    app: &Path,
    spec: &FunctionSpec,
    plan: &Plan,
    toolchain: &str,
    installer: &str,
) -> Result<String, BuildError> {
    let mut key = KeyBuilder::default()
        .part("auto-lambda-deps-v2")
        .part(&spec.runtime)
        .part(spec.architecture.as_str())
        .part(toolchain)
        .part(installer);
    let mut local_paths = Vec::new();
    match plan {
        Plan::Python(p) => {
            key = key.part(p.origin.as_str()).part(uv_platform(spec));
            for (name, bytes) in &p.inputs {
                key = key.part(name).part(bytes);
            }
            local_paths.extend(p.local_paths.iter().cloned());
        }
        Plan::Node => {
            for f in ["package.json", "package-lock.json"] {
                let bytes = std::fs::read(app.join(f)).map_err(BuildError::Io)?;
                local_paths.extend(local_requirements(&String::from_utf8_lossy(&bytes)));
                key = key.part(f).part(&bytes);
            }
        }
    }
    local_paths.sort();
    local_paths.dedup();
    for local in local_paths {
        for entry in walkdir::WalkDir::new(app.join(&local))
            .sort_by_file_name()
            .follow_links(false)
        {
            let entry = entry.map_err(|e| BuildError::Io(e.into()))?;
            if entry.file_type().is_file() {
                let name = entry
                    .path()
                    .strip_prefix(app)
                    .unwrap_or(entry.path())
                    .to_string_lossy()
                    .into_owned();
                key = key
                    .part(name)
                    .part(std::fs::read(entry.path()).map_err(BuildError::Io)?);
            }
        }
    }
    Ok(key.finish())
}

/// Paths inside the app that npm `file:` dependencies point at. `..` and absolute paths
/// cannot be inside the app and are left to the build to refuse.
fn local_requirements(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        for token in line.split(|c: char| c.is_whitespace() || c == '"' || c == ',') {
            let (token, file_url) = match token.strip_prefix("file:") {
                Some(rest) => (rest.trim_start_matches("//"), true),
                None => (token, false),
            };
            let token = token.split('[').next().unwrap_or(token);
            let is_local = token == "." || token.starts_with("./") || (file_url && !token.is_empty());
            if is_local && !token.split('/').any(|c| c == "..") && !token.starts_with('/') {
                out.push(PathBuf::from(token));
            }
        }
    }
    out
}

/// The last `max` bytes of `s`, cut at a character boundary.
pub fn tail(s: &str, max: usize) -> String {
    let start = s.len().saturating_sub(max);
    let start = (start..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    s[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    fn spec(dir: &Path, toml: &str) -> FunctionSpec {
        let m = manifest::parse(toml).unwrap();
        manifest::resolve(m, dir, "f", "", &manifest::Defaults::default()).unwrap()
    }

    fn python_plan(dir: &Path) -> Plan {
        Plan::Python(source::python(dir, None, dir).unwrap().unwrap())
    }

    #[test]
    fn node_without_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.js"), "").unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"dependencies": {"left-pad": "1.3.0"}}"#,
        )
        .unwrap();
        let settings = Settings {
            mode: BuildMode::Docker,
            images: BTreeMap::new(),
            limits: container::Limits {
                memory_bytes: 1 << 30,
                nano_cpus: 1,
                pids: 16,
                timeout: Duration::from_secs(1),
                network: "none".into(),
                ca_bundle: None,
            },
            host_python: "python3".into(),
            installer: PythonInstaller::Auto,
            uv: None,
            wheels_first: true,
            uv_cache: dir.path().join("uv-cache"),
        };
        let cache = Cache::new(dir.path().join("cache"), 1 << 20, None).unwrap();
        let builder = Builder::new(settings.clone(), cache, Arc::new(Engine::new(settings.limits.clone())));
        let s = spec(dir.path(), "runtime = \"nodejs20.x\"");
        assert!(matches!(
            builder.plan(dir.path(), &s, dir.path()),
            Err(BuildError::NoLockFile)
        ));
    }

    #[test]
    fn cache_key_follows_inputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "v1").unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "six==1.16.0\n").unwrap();
        let s = spec(dir.path(), "");
        let key = |toolchain: &str, installer: &str| {
            cache_key(dir.path(), &s, &python_plan(dir.path()), toolchain, installer).unwrap()
        };
        let k1 = key("docker:sha256:1", "uv 0.13.9");
        std::fs::write(dir.path().join("app.py"), "v2").unwrap();
        assert_eq!(k1, key("docker:sha256:1", "uv 0.13.9"), "code changes keep the key");
        assert_ne!(k1, key("docker:sha256:2", "uv 0.13.9"), "a new image changes it");
        assert_ne!(k1, key("docker:sha256:1", "pip"), "so does the installer");
        let arm = spec(dir.path(), "architecture = \"arm64\"");
        assert_ne!(
            k1,
            cache_key(
                dir.path(),
                &arm,
                &python_plan(dir.path()),
                "docker:sha256:1",
                "uv 0.13.9"
            )
            .unwrap(),
            "and the architecture"
        );
        std::fs::create_dir_all(dir.path().join("vendor/pkg")).unwrap();
        std::fs::write(dir.path().join("vendor/pkg/setup.py"), "a").unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "./vendor/pkg\n").unwrap();
        let k2 = key("docker:sha256:1", "uv");
        std::fs::write(dir.path().join("app.py"), "v3").unwrap();
        assert_eq!(k2, key("docker:sha256:1", "uv"), "app code is not part of it");
        std::fs::write(dir.path().join("vendor/pkg/setup.py"), "b").unwrap();
        assert_ne!(k2, key("docker:sha256:1", "uv"), "the vendored package is");
    }

    #[test]
    fn local_requirement_paths() {
        let got = local_requirements("\"greet\": \"file:vendor/greet\", \"x\": \"file:../escape\"\n");
        assert_eq!(got, [PathBuf::from("vendor/greet")]);
    }

    #[test]
    fn platform_tags_come_from_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let al2 = spec(dir.path(), "runtime = \"python3.11\"");
        assert_eq!(uv_platform(&al2), "x86_64-manylinux_2_17");
        let pip = pip_platforms(&al2);
        assert_eq!(pip[0], "manylinux_2_26_x86_64");
        assert!(pip.contains(&"manylinux_2_17_x86_64".to_owned()) && pip.contains(&"manylinux2014_x86_64".to_owned()));
        assert!(!pip.iter().any(|t| t.contains("2_27") || t.contains("2_28")), "{pip:?}");
        let al2023 = spec(dir.path(), "runtime = \"python3.13\"\narchitecture = \"arm64\"");
        assert_eq!(uv_platform(&al2023), "aarch64-manylinux_2_34");
        let pip = pip_platforms(&al2023);
        assert_eq!(pip[0], "manylinux_2_34_aarch64");
        assert!(pip.contains(&"manylinux_2_28_aarch64".to_owned()), "{pip:?}");
    }

    #[test]
    fn only_exact_versions_go_wheels_first() {
        let plan = |origin, text: &str| source::Plan {
            origin,
            overlay: vec![],
            requirements: "requirements.txt".into(),
            inputs: vec![("requirements.txt".into(), text.as_bytes().to_vec())],
            local_paths: vec![],
        };
        let req = source::Origin::Requirements;
        assert!(pinned(&plan(
            req,
            "# c\nsix==1.16.0 ; python_version > '3'\n--index-url https://x\n"
        )));
        assert!(pinned(&plan(
            req,
            "a==1 \\\n    --hash=sha256:00\npkg @ https://h/pkg.whl\n"
        )));
        assert!(!pinned(&plan(req, "six==1.16.0\nrequests\n")));
        assert!(!pinned(&plan(req, "six>=1.15  # at least\n")));
        assert!(pinned(&plan(source::Origin::UvLock, "")));
        assert!(!pinned(&plan(source::Origin::PyprojectUnlocked, "")));
    }

    #[test]
    fn missing_wheels_are_named() {
        let plan = source::Plan {
            origin: Origin::Requirements,
            overlay: vec![],
            requirements: "requirements.txt".into(),
            inputs: vec![],
            local_paths: vec![PathBuf::from("vendor/fastsum")],
        };
        let uv = "error: No solution found\n  cause: Because psycopg2==2.9.10 has no usable wheels and you require psycopg2==2.9.10, we can conclude\nhint: Wheels are required for `psycopg2` because building from source is disabled";
        assert_eq!(missing_wheel(uv, &plan).as_deref(), Some("psycopg2"));
        assert_eq!(
            missing_wheel("error: Building source distributions is disabled", &plan).as_deref(),
            Some("./vendor/fastsum")
        );
        assert_eq!(
            missing_wheel("ERROR: No matching distribution found for numpy==9.9\n", &plan).as_deref(),
            Some("numpy==9.9")
        );
    }
}
