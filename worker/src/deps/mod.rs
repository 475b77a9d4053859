//! Native dependencies: built for Lambda's OS and architecture, cached, and checked.
//!
//! * **docker** (the default): `pip install -t` or `npm ci --omit=dev` in the runtime's build
//!   image (the AWS SAM build images unless overridden), in the sandbox of [`crate::sandbox`].
//! * **pip-platform**, for hosts without Docker: pip on the host downloads only prebuilt
//!   manylinux wheels for the function's Python version and architecture. Python only.
//!   Chosen by configuration, never as a silent fallback.
//!
//! Whether the result loads is not this stage's business: [`crate::verify`] checks every
//! package, built now or taken from the cache.
//!
//! Either way the result is a zip of deflated entries in the [`cache`], which the packager
//! copies raw into the deployment package.

pub mod cache;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use crate::manifest::{Architecture, FunctionSpec};
use crate::package::{self, PackageError};
use crate::sandbox::{self as container, ContainerError, Engine, Sandbox, Step};
use cache::{Cache, Hit, KeyBuilder};

/// How dependencies are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildMode {
    /// In a build container through the Docker Engine.
    Docker,
    /// With pip on the host, prebuilt manylinux wheels only (Python only).
    PipPlatform,
}

/// Build settings, from the worker's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: BuildMode,
    /// Build image per runtime; runtimes not listed use `public.ecr.aws/sam/build-<runtime>`.
    pub images: BTreeMap<String, String>,
    pub limits: container::Limits,
    /// Python used in pip-platform mode.
    pub host_python: String,
}

/// Built dependencies, ready to be merged into a package.
#[derive(Debug, Clone)]
pub struct Deps {
    /// A zip of deflated entries (see [`package::build`]).
    pub zip: PathBuf,
    /// `None` when built now; where the cache hit came from otherwise.
    pub hit: Option<Hit>,
    pub log_tail: String,
}

/// Why dependencies could not be built. Classified in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("cannot build {wanted} dependencies on this {host} worker; run the function's architecture on a matching worker group, or use --build-mode pip-platform")]
    Architecture { wanted: &'static str, host: &'static str },
    #[error("package.json lists dependencies but there is no package-lock.json; npm ci needs a lock file")]
    NoLockFile,
    #[error("{0}")]
    Unsupported(String),
    #[error("pip exited with status {code}")]
    Pip { code: i32, log_tail: String },
    #[error("pip did not finish within {0:?} and was killed")]
    PipTimedOut(Duration),
    #[error("cannot run {python} for pip: {source}")]
    PipSpawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the build: {0}")]
    Io(#[source] std::io::Error),
    #[error("cannot zip the built dependencies: {0}")]
    Package(#[from] PackageError),
}

impl BuildError {
    /// The build's output tail, for the status report.
    pub fn log_tail(&self) -> Option<&str> {
        match self {
            BuildError::Container(e) => e.log_tail(),
            BuildError::Pip { log_tail, .. } => Some(log_tail),
            _ => None,
        }
    }
}

/// What an app asks to have built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ecosystem {
    Python,
    Node,
}

/// Builds dependencies with the configured mode and cache.
#[derive(Debug)]
pub struct Builder {
    settings: Settings,
    cache: Cache,
    engine: Arc<Engine>,
}

impl Builder {
    pub fn new(settings: Settings, cache: Cache, engine: Arc<Engine>) -> Self {
        Self {
            settings,
            cache,
            engine,
        }
    }

