//! Verification: the package loads the way Lambda will load it, before anything is deployed.
//!
//! Runs on every upload between [`crate::package`] and [`crate::deploy`], whatever produced the
//! package: a fresh dependency build, a local or shared cache hit, or no dependencies at all.
//! It looks at the finished package zip, which is exactly what Lambda unpacks into `/var/task`.
//!
//! * **On the host, always** ([`audit`]): every binary object in the package is identified
//!   with the `object` crate. ELF files must be for the function's architecture, must need no
//!   GLIBC symbol version newer than the runtime's (2.26 on Amazon Linux 2: python3.9–3.11,
//!   nodejs18.x, provided.al2; 2.34 on Amazon Linux 2023: the rest; see
//!   <https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html>), and CPython
//!   extensions (`*.cpython-3XY-*.so`) must carry the runtime's Python version. Mach-O (macOS)
//!   files are refused wherever they are; PE (Windows) files are refused where Linux would
//!   load them (`.so`, `.node`, `.pyd`), and counted elsewhere (pip and setuptools ship
//!   `.exe` launchers that Lambda never runs). For `provided.*`, `bootstrap` must exist, be
//!   executable, and be an ELF for the architecture or a script whose `#!` line names an
//!   absolute interpreter path with no CR.
//! * **In a warm verifier container** (Python and Node, docker mode): the package is
//!   extracted into a per-job directory that a long-lived, locked-down container of the
//!   runtime's build image has mounted read-only, and the handler is loaded there with one
//!   `exec`, as `nobody` (who owns none of the files), with the network off and a time limit.
//!   Python imports the handler module the way the Lambda runtime resolves it
//!   (`src/orders/app.handler` is module `src.orders.app`, only the package root on
//!   `sys.path`, namespace packages allowed) and checks the attribute is callable; Node loads
//!   `.js`/`.mjs`/`.cjs` as CommonJS or ES module by the same rules as the Node runtime (ES
//!   modules may use top-level await) and checks the export is a function. The container's
//!   interpreter must be the runtime's version, or the job stops with a configuration error
//!   that names both.
//!
//! What no load-time check can see is listed in the README ("Guarantees").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object::read::elf::{FileHeader, SectionHeader};
use object::{FileKind, Object};
use serde::Deserialize;

use crate::deps::BuildMode;
use crate::manifest::{Architecture, FunctionSpec};
use crate::sandbox::{ContainerError, Engine};

/// Where the verifier container sees the staging directory.
const MOUNT: &str = "/pkgs";

/// Verification settings, from the worker's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--verify`: off only as an emergency switch.
    pub enabled: bool,
    pub mode: BuildMode,
    /// Image per runtime; runtimes not listed use `public.ecr.aws/sam/build-<runtime>`.
    pub images: BTreeMap<String, String>,
    /// Wall-clock limit of one load check.
    pub timeout: Duration,
    /// Parent of the staging directory the verifier containers mount.
    pub work_root: PathBuf,
    /// `AWS_REGION` as the function will see it.
    pub region: String,
}

/// What was verified, for the status report: check name → result in words, e.g.
/// `import` → `ok (Python 3.13)`, `elf` → `3 files, x86_64, glibc ≤ 2.28`.
pub type Checks = BTreeMap<&'static str, String>;

