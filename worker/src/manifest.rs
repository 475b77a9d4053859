//! `lambda.toml`: what an uploaded app may say about itself, and the defaults for everything
//! it does not say.
//!
//! Unknown keys are an error that names the key, so that a typo (`memroy = 512`) is never
//! silently ignored. Values are checked against Lambda's own limits before any AWS call.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The manifest's file name, at the root of the zip.
pub const FILE_NAME: &str = "lambda.toml";

/// Runtimes the worker knows how to package.
pub const SUPPORTED_RUNTIMES: &[&str] = &[
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "provided.al2",
    "provided.al2023",
];

/// The file as written by the user. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub architecture: Option<String>,
    pub memory: Option<i64>,
    pub timeout: Option<i64>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub description: Option<String>,
    #[serde(default)]
    pub layers: Vec<String>,
    pub publish: Option<bool>,
    pub alias: Option<String>,
}

/// CPU architecture of the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    X86_64,
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// The name Linux and the manylinux tags use: `x86_64` or `aarch64`.
    pub fn linux_name(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "aarch64",
        }
    }
}

/// The function to deploy: the manifest with every default filled in and every value checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub architecture: Architecture,
    pub memory_mb: i32,
    pub timeout_secs: i32,
    pub environment: BTreeMap<String, String>,
    pub description: String,
    pub layers: Vec<String>,
    pub publish: bool,
    pub alias: Option<String>,
}

/// Why a manifest cannot be used. Always permanent: the upload must change.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read lambda.toml: {0}")]
    Read(#[source] std::io::Error),
    #[error("lambda.toml is invalid: {0}")]
    Syntax(String),
    #[error("lambda.toml: {field} {problem}")]
    Invalid { field: &'static str, problem: String },
    #[error("cannot detect the runtime: no lambda_function.py/app.py/handler.py/main.py, index.js/index.mjs or bootstrap at the zip root; set `runtime` in lambda.toml")]
    UnknownRuntime,
    #[error("every file in the zip is inside the folder `{0}/`, so Lambda would find nothing at the package root: zip the folder's contents, not the folder (e.g. `cd {0} && zip -r ../app.zip .`)")]
    NestedApp(String),
    #[error("runtime `{0}` is not supported; use one of: {list}", list = SUPPORTED_RUNTIMES.join(", "))]
    UnsupportedRuntime(String),
    #[error("invalid function name `{0}`: use 1 to 64 letters, digits, hyphens or underscores")]
    InvalidName(String),
}

/// Reads `lambda.toml` from the root of the unpacked app, if there is one.
pub fn read(root: &Path) -> Result<Manifest, ManifestError> {
    match std::fs::read_to_string(root.join(FILE_NAME)) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(ManifestError::Read(e)),
    }
}

/// Parses manifest text. The error names the offending key and line.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string().trim().replace('\n', " ")))
}

/// The runtimes an app without `runtime` in its lambda.toml gets, by language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub python: String,
    pub node: String,
}

impl Default for Defaults {
    /// The newest of each that Lambda supports
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html>).
    fn default() -> Self {
        Self {
            python: "python3.14".into(),
            node: "nodejs24.x".into(),
        }
    }
}