    /// Connects to Docker (docker mode) and removes build containers orphaned by killed
    /// workers. A failure is logged, not fatal: pure-code apps deploy without Docker, and the
    /// connection is retried by the first job that needs it.
    pub async fn prepare(&self) {
        if self.settings.mode != BuildMode::Docker {
            return;
        }
        match self.sandbox().await {
            Ok(sandbox) => {
                let reaped = sandbox.reap_orphans().await;
                if reaped > 0 {
                    tracing::info!(reaped, "Removed containers left by a killed worker.");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "Docker is not reachable yet; builds will retry.")
            }
        }
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

    /// Builds (or finds in the cache) the dependencies of the app unpacked at `app`.
    /// `Ok(None)`: nothing to build.
    pub async fn build(&self, app: &Path, spec: &FunctionSpec, work: &Path) -> Result<Option<Deps>, BuildError> {
        let Some(ecosystem) = ecosystem(app, spec)? else {
            return Ok(None);
        };
        let image = self
            .settings
            .images
            .get(&spec.runtime)
            .cloned()
            .unwrap_or_else(|| format!("public.ecr.aws/sam/build-{}", spec.runtime));
        let toolchain = match self.settings.mode {
            BuildMode::Docker => {
                let host = host_architecture();
                if host != Some(spec.architecture) {
                    return Err(BuildError::Architecture {
                        wanted: spec.architecture.as_str(),
                        host: host.map_or("unknown", Architecture::as_str),
                    });
                }
                format!("docker:{}", self.sandbox().await?.image_id(&image).await?)
            }
            BuildMode::PipPlatform => {
                if ecosystem != Ecosystem::Python {
                    return Err(BuildError::Unsupported(
                        "--build-mode pip-platform builds Python dependencies only; Node apps need --build-mode docker"
                            .into(),
                    ));
                }
                format!("pip-platform:{}", self.settings.host_python)
            }
        };
        let key = cache_key(app, spec, ecosystem, &toolchain)?;
        if let Some((zip, hit)) = self.cache.get(&key).await {
            tracing::info!(?hit, key = %&key[..12], "Dependencies from cache.");
            return Ok(Some(Deps {
                zip,
                hit: Some(hit),
                log_tail: String::new(),
            }));
        }

        let out = work.join("deps");
        std::fs::create_dir(&out).map_err(BuildError::Io)?;
        let log_tail = match self.settings.mode {
            BuildMode::Docker => self.build_in_container(app, &out, &image, ecosystem).await?,
            BuildMode::PipPlatform => self.build_with_pip_platform(app, &out, spec).await?,
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
            log_tail,
        }))
    }

    async fn build_in_container(
        &self,
        app: &Path,
        out: &Path,
        image: &str,
        ecosystem: Ecosystem,
    ) -> Result<String, BuildError> {
        let sandbox = self.sandbox().await?;
        // The source mount is read-only, and pip builds local packages in place, so the build
        // works on a copy in the container's /tmp. Nothing from the upload reaches a shell:
        // the script is constant.
        // Offline, pip cannot fetch build backends into an isolated environment: it builds
        // with the image's own setuptools and looks at no index.
        let offline = self.settings.limits.network == "none";
        let script = match (ecosystem, offline) {
            (Ecosystem::Python, false) => "cp -R /src /tmp/src && cd /tmp/src && exec python3 -m pip install --no-input --no-compile --target /out -r requirements.txt",
            (Ecosystem::Python, true) => "cp -R /src /tmp/src && cd /tmp/src && exec python3 -m pip install --no-input --no-compile --no-index --no-build-isolation --target /out -r requirements.txt",
            // `cp -L`: `file:` dependencies are symlinks in node_modules; the package needs the files.
            (Ecosystem::Node, _) => "cp -R /src /tmp/src && cd /tmp/src && npm ci --omit=dev --no-audit --no-fund && cp -RL node_modules /out/",
        };
        let step = Step {
            image,
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![],
            src: app,
            out,
            out_read_only: false,
            network: None,
        };
        Ok(sandbox.run(step).await?)
    }

    async fn build_with_pip_platform(&self, app: &Path, out: &Path, spec: &FunctionSpec) -> Result<String, BuildError> {
        let version = spec.runtime.trim_start_matches("python");
        let arch = match spec.architecture {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "aarch64",
        };
        let platform = format!("manylinux_{}_{arch}", glibc_of(&spec.runtime));
        let python = &self.settings.host_python;
        let mut cmd = tokio::process::Command::new(python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--no-input",
            "--no-compile",
            "--disable-pip-version-check",
        ])
        .args([
            "--platform",
            &platform,
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            version,
        ])
        .arg("--target")
        .arg(out)
        .args(["-r", "requirements.txt"])
        .current_dir(app)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
        let timeout = self.settings.limits.timeout;
        let output = match tokio::time::timeout(timeout, cmd.output()).await {
            Err(_) => return Err(BuildError::PipTimedOut(timeout)),
            Ok(Err(source)) => {
                return Err(BuildError::PipSpawn {
                    python: python.clone(),
                    source,
                })
            }
            Ok(Ok(output)) => output,
        };
        let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&output.stderr));
        let log_tail = tail(&log, 16 * 1024);
        if output.status.success() {
            Ok(log_tail)
        } else {
            Err(BuildError::Pip {
                code: output.status.code().unwrap_or(-1),
                log_tail,
            })
        }
    }
}

/// Lambda's glibc: Amazon Linux 2 (2.26) up to python3.11, Amazon Linux 2023 (2.34) after.
fn glibc_of(runtime: &str) -> &'static str {
    match runtime {
        "python3.9" | "python3.10" | "python3.11" => "2_26",
        _ => "2_34",
    }
}

/// The architecture of this worker, as Lambda names it; `None` on any other CPU.
pub fn host_architecture() -> Option<Architecture> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Architecture::X86_64),
        "aarch64" => Some(Architecture::Arm64),
        _ => None,
    }
}