/// Why a package must not go live, or could not be checked. Classified in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the package would not start on Lambda: `{file}` is a {format} binary, not a Linux ELF file: Lambda cannot load it. Build it on Linux for {arch} (list it in requirements.txt and the worker builds it)")]
    ForeignBinary {
        file: String,
        format: &'static str,
        arch: &'static str,
    },
    #[error("the package would not start on Lambda: `{file}` is built for {found}, but the function's architecture is {wanted}: rebuild it for {wanted}, or set `architecture` in lambda.toml")]
    WrongMachine {
        file: String,
        found: String,
        wanted: &'static str,
    },
    #[error("the package would not start on Lambda: `{file}` needs GLIBC_{needs}, but {runtime} runs on {os} with glibc {}.{}: use a build (or wheel) for manylinux_{}_{} or older", .has.0, .has.1, .has.0, .has.1, os = runtime_glibc(runtime).1)]
    Glibc {
        file: String,
        needs: String,
        runtime: String,
        /// The runtime's glibc, (major, minor).
        has: (u32, u32),
    },
    #[error(
        "the package would not start on Lambda: `{file}` is a CPython {found} extension, but the function runs {runtime}: rebuild it for Python {wanted}"
    )]
    CpythonVersion {
        file: String,
        found: String,
        runtime: String,
        wanted: String,
    },
    #[error("the package would not start on Lambda: `{file}` is not a valid {format} file: {reason}")]
    Corrupt {
        file: String,
        format: &'static str,
        reason: String,
    },
    #[error("the package would not start on Lambda: bootstrap: {0}")]
    Bootstrap(String),
    #[error("the package would not start on Lambda: handler `{handler}`: {problem}")]
    Handler {
        handler: String,
        problem: String,
        log_tail: String,
    },
    #[error("build image `{image}` runs {found}, but the function's runtime is {runtime}: map {runtime} to an image with its own interpreter (--build-image {runtime}=IMAGE)")]
    Interpreter {
        image: String,
        found: String,
        runtime: String,
    },
    #[error("the load check did not finish: {0}")]
    Container(#[from] ContainerError),
    #[error("the package would not start on Lambda: the handler's module was killed while loading: it ran longer than {0:?} (a module that waits on the network at import hangs with the network off) or past the memory limit")]
    TimedOut(Duration, String),
    #[error("cannot stage the package for verification: {0}")]
    Io(#[source] std::io::Error),
    #[error("cannot read the package for verification: {0}")]
    Zip(#[from] zip::result::ZipError),
}

impl VerifyError {
    /// The load check's output tail (a traceback), or the failed container's output.
    pub fn log(&self) -> Option<&str> {
        match self {
            VerifyError::Handler { log_tail, .. } | VerifyError::TimedOut(_, log_tail) => Some(log_tail),
            VerifyError::Container(e) => e.log(),
            VerifyError::ForeignBinary { .. }
            | VerifyError::WrongMachine { .. }
            | VerifyError::Glibc { .. }
            | VerifyError::CpythonVersion { .. }
            | VerifyError::Corrupt { .. }
            | VerifyError::Bootstrap(_)
            | VerifyError::Interpreter { .. }
            | VerifyError::Io(_)
            | VerifyError::Zip(_) => None,
        }
    }
}

/// A running verifier container and the interpreter version it has (`3.13`, `20`).
#[derive(Debug, Clone)]
struct Warm {
    id: String,
    interpreter: String,
}

/// Verifies packages. One warm container per build image, started on first use (or at
/// start-up by [`Verifier::warm_up`]), reused by every job, removed at shutdown.
#[derive(Debug)]
pub struct Verifier {
    settings: Settings,
    engine: Arc<Engine>,
    stage: PathBuf,
    /// Verifier containers by image. Each slot starts its container once; starting (or
    /// pulling) one image does not hold up the jobs of another.
    warm: std::sync::Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Warm>>>>,
    /// Hands out the uid of each check (see [`check_uid`]).
    checks_run: std::sync::atomic::AtomicU32,
}

impl Verifier {
    /// Creates the staging directory `<work_root>/auto-lambda-verify-<pid>` (0711: the checks
    /// can reach their own job's directory, whose name is random, but not list the others) and
    /// removes those of worker processes that are gone.
    pub fn new(settings: Settings, engine: Arc<Engine>) -> std::io::Result<Self> {
        if let Ok(dir) = std::fs::read_dir(&settings.work_root) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("auto-lambda-verify-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        let stage = settings
            .work_root
            .join(format!("auto-lambda-verify-{}", std::process::id()));
        create_stage(&stage)?;
        Ok(Self {
            settings,
            engine,
            stage,
            warm: Default::default(),
            checks_run: Default::default(),
        })
    }

    /// Whether the load check runs for `spec` on this worker, and if not, why.
    fn load_check(&self, spec: &FunctionSpec, has_native: bool) -> Result<(), String> {
        if !self.settings.enabled {
            return Err("skipped (--verify false)".into());
        }
        if !(spec.runtime.starts_with("python") || spec.runtime.starts_with("nodejs")) {
            return Err("not applicable".into());
        }
        if self.settings.mode != BuildMode::Docker {
            return Err("skipped (no Docker in --build-mode wheels)".into());
        }
        if has_native && crate::deps::host_architecture() != Some(spec.architecture) {
            return Err("skipped (foreign architecture)".into());
        }
        Ok(())
    }

    fn image(&self, runtime: &str) -> String {
        crate::deps::build_image(&self.settings.images, runtime)
    }

    /// Starts the verifier container for `spec`'s runtime if needed and checks its
    /// interpreter is the runtime's. Called before the dependency build, so that a mismatched
    /// image stops the job before it builds anything with the wrong interpreter.
    pub async fn prepare(&self, spec: &FunctionSpec) -> Result<(), VerifyError> {
        if self.load_check(spec, false).is_err() {
            return Ok(());
        }
        self.warm(&spec.runtime).await.map(|_| ())
    }

    /// At start-up: starts a verifier for every runtime whose image is already on this host
    /// (configured with `--build-image`, or the default SAM image the AMI pre-pulls), so the
    /// first job finds it warm, and checks each image's interpreter against its runtime.
    /// Docker being unreachable is not an error here (jobs retry); an image whose interpreter
    /// does not match is.
    pub async fn warm_up(&self) -> Result<(), VerifyError> {
        if !self.settings.enabled || self.settings.mode != BuildMode::Docker {
            return Ok(());
        }
        let Ok(sandbox) = self.engine.get().await else {
            return Ok(());
        };
        for runtime in crate::manifest::SUPPORTED_RUNTIMES {
            let checked = runtime.starts_with("python") || runtime.starts_with("nodejs");
            if checked && sandbox.image_present(&self.image(runtime)).await {
                self.warm(runtime).await?;
            }
        }
        Ok(())
    }

    /// The warm container for `runtime`'s image, started and probed on first use.
    async fn warm(&self, runtime: &str) -> Result<Warm, VerifyError> {
        let image = self.image(runtime);
        let slot = self.slots().entry(image.clone()).or_default().clone();
        let found = slot.get_or_try_init(|| self.start(&image, runtime)).await?.clone();
        let wanted = interpreter_of(runtime);
        if found.interpreter != wanted {
            let found_words = if runtime.starts_with("python") {
                format!("Python {}", found.interpreter)
            } else {
                format!("Node.js {}", found.interpreter)
            };
            return Err(VerifyError::Interpreter {
                image,
                found: found_words,
                runtime: runtime.to_owned(),
            });
        }
        Ok(found)
    }

    /// Recreates the staging directory if something removed it (a disk clean-up), and then
    /// restarts the verifiers, whose mount still points at the removed one.
    async fn ensure_stage(&self) -> Result<(), VerifyError> {
        if self.stage.is_dir() {
            return Ok(());
        }
        tracing::warn!(stage = %self.stage.display(), "The verification staging directory was removed; recreating it.");
        create_stage(&self.stage).map_err(VerifyError::Io)?;
        self.remove_verifiers().await;
        Ok(())
    }

    /// Forgets every verifier container and removes it.
    async fn remove_verifiers(&self) {
        let warm: Vec<Warm> = self
            .slots()
            .drain()
            .filter_map(|(_, slot)| slot.get().cloned())
            .collect();
        if let Ok(sandbox) = self.engine.get().await {
            for w in warm {
                sandbox.remove(&w.id).await;
            }
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::OnceCell<Warm>>>> {
        self.warm.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a verifier container of `image` (pulling it first if needed) and probes its
    /// interpreter: `3.13` for Python, `20` for Node.js.
    async fn start(&self, image: &str, runtime: &str) -> Result<Warm, VerifyError> {
        let sandbox = self.engine.get().await?;
        sandbox.image_id(image).await?;
        let started = std::time::Instant::now();
        let id = sandbox.start_warm(image, &self.stage, MOUNT).await?;
        let probe = if runtime.starts_with("python") {
            vec![
                "python3".into(),
                "-c".into(),
                "import sys; print('%d.%d' % sys.version_info[:2])".into(),
            ]
        } else {
            vec!["node".into(), "-p".into(), "process.versions.node.split('.')[0]".into()]
        };
        let (code, out) = match sandbox
            .exec(
                &id,
                probe,
                vec![],
                "/tmp",
                crate::sandbox::UNPRIVILEGED,
                self.settings.timeout,
            )
            .await
        {
            Ok(result) => result,
            Err(err) => {
                sandbox.remove(&id).await;
                return Err(err.into());
            }
        };
        let interpreter = if code == 0 {
            out.trim().to_owned()
        } else {
            format!("no usable interpreter ({})", out.trim())
        };
        tracing::info!(%image, %interpreter, elapsed_ms = started.elapsed().as_millis() as u64, "Verifier container started.");
        Ok(Warm { id, interpreter })
    }

    /// Forgets (and removes) the verifier container `id` of `image`, e.g. after a check timed
    /// out; the next job starts a fresh one. A slot that already holds a newer container is
    /// left alone.
    async fn discard(&self, image: &str, id: &str) {
        {
            let mut slots = self.slots();
            if slots.get(image).and_then(|s| s.get()).is_some_and(|w| w.id == id) {
                slots.remove(image);
            }
        }
        if let Ok(sandbox) = self.engine.get().await {
            sandbox.remove(id).await;
        }
    }

    /// Verifies the package at `package` for `spec`. Returns what was checked.
    pub async fn verify(&self, package: &Path, spec: &FunctionSpec) -> Result<Checks, VerifyError> {
        let mut checks = Checks::new();
        if !self.settings.enabled {
            checks.insert("verify", "off (--verify false): nothing was checked".to_owned());
            return Ok(checks);
        }
        // Host audit, and extraction for the load check, in one pass over the package.
        self.ensure_stage().await?;
        let job_dir = tempfile::Builder::new()
            .prefix("job-")
            .rand_bytes(24)
            .tempdir_in(&self.stage)
            .map_err(VerifyError::Io)?;
        let (package_c, spec_c, dir_c) = (package.to_owned(), spec.clone(), job_dir.path().to_owned());
        let runs_load_check = self.load_check(spec, false).is_ok();
        let audit =
            tokio::task::spawn_blocking(move || audit(&package_c, &spec_c, runs_load_check.then_some(dir_c.as_path())))
                .await
                .map_err(|e| VerifyError::Io(std::io::Error::other(e)))??;
        checks.insert("elf", audit.summary(spec.architecture));
        if let Some(b) = &audit.bootstrap {
            checks.insert("bootstrap", b.clone());
        }
        match self.load_check(spec, audit.elf_files > 0) {
            Err(reason) => {
                if reason != "not applicable" {
                    checks.insert("import", reason);
                }
            }
            Ok(()) => {
                let (import, handler) = self.load(job_dir.path(), spec).await?;
                checks.insert("import", import);
                checks.insert("handler", handler);
            }
        }
        Ok(checks)
    }

    /// Loads the handler in the warm container. Returns the `import` and `handler` checks.
    async fn load(&self, dir: &Path, spec: &FunctionSpec) -> Result<(String, String), VerifyError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(VerifyError::Io)?;
        let warm = self.warm(&spec.runtime).await?;
        let root = format!(
            "{MOUNT}/{}",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let python = spec.runtime.starts_with("python");
        let secs = self.settings.timeout.as_secs().max(1).to_string();
        // `sh -c WRAP secs prog args…`: the check runs under `timeout`, then everything it
        // left behind is killed (`kill -1` reaches every process of the check's own uid but not
        // the shell itself, and no other check's: each has a uid of its own).
        let mut cmd: Vec<String> = vec!["sh".into(), "-c".into(), CHECK_WRAPPER.into(), secs];
        if python {
            cmd.extend([
                "python3".into(),
                "-I".into(),
                "-B".into(),
                "-c".into(),
                PYTHON_CHECK.into(),
            ]);
        } else {
            cmd.extend(["node".into(), "-e".into(), NODE_CHECK.into()]);
        }
        cmd.extend([root.clone(), spec.handler.clone(), layer_note(spec)]);
        let env = self.lambda_environment(spec, &root);
        let sandbox = self.engine.get().await?;
        let n = self.checks_run.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let user = check_uid(n);
        // A little over the in-container limit, for exec set-up; past it Docker itself is stuck.
        let limit = self.settings.timeout + Duration::from_secs(5);
        let (code, output) = match sandbox.exec(&warm.id, cmd, env, &root, &user, limit).await {
            Ok(result) => result,
            Err(err @ (ContainerError::ExecTimedOut(_) | ContainerError::Run(_))) => {
                // The container is stuck or gone (OOM, a restarted engine): start afresh next
                // time; the upload is not at fault, so this is transient.
                self.discard(&self.image(&spec.runtime), &warm.id).await;
                return Err(err.into());
            }
            Err(err) => return Err(err.into()),
        };
        let tail = crate::deps::tail(&output, 8 * 1024);
        if code == 137 {
            return Err(VerifyError::TimedOut(self.settings.timeout, tail));
        }
        let Some(result) = output
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(RESULT_PREFIX))
            .and_then(|json| serde_json::from_str::<LoadResult>(json).ok())
        else {
            return Err(handler_error(
                spec,
                format!("the load check exited with status {code} and said nothing"),
                tail,
            ));
        };
        let lang = if python { "Python" } else { "Node.js" };
        match result.status.as_str() {
            "ok" => Ok((
                format!("ok ({lang} {})", result.version),
                format!("{} callable", spec.handler),
            )),
            "unproven" => Ok((
                format!("unproven: {} ({lang} {})", result.detail, result.version),
                format!("{} not checked", spec.handler),
            )),
            _ => Err(handler_error(spec, result.detail, tail)),
        }
    }

    /// The environment the function will have, as far as a load can tell: the manifest's
    /// variables and the ones Lambda sets itself
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>).
    fn lambda_environment(&self, spec: &FunctionSpec, root: &str) -> Vec<String> {
        let mut env: Vec<String> = spec.environment.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend([
            format!("LAMBDA_TASK_ROOT={root}"),
            format!("_HANDLER={}", spec.handler),
            format!("AWS_LAMBDA_FUNCTION_NAME={}", spec.name),
            format!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE={}", spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION=$LATEST".to_owned(),
            format!("AWS_EXECUTION_ENV=AWS_Lambda_{}", spec.runtime),
            format!("AWS_REGION={}", self.settings.region),
            format!("AWS_DEFAULT_REGION={}", self.settings.region),
            "TZ=:UTC".to_owned(),
            "LANG=C.UTF-8".to_owned(),
            // Nothing can be planted there: Node looks in $HOME/.node_modules.
            "HOME=/nonexistent".to_owned(),
            "PYTHONDONTWRITEBYTECODE=1".to_owned(),
        ]);
        env
    }

    /// Removes the warm containers and the staging directory. Called at shutdown.
    pub async fn shutdown(&self) {
        self.remove_verifiers().await;
        let _ = std::fs::remove_dir_all(&self.stage);
    }
}

/// Creates the staging directory `stage` with mode 0711: the checks can reach their own job's
/// directory, whose name is random, but not list the others.
fn create_stage(stage: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(stage)?;
    std::fs::set_permissions(stage, std::fs::Permissions::from_mode(0o711))
}

/// Runs `"$0" "$@"` (the check) under `timeout -s KILL`, then kills whatever the check left
/// behind, and exits with the check's status.
const CHECK_WRAPPER: &str = r#"timeout -s KILL "$0" "$@"; c=$?; kill -9 -1 2>/dev/null; exit $c"#;

/// The `uid:gid` of check number `n`: 100000–159999, a different one for every concurrent
/// check, none of which owns a file, can read another check's process environment, or signal
/// another check's processes.
fn check_uid(n: u32) -> String {
    let id = 100_000 + n % 60_000;
    format!("{id}:{id}")
}

/// `python3.13` → `3.13`; `nodejs20.x` → `20`.
pub fn interpreter_of(runtime: &str) -> String {
    if let Some(v) = runtime.strip_prefix("python") {
        v.to_owned()
    } else {
        runtime.trim_start_matches("nodejs").trim_end_matches(".x").to_owned()
    }
}

/// Tells the checker whether a missing module may come from a layer.
fn layer_note(spec: &FunctionSpec) -> String {
    if spec.layers.is_empty() {
        String::new()
    } else {
        "layers".to_owned()
    }
}

fn handler_error(spec: &FunctionSpec, problem: String, log_tail: String) -> VerifyError {
    VerifyError::Handler {
        handler: spec.handler.clone(),
        problem,
        log_tail,
    }
}

/// The checker's last line: `AUTO_LAMBDA_VERIFY {"status": …, "detail": …, "version": …}`.
const RESULT_PREFIX: &str = "AUTO_LAMBDA_VERIFY ";

#[derive(Debug, Deserialize)]
struct LoadResult {
    status: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    version: String,
}

/// Imports the handler the way the Lambda Python runtime does (awslambdaric's
/// `_get_handler`: `module.replace("/", ".")`, then `importlib.import_module`), with only the
/// package root on `sys.path` ahead of the standard library. The image's own site-packages
/// are hidden, except the modules the Lambda runtime itself provides (the AWS SDK), which are
/// found there when the image has them. Arguments: root, handler, "layers" or "".
const PYTHON_CHECK: &str = r#"
import importlib, importlib.machinery, json, os, sys, traceback
root, handler, layers = sys.argv[1], sys.argv[2], sys.argv[3]
version = '%d.%d.%d' % sys.version_info[:3]
def done(status, detail=''):
    print('AUTO_LAMBDA_VERIFY ' + json.dumps({'status': status, 'detail': detail, 'version': version}), flush=True)
    os._exit(0 if status in ('ok', 'unproven') else 1)
RUNTIME_PROVIDED = {'boto3', 'botocore', 's3transfer', 'jmespath', 'dateutil', 'urllib3', 'six', 'awslambdaric'}
site = [p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))]
sys.path[:] = [root] + [p for p in sys.path if p and p not in site]
class RuntimeProvided:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if path is None and name.partition('.')[0] in RUNTIME_PROVIDED:
            return importlib.machinery.PathFinder.find_spec(name, site)
        return None
sys.meta_path.append(RuntimeProvided)
NETWORK_ERRORS = {'NoCredentialsError', 'PartialCredentialsError', 'NoRegionError', 'EndpointConnectionError',
                  'ConnectTimeoutError', 'ReadTimeoutError', 'ConnectionClosedError', 'NewConnectionError',
                  'NameResolutionError', 'MaxRetryError', 'ProxyConnectionError', 'gaierror'}
def needs_network(e):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ in NETWORK_ERRORS or isinstance(e, (ConnectionError, TimeoutError)):
            return True
        if isinstance(e, OSError) and getattr(e, 'errno', None) in (-2, -3, -5, 101, 111, 113):
            return True
        e = e.__cause__ or e.__context__
    return False
os.chdir(root)
module, _, attr = handler.rpartition('.')
if not module or not attr or module.startswith('.'):
    done('bad-handler', 'must be MODULE.FUNCTION, e.g. app.handler')
module = module.replace('/', '.')
try:
    m = importlib.import_module(module)
except ModuleNotFoundError as e:
    traceback.print_exc()
    missing = e.name or ''
    if module == missing or module.startswith(missing + '.'):
        done('no-module', 'module `%s` is not in the package (looked for %s.py or %s/ at the package root)' % (module, module.replace('.', '/'), module.replace('.', '/')))
    if missing.partition('.')[0] in RUNTIME_PROVIDED:
        done('unproven', '`%s` is provided by the Lambda runtime, not by this build image' % missing)
    if layers:
        done('unproven', '`%s` is not in the package; it may come from a layer' % missing)
    done('import-error', 'module `%s` imports `%s`, which is not in the package: add it to requirements.txt' % (module, missing))
except BaseException as e:
    traceback.print_exc()
    last = traceback.format_exception_only(type(e), e)[-1].strip()
    if needs_network(e):
        done('unproven', 'module `%s` reaches for the network or AWS while importing (%s); the check runs offline' % (module, type(e).__name__))
    done('import-error', 'module `%s` fails to import: %s' % (module, last))
if not hasattr(m, attr):
    names = sorted(n for n, v in vars(m).items() if callable(v) and not n.startswith('_') and getattr(v, '__module__', None) == m.__name__)
    done('no-handler', 'module `%s` has no `%s`%s' % (module, attr, ('; it defines: ' + ', '.join(names[:10])) if names else ''))
if not callable(getattr(m, attr)):
    done('not-callable', '`%s.%s` is a %s, not a function' % (module, attr, type(getattr(m, attr)).__name__))
done('ok')
"#;

/// Loads the handler the way the Lambda Node.js runtime does (aws-lambda-nodejs-runtime-
/// interface-client `UserFunction.js`): `dir/index.handler` is file `dir/index` with `.js`,
/// `.mjs` or `.cjs`, in that order; `.mjs` and `.js` under `"type": "module"` are ES modules
/// (top-level await allowed), the rest CommonJS; the handler may be a dotted path into the
/// module, and must be a function. Arguments: root, handler, "layers" or "".
const NODE_CHECK: &str = r#"
const fs = require('fs'), path = require('path'), url = require('url');
const [root, handler, layers] = process.argv.slice(1);
const version = process.versions.node;
function done(status, detail) {
  console.log('AUTO_LAMBDA_VERIFY ' + JSON.stringify({ status, detail: detail || '', version }));
  process.exit(status === 'ok' || status === 'unproven' ? 0 : 1);
}
function isModule(file) {
  for (let dir = path.dirname(file); dir.startsWith(root); dir = path.dirname(dir)) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) { try { return JSON.parse(fs.readFileSync(pj, 'utf8')).type === 'module'; } catch (e) { return false; } }
    if (dir === root) break;
  }
  return false;
}
// What the Node.js runtime defines before it loads a handler (response streaming).
globalThis.awslambda = { streamifyResponse: (f) => f, HttpResponseStream: { from: (stream) => stream } };
const NETWORK = ['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT', 'CredentialsProviderError'];
(async () => {
  const base = path.basename(handler), dir = path.dirname(handler);
  const dot = base.indexOf('.');
  if (dot < 1 || dot === base.length - 1) done('bad-handler', 'must be FILE.EXPORT, e.g. index.handler');
  const modName = path.join(dir, base.slice(0, dot)), attr = base.slice(dot + 1);
  // The runtime's order: the name as it is, then .js, .mjs, .cjs, then Node's own resolution
  // (a folder with package.json or index.js).
  let file = ['', '.js', '.mjs', '.cjs'].map(e => path.join(root, modName + e)).find(f => fs.existsSync(f) && fs.statSync(f).isFile());
  if (!file) { try { file = require.resolve(path.join(root, modName)); } catch (e) { file = undefined; } }
  if (!file) done('no-module', 'module `' + modName + '` is not in the package (looked for ' + modName + '.js, .mjs, .cjs and a folder at the package root)');
  let mod;
  try {
    const esm = file.endsWith('.mjs') || (file.endsWith('.js') && isModule(file));
    mod = esm ? await import(url.pathToFileURL(file).href) : require(file);
  } catch (e) {
    console.error(e && e.stack || String(e));
    if (e && (NETWORK.includes(e.code) || NETWORK.includes(e.name))) done('unproven', 'module `' + modName + '` reaches for the network or AWS while loading (' + (e.code || e.name) + '); the check runs offline');
    const m = /Cannot find (?:package|module) '([^']+)'/.exec(String(e && e.message));
    if (m && (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND')) {
      if (m[1].startsWith('@aws-sdk/')) done('unproven', '`' + m[1] + '` is provided by the Lambda runtime, not by this build image');
      if (layers) done('unproven', '`' + m[1] + '` is not in the package; it may come from a layer');
      done('import-error', 'module `' + modName + '` needs `' + m[1] + '`, which is not in the package: add it to package.json');
    }
    done('import-error', 'module `' + modName + '` fails to load: ' + String(e && e.message || e).split('\n')[0]);
  }
  let fn = mod;
  for (const part of attr.split('.')) fn = fn == null ? undefined : fn[part];
  if (fn === undefined) done('no-handler', 'module `' + modName + '` has no export `' + attr + '`; it exports: ' + Object.keys(mod).slice(0, 10).join(', '));
  if (typeof fn !== 'function') done('not-callable', '`' + attr + '` is a ' + typeof fn + ', not a function');
  done('ok');
})();
"#;