/// Fills in defaults and checks every value.
///
/// `default_name` is the key's file stem; `prefix` is prepended to whatever name is chosen, so
/// that IAM can scope the worker to `function:<prefix>*`. `defaults` gives the runtime of an
/// app that names none.
pub fn resolve(
    manifest: Manifest,
    root: &Path,
    default_name: &str,
    prefix: &str,
    defaults: &Defaults,
) -> Result<FunctionSpec, ManifestError> {
    let name = format!("{prefix}{}", manifest.name.as_deref().unwrap_or(default_name));
    validate_name(&name)?;

    let runtime = match manifest.runtime {
        Some(r) => r,
        None => match detect_runtime(root) {
            Some(Language::Python) => defaults.python.clone(),
            Some(Language::Node) => defaults.node.clone(),
            Some(Language::Provided) => "provided.al2023".to_owned(),
            None => return Err(nested_folder(root).map_or(ManifestError::UnknownRuntime, ManifestError::NestedApp)),
        },
    };
    if !SUPPORTED_RUNTIMES.contains(&runtime.as_str()) {
        return Err(ManifestError::UnsupportedRuntime(runtime));
    }
    let handler = match manifest.handler {
        Some(h) if h.trim().is_empty() => return Err(invalid("handler", "must not be empty")),
        Some(h) => h,
        None => default_handler(root, &runtime),
    };
    let architecture = match manifest.architecture.as_deref() {
        None | Some("x86_64") => Architecture::X86_64,
        Some("arm64") => Architecture::Arm64,
        Some(other) => {
            return Err(invalid(
                "architecture",
                format!("`{other}` must be `x86_64` or `arm64`"),
            ))
        }
    };
    let memory_mb = in_range("memory", manifest.memory.unwrap_or(128), 128, 10_240)?;
    let timeout_secs = in_range("timeout", manifest.timeout.unwrap_or(30), 1, 900)?;
    let description = manifest.description.unwrap_or_default();
    if description.chars().count() > 256 {
        return Err(invalid("description", "is longer than 256 characters"));
    }
    if manifest.layers.len() > 5 {
        return Err(invalid("layers", "lists more than 5 layers"));
    }
    for key in manifest.environment.keys() {
        let ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok || key.starts_with("AWS_") {
            return Err(invalid(
                "environment",
                format!("key `{key}` must be letters, digits and _, start with a letter, and not start with AWS_"),
            ));
        }
    }
    if let Some(alias) = &manifest.alias {
        let ok = !alias.is_empty()
            && alias.len() <= 128
            && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !alias.chars().all(|c| c.is_ascii_digit());
        if !ok {
            return Err(invalid(
                "alias",
                format!("`{alias}` must be letters, digits, - or _, and not only digits"),
            ));
        }
    }
    let publish = manifest.publish.unwrap_or(true);
    if manifest.alias.is_some() && !publish {
        return Err(invalid(
            "alias",
            "needs `publish = true`: an alias points at a published version",
        ));
    }
    Ok(FunctionSpec {
        name,
        runtime,
        handler,
        architecture,
        memory_mb,
        timeout_secs,
        environment: manifest.environment,
        description,
        layers: manifest.layers,
        publish,
        alias: manifest.alias,
    })
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field,
        problem: problem.into(),
    }
}

fn in_range(field: &'static str, value: i64, min: i64, max: i64) -> Result<i32, ManifestError> {
    if (min..=max).contains(&value) {
        Ok(value as i32)
    } else {
        Err(invalid(
            field,
            format!("= {value} is outside Lambda's range {min}..={max}"),
        ))
    }
}

/// Lambda function names: 1–64 of `[A-Za-z0-9_-]`.
pub fn validate_name(name: &str) -> Result<(), ManifestError> {
    let ok = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ManifestError::InvalidName(name.to_owned()))
    }
}

const PYTHON_ENTRY_POINTS: &[(&str, &str)] = &[
    ("lambda_function.py", "lambda_function.lambda_handler"),
    ("app.py", "app.handler"),
    ("handler.py", "handler.handler"),
    ("main.py", "main.handler"),
];

/// The language an app is written in, as far as its root files tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Python,
    Node,
    Provided,
}

/// Detects the language from the files at the root of the app.
pub fn detect_runtime(root: &Path) -> Option<Language> {
    let has = |f: &str| root.join(f).is_file();
    if PYTHON_ENTRY_POINTS.iter().any(|(f, _)| has(f)) || has("requirements.txt") {
        Some(Language::Python)
    } else if has("package.json") || has("index.js") || has("index.mjs") {
        Some(Language::Node)
    } else if has("bootstrap") {
        Some(Language::Provided)
    } else {
        None
    }
}

/// The one folder the whole app sits in, when the root holds nothing else (a zip of the
/// folder rather than of its contents).
pub fn nested_folder(root: &Path) -> Option<String> {
    let mut entries = std::fs::read_dir(root).ok()?.flatten();
    let only = entries.next()?;
    if entries.next().is_some() || !only.file_type().ok()?.is_dir() {
        return None;
    }
    only.file_name().to_str().map(str::to_owned)
}