/// What the app asks to have built, if anything.
fn ecosystem(app: &Path, spec: &FunctionSpec) -> Result<Option<Ecosystem>, BuildError> {
    if spec.runtime.starts_with("python") && app.join("requirements.txt").is_file() {
        let text = std::fs::read_to_string(app.join("requirements.txt")).map_err(BuildError::Io)?;
        let any = text
            .lines()
            .map(str::trim)
            .any(|l| !l.is_empty() && !l.starts_with('#'));
        return Ok(any.then_some(Ecosystem::Python));
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
        return Ok(Some(Ecosystem::Node));
    }
    Ok(None)
}

/// Everything that determines the built tree: runtime, architecture, toolchain (image id or
/// pip-platform), and the dependency files. A requirement that points into the app
/// (`./vendor/pkg`, `-e .`, `file:…`) adds the files under that path, so a code-only change
/// keeps hitting the cache while a change to a vendored package does not.
fn cache_key(app: &Path, spec: &FunctionSpec, ecosystem: Ecosystem, toolchain: &str) -> Result<String, BuildError> {
    let files: &[&str] = match ecosystem {
        Ecosystem::Python => &["requirements.txt"],
        Ecosystem::Node => &["package.json", "package-lock.json"],
    };
    let mut key = KeyBuilder::default()
        .part("auto-lambda-deps-v1")
        .part(&spec.runtime)
        .part(spec.architecture.as_str())
        .part(toolchain);
    let mut local_paths = Vec::new();
    for f in files {
        let bytes = std::fs::read(app.join(f)).map_err(BuildError::Io)?;
        local_paths.extend(local_requirements(&String::from_utf8_lossy(&bytes)));
        key = key.part(f).part(&bytes);
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

/// Paths inside the app that requirement lines point at: `./pkg`, `-e ./pkg`, `.`,
/// `name @ file:./pkg`, `file:pkg` (npm). `..` and absolute paths cannot be inside the app
/// and are left to the build to refuse.
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

    fn spec(dir: &Path) -> FunctionSpec {
        manifest::resolve(
            manifest::Manifest::default(),
            dir,
            "f",
            "",
            &manifest::Defaults::default(),
        )
        .unwrap()
    }

    #[test]
    fn ecosystem_detection() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        assert_eq!(ecosystem(dir.path(), &spec(dir.path())).unwrap(), None);
        std::fs::write(dir.path().join("requirements.txt"), "# nothing\n\n").unwrap();
        assert_eq!(
            ecosystem(dir.path(), &spec(dir.path())).unwrap(),
            None,
            "only comments: nothing to build"
        );
        std::fs::write(dir.path().join("requirements.txt"), "six==1.16.0\n").unwrap();
        assert_eq!(
            ecosystem(dir.path(), &spec(dir.path())).unwrap(),
            Some(Ecosystem::Python)
        );
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
        assert!(matches!(
            ecosystem(dir.path(), &spec(dir.path())),
            Err(BuildError::NoLockFile)
        ));
    }

    #[test]
    fn cache_key_follows_inputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "v1").unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "six==1.16.0\n").unwrap();
        let s = spec(dir.path());
        let k1 = cache_key(dir.path(), &s, Ecosystem::Python, "docker:sha256:1").unwrap();
        std::fs::write(dir.path().join("app.py"), "v2").unwrap();
        assert_eq!(
            k1,
            cache_key(dir.path(), &s, Ecosystem::Python, "docker:sha256:1").unwrap(),
            "code changes keep the key"
        );
        assert_ne!(
            k1,
            cache_key(dir.path(), &s, Ecosystem::Python, "docker:sha256:2").unwrap(),
            "a new image changes it"
        );
        std::fs::create_dir_all(dir.path().join("vendor/pkg")).unwrap();
        std::fs::write(dir.path().join("vendor/pkg/setup.py"), "a").unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "./vendor/pkg\n").unwrap();
        let k2 = cache_key(dir.path(), &s, Ecosystem::Python, "docker:sha256:1").unwrap();
        std::fs::write(dir.path().join("app.py"), "v3").unwrap();
        assert_eq!(
            k2,
            cache_key(dir.path(), &s, Ecosystem::Python, "docker:sha256:1").unwrap(),
            "app code is not part of it"
        );
        std::fs::write(dir.path().join("vendor/pkg/setup.py"), "b").unwrap();
        assert_ne!(
            k2,
            cache_key(dir.path(), &s, Ecosystem::Python, "docker:sha256:1").unwrap(),
            "the vendored package is"
        );
    }

    #[test]
    fn local_requirement_paths() {
        let got = local_requirements(
            "six==1.16\n./vendor/a\n-e .\nb @ file:./vendor/b\n../escape\n/abs\nc[extra] @ https://x/y.whl\n",
        );
        assert_eq!(
            got,
            [
                PathBuf::from("./vendor/a"),
                PathBuf::from("."),
                PathBuf::from("./vendor/b")
            ]
        );
    }

    #[test]
    fn glibc_per_runtime() {
        assert_eq!(glibc_of("python3.11"), "2_26");
        assert_eq!(glibc_of("python3.12"), "2_34");
    }
}