/// What the host audit found.
#[derive(Debug, Default)]
pub struct Audit {
    pub elf_files: usize,
    /// The newest GLIBC symbol version any ELF file needs, as (major, minor).
    pub max_glibc: Option<(u32, u32)>,
    /// CPython extension tags seen, e.g. `cpython-313`.
    pub cpython_tags: BTreeSet<String>,
    /// Binaries Lambda would not load (another platform's, `.exe` launchers, tools for another
    /// architecture): counted, not refused.
    pub foreign_files: usize,
    /// For `provided.*`: what `bootstrap` is.
    pub bootstrap: Option<String>,
}

impl Audit {
    /// In words, for the report's `elf` check: `3 files, x86_64, glibc ≤ 2.28, cpython-313`.
    pub fn summary(&self, arch: Architecture) -> String {
        if self.elf_files == 0 {
            return match self.foreign_files {
                0 => "no native files".to_owned(),
                n => format!(
                    "no native files for {} ({n} binaries for other platforms ignored)",
                    arch.linux_name()
                ),
            };
        }
        let mut s = format!(
            "{} file{}, {}",
            self.elf_files,
            if self.elf_files == 1 { "" } else { "s" },
            arch.linux_name()
        );
        if let Some((a, b)) = self.max_glibc {
            s.push_str(&format!(", glibc ≤ {a}.{b}"));
        }
        if !self.cpython_tags.is_empty() {
            s.push_str(&format!(
                ", {}",
                self.cpython_tags.iter().cloned().collect::<Vec<_>>().join(" ")
            ));
        }
        if self.foreign_files > 0 {
            s.push_str(&format!(
                " ({} binaries for other platforms ignored)",
                self.foreign_files
            ));
        }
        s
    }
}