fn default_handler(root: &Path, runtime: &str) -> String {
    if runtime.starts_with("python") {
        PYTHON_ENTRY_POINTS
            .iter()
            .find(|(f, _)| root.join(f).is_file())
            .map_or("lambda_function.lambda_handler", |(_, h)| h)
            .to_owned()
    } else if runtime.starts_with("nodejs") {
        "index.handler".to_owned()
    } else {
        "bootstrap".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        dir
    }

    #[test]
    fn defaults_from_files() {
        let dir = app(&["app.py"]);
        let spec = resolve(
            Manifest::default(),
            dir.path(),
            "hello-api",
            "al-",
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(spec.name, "al-hello-api");
        assert_eq!(spec.runtime, "python3.14", "the newest Python Lambda supports");
        assert_eq!(spec.handler, "app.handler");
        assert_eq!(spec.architecture, Architecture::X86_64);
        assert_eq!((spec.memory_mb, spec.timeout_secs), (128, 30));
        let dir = app(&["index.mjs"]);
        assert_eq!(
            resolve(Manifest::default(), dir.path(), "n", "", &Defaults::default())
                .unwrap()
                .handler,
            "index.handler"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("memroy = 512").unwrap_err().to_string();
        assert!(err.contains("memroy"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse("memory = \"lots\"").unwrap_err().to_string();
        assert!(err.contains("memory"), "{err}");
    }

    #[test]
    fn values_checked_against_lambda_limits() {
        let dir = app(&["app.py"]);
        let m = parse("memory = 64").unwrap();
        let err = resolve(m, dir.path(), "f", "", &Defaults::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("memory") && err.contains("128"), "{err}");
        let m = parse("timeout = 901").unwrap();
        assert!(resolve(m, dir.path(), "f", "", &Defaults::default())
            .unwrap_err()
            .to_string()
            .contains("timeout"));
        let m = parse("runtime = \"cobol85\"").unwrap();
        assert!(matches!(
            resolve(m, dir.path(), "f", "", &Defaults::default()),
            Err(ManifestError::UnsupportedRuntime(_))
        ));
        assert!(matches!(
            resolve(Manifest::default(), dir.path(), "my app", "", &Defaults::default()),
            Err(ManifestError::InvalidName(_))
        ));
        let m = parse("environment = { AWS_REGION = \"x\" }").unwrap();
        assert!(resolve(m, dir.path(), "f", "", &Defaults::default()).is_err());
    }

    #[test]
    fn runtime_required_when_undetectable() {
        let dir = app(&["README.md"]);
        assert!(matches!(
            resolve(Manifest::default(), dir.path(), "f", "", &Defaults::default()),
            Err(ManifestError::UnknownRuntime)
        ));
    }

    #[test]
    fn one_top_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("orders-api")).unwrap();
        std::fs::write(dir.path().join("orders-api/app.py"), "x").unwrap();
        let err = resolve(Manifest::default(), dir.path(), "f", "", &Defaults::default()).unwrap_err();
        assert!(
            matches!(err, ManifestError::NestedApp(ref f) if f == "orders-api"),
            "{err}"
        );
        assert!(err.to_string().contains("zip the folder's contents"), "{err}");
    }

    #[test]
    fn full_manifest() {
        let dir = app(&["app.py"]);
        let m = parse(
            r#"
            name = "orders"
            runtime = "python3.11"
            handler = "app.main"
            architecture = "arm64"
            memory = 512
            timeout = 60
            description = "Orders API"
            layers = ["arn:aws:lambda:us-east-1:123456789012:layer:x:1"]
            publish = true
            alias = "live"
            [environment]
            STAGE = "prod"
            "#,
        )
        .unwrap();
        let spec = resolve(m, dir.path(), "ignored", "", &Defaults::default()).unwrap();
        assert_eq!(spec.name, "orders");
        assert_eq!(spec.architecture, Architecture::Arm64);
        assert_eq!(spec.alias.as_deref(), Some("live"));
        assert_eq!(spec.environment["STAGE"], "prod");
    }
}
