//! `auto-lambda check`: an app as the worker will see it, prepared and checked on this machine
//! with the worker's own code (its unpacker, manifest rules, packager and native-file audit).
//!
//! What can be known without a build container is checked here: the zip unpacks safely (and
//! what the worker would drop, it drops), `lambda.toml` is valid, the runtime and handler are
//! what the worker would pick, the folder-instead-of-contents mistake, every native file in
//! the app (architecture, glibc, CPython version, no macOS or Windows binaries) and a custom
//! runtime's `bootstrap`. Whether the handler imports with its dependencies is the worker's
//! verification stage's business.

use std::path::{Path, PathBuf};

use auto_lambda_worker::artifact::{self, ArtifactError};
use auto_lambda_worker::manifest::{self, FunctionSpec, ManifestError};
use auto_lambda_worker::package::{self, PackageError};
use auto_lambda_worker::verify::{self, Checks, VerifyError};

/// Directory names never zipped from a directory: version control, bytecode and tool caches,
/// and virtual environments (the worker installs the dependencies itself).
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
];

/// How the worker names and configures functions, as far as the uploader knows it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The function name when `lambda.toml` names none: the upload key's file stem.
    pub default_name: String,
    /// The worker's `--function-prefix`.
    pub function_prefix: String,
    /// The worker's default runtimes.
    pub defaults: manifest::Defaults,
}

/// An app prepared for upload.
#[derive(Debug)]
pub struct LocalApp {
    _dir: tempfile::TempDir,
    /// The zip to upload: the user's own zip as it is, or a directory zipped deterministically
    /// (sorted entries, fixed timestamps and permissions), so the same tree gives the same bytes.
    pub zip: PathBuf,
    pub zip_bytes: u64,
    pub spec: FunctionSpec,
    pub checks: Checks,
    /// Entries the worker leaves out (macOS metadata), and, from a directory, what was not
    /// zipped (version control, `__pycache__`).
    pub dropped: Vec<String>,
}

/// Why an app would be refused before any upload. Every one is the uploader's to fix.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0} is neither a directory nor a .zip file")]
    NotAnApp(PathBuf),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the app would not start on Lambda: {0}")]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Prepares and checks the app at `path` (a directory or a zip).
pub fn prepare(path: &Path, options: &Options) -> Result<LocalApp, CheckError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CheckError::Io { path, source }
    };
    let dir = tempfile::tempdir().map_err(io(Path::new("the temporary directory")))?;
    let tree = dir.path().join("app");
    std::fs::create_dir(&tree).map_err(io(&tree))?;
    let (zip, dropped) = if path.is_dir() {
        let copy = dir.path().join("copy");
        std::fs::create_dir(&copy).map_err(io(&copy))?;
        let dropped = copy_app(path, &copy).map_err(io(path))?;
        let zip = dir.path().join("upload.zip");
        package::build(&copy, &zip)?;
        // What the worker will see: the zip unpacked by its own rules (symlinks that leave the
        // app, limits, names).
        artifact::unpack(&zip, &tree, &artifact::Limits::DEFAULT)?;
        (zip, dropped)
    } else if path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        let unpacked = artifact::unpack(path, &tree, &artifact::Limits::DEFAULT)?;
        (path.to_owned(), unpacked.dropped)
    } else {
        return Err(CheckError::NotAnApp(path.to_owned()));
    };
    let zip_bytes = std::fs::metadata(&zip).map_err(io(&zip))?.len();
    let spec = manifest::resolve(
        manifest::read(&tree)?,
        &tree,
        &options.default_name,
        &options.function_prefix,
        &options.defaults,
    )?;
    // The native-file audit, on the app as the worker packages it (its dependencies are
    // built by the worker and audited there).
    let package = dir.path().join("package.zip");
    package::build(&tree, &package)?;
    let audit = verify::audit(&package, &spec, None)?;
    let mut checks = Checks::new();
    checks.insert("elf", audit.summary(spec.architecture));
    if let Some(b) = audit.bootstrap {
        checks.insert("bootstrap", b);
    }
    if let Some(note) = handler_note(&tree, &spec) {
        checks.insert("handler", note);
    }
    Ok(LocalApp {
        _dir: dir,
        zip,
        zip_bytes,
        spec,
        checks,
        dropped,
    })
}

/// Copies the app at `from` into `to`, leaving out version control, bytecode caches and
/// macOS metadata. Returns what was left out (relative paths), sorted.
fn copy_app(from: &Path, to: &Path) -> std::io::Result<Vec<String>> {
    artifact::copy_tree(from, to, |rel, entry| {
        let name = entry.file_name().to_string_lossy();
        // node_modules is rebuilt by the worker (npm ci) when there is a lock file.
        let rebuilt = name == "node_modules"
            && entry
                .path()
                .parent()
                .is_some_and(|p| p.join("package-lock.json").is_file());
        let skipped_dir = entry.file_type().is_dir() && (SKIPPED_DIRS.contains(&name.as_ref()) || rebuilt);
        skipped_dir || artifact::is_macos_metadata(rel)
    })
}

/// A note when the handler's module is not a file of the app (it might still come from a
/// dependency; the worker's import check decides).
fn handler_note(tree: &Path, spec: &FunctionSpec) -> Option<String> {
    let (module, _) = spec.handler.rsplit_once('.')?;
    let module = module.replace('.', "/");
    let found = if spec.runtime.starts_with("python") {
        tree.join(format!("{module}.py")).is_file() || tree.join(&module).is_dir()
    } else if spec.runtime.starts_with("nodejs") {
        ["js", "mjs", "cjs"]
            .iter()
            .any(|ext| tree.join(format!("{module}.{ext}")).is_file())
    } else {
        return None;
    };
    (!found).then(|| {
        format!(
            "module `{module}` is not a file of the app; unless a dependency provides it, the worker will refuse it"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            default_name: "app".into(),
            function_prefix: String::new(),
            defaults: manifest::Defaults::default(),
        }
    }

    #[test]
    fn directories_zip_the_same_whatever_their_junk() {
        let a = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("app.py"), "def handler(e, c):\n    return 1\n").unwrap();
        let one = prepare(a.path(), &options()).unwrap();
        std::fs::create_dir_all(a.path().join("__pycache__")).unwrap();
        std::fs::write(a.path().join("__pycache__/app.cpython-313.pyc"), "x").unwrap();
        std::fs::write(a.path().join(".DS_Store"), "x").unwrap();
        std::fs::create_dir_all(a.path().join(".git")).unwrap();
        std::fs::write(a.path().join(".git/HEAD"), "x").unwrap();
        let two = prepare(a.path(), &options()).unwrap();
        assert_eq!(
            std::fs::read(&one.zip).unwrap(),
            std::fs::read(&two.zip).unwrap(),
            "the same app, the same bytes"
        );
        assert_eq!(two.dropped, [".DS_Store", ".git", "__pycache__"]);
        assert_eq!(two.spec.handler, "app.handler");
    }

    #[test]
    fn manifest_and_layout_mistakes_are_caught() {
        let a = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("app.py"), "").unwrap();
        std::fs::write(a.path().join("lambda.toml"), "memroy = 512\n").unwrap();
        let err = prepare(a.path(), &options()).unwrap_err().to_string();
        assert!(err.contains("memroy"), "{err}");
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(b.path().join("orders-api")).unwrap();
        std::fs::write(b.path().join("orders-api/app.py"), "").unwrap();
        let err = prepare(b.path(), &options()).unwrap_err().to_string();
        assert!(err.contains("orders-api"), "{err}");
    }
}