/// The glibc of the runtime's Amazon Linux, and that OS's name.
pub fn runtime_glibc(runtime: &str) -> ((u32, u32), &'static str) {
    match runtime {
        "python3.9" | "python3.10" | "python3.11" | "nodejs18.x" | "provided.al2" => ((2, 26), "Amazon Linux 2"),
        _ => ((2, 34), "Amazon Linux 2023"),
    }
}

/// Audits every file of the package zip at `package` for `spec` (see the module docs) and,
/// when `extract_to` is given, writes the package there as Lambda lays it out (directories
/// 0755, files 0644 or 0755 as in the zip, symlinks as symlinks). Blocking.
///
/// Memory stays bounded by the largest object file: every entry is looked at through its
/// first bytes, and only object files (and `bootstrap`) are read whole; the rest is streamed
/// to disk, or, with nothing to extract, not inflated beyond those first bytes.
pub fn audit(package: &Path, spec: &FunctionSpec, extract_to: Option<&Path>) -> Result<Audit, VerifyError> {
    let file = std::fs::File::open(package).map_err(VerifyError::Io)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))?;
    let mut audit = Audit::default();
    let mut bootstrap_seen = false;
    let root_canon = match extract_to {
        Some(root) => std::fs::canonicalize(root).map_err(VerifyError::Io)?,
        None => PathBuf::new(),
    };
    let mut checked_parent: Option<PathBuf> = None;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let name = entry.name()?.into_owned();
        let mode = entry.unix_mode().unwrap_or(0o644);
        let is_symlink = entry.is_symlink();
        let is_dir = entry.is_dir();
        let mut head = Vec::with_capacity(64);
        (&mut entry).take(64).read_to_end(&mut head).map_err(VerifyError::Io)?;
        let whole = is_symlink || name == "bootstrap" || object_magic(&head);
        let data = if whole {
            let mut data = head.clone();
            entry.read_to_end(&mut data).map_err(VerifyError::Io)?;
            Some(data)
        } else {
            None
        };
        if let Some(root) = extract_to {
            let path = prepare_entry(root, &name).map_err(VerifyError::Io)?;
            // Never write through a symlink of the package (a file under a linked folder).
            if let Some(parent) = path.parent().filter(|p| Some(*p) != checked_parent.as_deref()) {
                let inside = std::fs::canonicalize(parent).is_ok_and(|p| p.starts_with(&root_canon));
                if !inside {
                    return Err(VerifyError::Io(std::io::Error::other(format!(
                        "`{name}` would be written through a symlink that leaves the package"
                    ))));
                }
                checked_parent = Some(parent.to_owned());
            }
            if is_dir {
                // directories come with their files
            } else if is_symlink {
                let target = String::from_utf8_lossy(data.as_deref().unwrap_or_default()).into_owned();
                std::os::unix::fs::symlink(target, &path).map_err(VerifyError::Io)?;
            } else {
                let mut out = std::fs::File::create(&path).map_err(VerifyError::Io)?;
                match &data {
                    Some(d) => std::io::Write::write_all(&mut out, d).map_err(VerifyError::Io)?,
                    None => {
                        std::io::Write::write_all(&mut out, &head).map_err(VerifyError::Io)?;
                        std::io::copy(&mut entry, &mut out).map_err(VerifyError::Io)?;
                    }
                }
                set_mode(&path, mode).map_err(VerifyError::Io)?;
            }
        }
        drop(entry);
        let Some(data) = data else { continue };
        if name == "bootstrap" {
            bootstrap_seen = true;
            if spec.runtime.starts_with("provided") {
                audit.bootstrap = Some(check_bootstrap(&data, mode, is_symlink, spec)?);
            }
        }
        if !is_symlink {
            audit_file(&name, &data, spec, &mut audit)?;
        }
    }
    if spec.runtime.starts_with("provided") && !bootstrap_seen {
        return Err(VerifyError::Bootstrap(
            "there is no `bootstrap` at the package root; a custom runtime needs an executable named bootstrap there"
                .into(),
        ));
    }
    Ok(audit)
}

/// Whether `head` starts like an object file this audit judges: ELF, Mach-O (thin or fat) or
/// an MZ (PE) header.
fn object_magic(head: &[u8]) -> bool {
    let magic = head.get(..4).unwrap_or_default();
    magic == b"\x7fELF"
        || matches!(
            magic,
            [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe] | [0xca, 0xfe, 0xba, 0xbe]
        )
        || magic.starts_with(b"MZ")
}

/// Creates the directories above entry `name` under `root` (0755) and returns its path.
fn prepare_entry(root: &Path, name: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    // The packager writes only relative names without `..`; refuse anything else all the same.
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(std::io::Error::other(format!("unsafe entry name `{name}`")));
    }
    let path = root.join(name.trim_end_matches('/'));
    let mut dir = if name.ends_with('/') {
        path.clone()
    } else {
        path.parent().unwrap_or(root).to_owned()
    };
    let mut made = Vec::new();
    while !dir.exists() && dir.starts_with(root) {
        made.push(dir.clone());
        dir = dir.parent().unwrap_or(root).to_owned();
    }
    for d in made.into_iter().rev() {
        std::fs::create_dir(&d)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(path)
}

/// 0755 if the zip says executable, 0644 otherwise: readable by the unprivileged checker.
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Whether Lambda's loaders would pick `name` up: a shared object or extension module
/// (`.so`, `.so.N`, `.node`, `.pyd`) or a custom runtime's `bootstrap`. Other binaries (tools
/// a package runs as a subprocess, installers' `.exe` launchers) are only run if the code asks.
fn loadable(name: &str) -> bool {
    [".so", ".node", ".pyd"].iter().any(|e| name.ends_with(e)) || name.contains(".so.") || name == "bootstrap"
}

/// Whether `name` sits in a folder that names another platform than the function's, the
/// way packages ship binaries for every platform and pick one at run time: `darwin`,
/// `macos`, `win32`, `windows`, or `linux-<arch>` / `<os>-<arch>` of another architecture
/// (`prebuilds/linux-arm64/` in an x86_64 function, selenium's `webdriver/common/macos/`).
fn for_another_platform(name: &str, arch: Architecture) -> bool {
    let (ours, theirs): (&[&str], &[&str]) = match arch {
        Architecture::X86_64 => (
            &["x64", "x86_64", "amd64"],
            &["arm64", "aarch64", "arm", "armv7", "ia32", "x86"],
        ),
        Architecture::Arm64 => (
            &["arm64", "aarch64"],
            &["x64", "x86_64", "amd64", "arm", "armv7", "ia32", "x86"],
        ),
    };
    let dirs: Vec<&str> = name.split('/').collect();
    dirs[..dirs.len().saturating_sub(1)].iter().any(|dir| {
        let dir = dir.to_ascii_lowercase();
        let parts: Vec<&str> = dir.split(['-', '_']).collect();
        let other_os = parts.iter().any(|p| {
            matches!(
                *p,
                "darwin" | "macos" | "osx" | "mac" | "win32" | "win64" | "windows" | "win"
            )
        });
        let other_arch = parts.len() > 1
            && parts.iter().any(|p| matches!(*p, "linux" | "musl" | "glibc"))
            && parts.iter().any(|p| theirs.contains(p))
            && !parts.iter().any(|p| ours.contains(p));
        other_os || other_arch
    })
}

/// Audits one file's bytes; files that are not object files pass untouched. Refuses what
/// Lambda would try to load and could not; counts the binaries it would not touch.
fn audit_file(name: &str, data: &[u8], spec: &FunctionSpec, audit: &mut Audit) -> Result<(), VerifyError> {
    if !object_magic(data) {
        return Ok(());
    }
    let loads = loadable(name) && !for_another_platform(name, spec.architecture);
    let magic = data.get(..4).unwrap_or_default();
    let arch = spec.architecture.as_str();
    let foreign = |format: &'static str| VerifyError::ForeignBinary {
        file: name.to_owned(),
        format,
        arch,
    };
    // A thin Mach-O magic belongs to nothing else: judged even when the file is too short or
    // too damaged to parse.
    if matches!(magic, [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe]) {
        if loads {
            return Err(foreign("Mach-O (macOS)"));
        }
        audit.foreign_files += 1;
        return Ok(());
    }
    let kind = match FileKind::parse(data) {
        Ok(kind) => kind,
        // `MZ…` text, or `cafebabe` Java classes: not objects we judge.
        Err(_) if magic != b"\x7fELF" => return Ok(()),
        Err(_) if !loads => {
            audit.foreign_files += 1;
            return Ok(());
        }
        Err(e) => {
            return Err(VerifyError::Corrupt {
                file: name.to_owned(),
                format: "ELF",
                reason: e.to_string(),
            })
        }
    };
    match kind {
        FileKind::Elf32 | FileKind::Elf64 => audit_elf(name, data, spec, loads, audit),
        // `cafebabe` is both a fat Mach-O and a Java class file: only loadable names count.
        FileKind::MachOFat32 | FileKind::MachOFat64 if loads => Err(foreign("Mach-O universal (macOS)")),
        FileKind::Pe32 | FileKind::Pe64 if loads => Err(foreign("PE (Windows)")),
        FileKind::MachOFat32 | FileKind::MachOFat64 | FileKind::Pe32 | FileKind::Pe64 => {
            audit.foreign_files += 1;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Audits an ELF file. `loads`: Lambda would load it (see [`loadable`]); one it would not is
/// only counted when it does not fit.
fn audit_elf(name: &str, data: &[u8], spec: &FunctionSpec, loads: bool, audit: &mut Audit) -> Result<(), VerifyError> {
    let corrupt = |e: object::Error| VerifyError::Corrupt {
        file: name.to_owned(),
        format: "ELF",
        reason: e.to_string(),
    };
    let file = match object::File::parse(data) {
        Ok(file) => file,
        Err(_) if !loads => {
            audit.foreign_files += 1;
            return Ok(());
        }
        Err(e) => return Err(corrupt(e)),
    };
    let wanted = match spec.architecture {
        Architecture::X86_64 => object::Architecture::X86_64,
        Architecture::Arm64 => object::Architecture::Aarch64,
    };
    if file.architecture() != wanted || !file.is_64() {
        if !loads {
            audit.foreign_files += 1;
            return Ok(());
        }
        return Err(VerifyError::WrongMachine {
            file: name.to_owned(),
            found: format!(
                "{:?}{}",
                file.architecture(),
                if file.is_64() { "" } else { " (32-bit)" }
            ),
            wanted: spec.architecture.linux_name(),
        });
    }
    audit.elf_files += 1;
    // Only 64-bit little-endian ELF gets here (x86_64 and aarch64 both are).
    let header = object::elf::FileHeader64::<object::Endianness>::parse(data).map_err(corrupt)?;
    let endian = header.endian().map_err(corrupt)?;
    let sections = header.sections(endian, data).map_err(corrupt)?;
    let mut needs: Option<(u32, u32)> = None;
    if let Some((mut verneed, link)) = sections.gnu_verneed(endian, data).map_err(corrupt)? {
        let strings = sections
            .section(link)
            .and_then(|s| s.strings(endian, data))
            .map_err(corrupt)?
            .unwrap_or_default();
        while let Some((_, mut aux)) = verneed.next().map_err(corrupt)? {
            while let Some(vernaux) = aux.next().map_err(corrupt)? {
                let version = vernaux.name(endian, strings).map_err(corrupt)?;
                if let Some(v) = glibc_version(version) {
                    needs = needs.max(Some(v));
                }
            }
        }
    }
    let ((has_major, has_minor), _) = runtime_glibc(&spec.runtime);
    if let Some((major, minor)) = needs {
        if (major, minor) > (has_major, has_minor) {
            if !loads {
                audit.foreign_files += 1;
                return Ok(());
            }
            return Err(VerifyError::Glibc {
                file: name.to_owned(),
                needs: format!("{major}.{minor}"),
                runtime: spec.runtime.clone(),
                has: (has_major, has_minor),
            });
        }
        audit.max_glibc = audit.max_glibc.max(Some((major, minor)));
    }
    if let Some(tag) = cpython_tag(name) {
        if let Some(wanted) = spec.runtime.strip_prefix("python") {
            let digits = tag.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let mut found = format!("{}.{}", &digits[..1], &digits[1..]);
            // `313t`: the free-threaded build, which Lambda's CPython cannot load.
            if tag.contains('t') {
                found.push_str(" free-threaded");
            }
            if found != wanted {
                return Err(VerifyError::CpythonVersion {
                    file: name.to_owned(),
                    found,
                    runtime: spec.runtime.clone(),
                    wanted: wanted.to_owned(),
                });
            }
        }
        audit.cpython_tags.insert(format!("cpython-{tag}"));
    }
    Ok(())
}

/// `GLIBC_2.28` → (2, 28). Not `GLIBC_PRIVATE`.
fn glibc_version(name: &[u8]) -> Option<(u32, u32)> {
    let rest = std::str::from_utf8(name).ok()?.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// `pkg/_x.cpython-311-x86_64-linux-gnu.so` → `311` (`313t` for a free-threaded build);
/// `None` for other names (`abi3`, plain).
fn cpython_tag(name: &str) -> Option<&str> {
    let file = name.rsplit('/').next()?;
    let tag = file.split('.').find_map(|part| part.strip_prefix("cpython-"))?;
    let tag = tag.split('-').next()?;
    let digits = tag.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    (digits.len() >= 2 && digits.chars().all(|c| c.is_ascii_digit())).then_some(tag)
}

/// `bootstrap` of a custom runtime: executable, and an ELF (checked by the audit) or a script
/// with a clean `#!` line.
fn check_bootstrap(data: &[u8], mode: u32, symlink: bool, spec: &FunctionSpec) -> Result<String, VerifyError> {
    if symlink {
        return Ok(format!("symlink to `{}`", String::from_utf8_lossy(data)));
    }
    if mode & 0o111 == 0 {
        return Err(VerifyError::Bootstrap("is not executable".into()));
    }
    if data.starts_with(b"\x7fELF") {
        return Ok(format!("ELF executable, {}", spec.architecture.linux_name()));
    }
    let Some(rest) = data.strip_prefix(b"#!") else {
        return Err(VerifyError::Bootstrap(
            "is neither an ELF executable nor a script starting with `#!`; Lambda cannot run it".into(),
        ));
    };
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = &rest[..line_end];
    if line.contains(&b'\r') {
        return Err(VerifyError::Bootstrap(
            "its `#!` line ends in a carriage return (Windows CRLF line endings), so the kernel looks for an interpreter named with a trailing \\r; save it with LF line endings (e.g. `dos2unix bootstrap`)".into(),
        ));
    }
    let line = String::from_utf8_lossy(line);
    let interpreter = line.split_whitespace().next().unwrap_or("");
    if !interpreter.starts_with('/') {
        return Err(VerifyError::Bootstrap(format!(
            "its `#!` line names `{interpreter}`, which is not an absolute path; use e.g. `#!/bin/sh`"
        )));
    }
    Ok(format!("script, #!{}", line.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    fn spec(runtime: &str, arch: &str) -> FunctionSpec {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest::parse(&format!(
            "runtime = \"{runtime}\"\narchitecture = \"{arch}\"\nhandler = \"app.handler\"\n"
        ))
        .unwrap();
        manifest::resolve(m, dir.path(), "f", "", &manifest::Defaults::default()).unwrap()
    }

    /// A real shared object for this host, compiled by the host's gcc (glibc 2.36 here), that
    /// calls `pthread_create`: since glibc 2.34 that symbol is versioned GLIBC_2.34.
    fn host_extension() -> Vec<u8> {
        auto_lambda_testkit::compile_shared_object(
            "#include <pthread.h>\nstatic void *f(void *a) { return a; }\nint start(void) { pthread_t t; return pthread_create(&t, 0, f, 0); }\n",
        )
    }

    #[test]
    fn names_and_versions() {
        assert_eq!(cpython_tag("a/_x.cpython-311-x86_64-linux-gnu.so"), Some("311"));
        assert_eq!(cpython_tag("_x.cpython-313t-x86_64-linux-gnu.so"), Some("313t"));
        assert_eq!(cpython_tag("_x.abi3.so"), None);
        assert_eq!(glibc_version(b"GLIBC_2.28"), Some((2, 28)));
        assert_eq!(glibc_version(b"GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version(b"GLIBC_PRIVATE"), None);
        assert_eq!(interpreter_of("python3.13"), "3.13");
        assert_eq!(interpreter_of("nodejs20.x"), "20");
        assert_eq!(runtime_glibc("python3.11").0, (2, 26));
        assert_eq!(runtime_glibc("python3.12").0, (2, 34));
    }

    #[test]
    fn foreign_binaries_are_named() {
        let s = spec("python3.13", "x86_64");
        let mut audit = Audit::default();
        let macho = [
            0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1, 3, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let err = audit_file("fastcodec/_speedups.abi3.so", &macho, &s, &mut audit).unwrap_err();
        assert!(
            err.to_string().contains("fastcodec/_speedups.abi3.so") && err.to_string().contains("Mach-O"),
            "{err}"
        );
        // Text that happens to start with MZ is not a binary.
        audit_file("notes.txt", b"MZ is a nice name", &s, &mut audit).unwrap();
    }

    #[test]
    fn elf_machine_glibc_and_tag() {
        let so = host_extension();
        let mut audit = Audit::default();
        // Right interpreter tag and architecture on AL2023: passes, glibc recorded.
        audit_elf(
            "m.cpython-313-x86_64-linux-gnu.so",
            &so,
            &spec("python3.13", "x86_64"),
            true,
            &mut audit,
        )
        .unwrap();
        assert_eq!(audit.elf_files, 1);
        assert!(audit.max_glibc.is_some());
        // Wrong interpreter.
        let err = audit_elf(
            "m.cpython-311-x86_64-linux-gnu.so",
            &so,
            &spec("python3.13", "x86_64"),
            true,
            &mut audit,
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::CpythonVersion { .. }), "{err}");
        // The free-threaded build of the right version.
        let err = audit_elf(
            "m.cpython-313t-x86_64-linux-gnu.so",
            &so,
            &spec("python3.13", "x86_64"),
            true,
            &mut audit,
        )
        .unwrap_err();
        assert!(err.to_string().contains("free-threaded"), "{err}");
        // Wrong architecture.
        let err = audit_elf("m.so", &so, &spec("python3.13", "arm64"), true, &mut audit).unwrap_err();
        assert!(matches!(err, VerifyError::WrongMachine { .. }), "{err}");
        // Amazon Linux 2 has glibc 2.26: GLIBC_2.34 is too new for python3.11.
        let err = audit_elf("m.so", &so, &spec("python3.11", "x86_64"), true, &mut audit).unwrap_err();
        assert!(
            err.to_string().contains("GLIBC_2.34") && err.to_string().contains("2.26"),
            "{err}"
        );
    }

    #[test]
    fn binaries_lambda_would_not_load_are_counted_not_refused() {
        let x86 = spec("python3.13", "x86_64");
        let macho = [0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1];
        let mut audit = Audit::default();
        // selenium's bundled macOS tool, Node prebuilds for other platforms: left alone.
        audit_file(
            "selenium/webdriver/common/macos/selenium-manager",
            &macho,
            &x86,
            &mut audit,
        )
        .unwrap();
        audit_file(
            "node_modules/bufferutil/prebuilds/darwin-x64+arm64/bufferutil.node",
            &macho,
            &x86,
            &mut audit,
        )
        .unwrap();
        let so = host_extension();
        let arm = spec("python3.13", "arm64");
        audit_file("node_modules/x/prebuilds/linux-x64/x.node", &so, &arm, &mut audit).unwrap();
        assert_eq!(audit.foreign_files, 3);
        assert_eq!(audit.elf_files, 0);
        // …but the same file where the loader would pick it is refused.
        assert!(audit_file("node_modules/x/prebuilds/linux-arm64/x.node", &so, &arm, &mut audit).is_err());
        assert!(audit_file("x.node", &so, &arm, &mut audit).is_err());
        assert!(for_another_platform("a/win32-x64/b.node", Architecture::X86_64));
        assert!(!for_another_platform("a/linux-x64/b.node", Architecture::X86_64));
        assert!(!for_another_platform("numpy/_core/x.so", Architecture::X86_64));
    }

    #[test]
    fn bootstrap_lines() {
        let s = spec("provided.al2023", "x86_64");
        assert!(check_bootstrap(b"#!/bin/sh\necho\n", 0o755, false, &s).is_ok());
        let err = check_bootstrap(b"#!/bin/sh\r\necho\r\n", 0o755, false, &s).unwrap_err();
        assert!(err.to_string().contains("carriage return"), "{err}");
        assert!(check_bootstrap(b"echo hi\n", 0o755, false, &s).is_err());
        assert!(check_bootstrap(b"#!/bin/sh\n", 0o644, false, &s).is_err());
        assert!(check_bootstrap(b"#!sh\n", 0o755, false, &s).is_err());
    }
}
