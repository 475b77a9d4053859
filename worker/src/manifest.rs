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
    /// `[url]`: a function URL on the alias.
    pub url: Option<UrlTable>,
    /// `[deploy]`: how traffic moves to a new version.
    pub deploy: Option<DeployTable>,
}

/// `[url]` as written; checked into a [`UrlSpec`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlTable {
    /// `NONE` or `AWS_IAM` (the default).
    pub auth: Option<String>,
    /// CORS `AllowOrigins`: `*` or origins such as `https://example.com`.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// CORS `AllowMethods`: GET, PUT, HEAD, POST, PATCH, DELETE or `*`.
    #[serde(default)]
    pub cors_methods: Vec<String>,
    /// CORS `AllowHeaders`.
    #[serde(default)]
    pub cors_headers: Vec<String>,
    /// CORS `ExposeHeaders`.
    #[serde(default)]
    pub cors_expose_headers: Vec<String>,
    /// CORS `MaxAge`, seconds.
    pub cors_max_age: Option<i64>,
    /// CORS `AllowCredentials`.
    pub cors_allow_credentials: Option<bool>,
}

/// `[deploy]` as written; checked into a [`DeploySpec`], whose fields say what each means.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployTable {
    /// `all-at-once`, `canary` or `linear`.
    pub strategy: Option<String>,
    /// Percent per step, 1..=99.
    pub percent: Option<i64>,
    /// Seconds between steps, 1..=86400.
    pub interval_secs: Option<i64>,
    /// CloudWatch alarm names.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// Whether an alarm in ALARM before the deploy stops it.
    pub block_on_alarm: Option<bool>,
}

/// Who may call a function URL (Lambda's `FunctionUrlAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlAuth {
    /// Anyone: the worker adds the resource-based permission public invoke needs.
    None,
    /// Callers signing with SigV4 whose IAM policy allows `lambda:InvokeFunctionUrl`.
    AwsIam,
}

impl UrlAuth {
    /// As Lambda spells it (`FunctionUrlAuthType`): `NONE`, `AWS_IAM`.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlAuth::None => "NONE",
            UrlAuth::AwsIam => "AWS_IAM",
        }
    }
}

/// A function URL on the alias, with its CORS settings (empty lists: no CORS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlSpec {
    pub auth: UrlAuth,
    pub cors_origins: Vec<String>,
    pub cors_methods: Vec<String>,
    pub cors_headers: Vec<String>,
    pub cors_expose_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer, 0..=86400.
    pub cors_max_age: Option<i32>,
    pub cors_allow_credentials: Option<bool>,
}

/// How traffic moves from the alias's version to a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The alias moves in one step (the default).
    AllAtOnce,
    /// `percent` of traffic for one interval, then all.
    Canary,
    /// `percent` more every interval.
    Linear,
}

impl Strategy {
    /// As lambda.toml spells it: `all-at-once`, `canary`, `linear`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::AllAtOnce => "all-at-once",
            Strategy::Canary => "canary",
            Strategy::Linear => "linear",
        }
    }
}

/// `[deploy]` checked, with defaults: 10 % every 300 s, like CodeDeploy's
/// `LambdaCanary10Percent5Minutes` and `LambdaLinear10PercentEvery1Minute` shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploySpec {
    pub strategy: Strategy,
    /// Canary: the first step; linear: each step. 1..=99.
    pub percent: u8,
    /// Seconds between steps, 1..=86400.
    pub interval_secs: u32,
    /// CloudWatch alarm names; any in ALARM during the shift rolls it back.
    pub alarms: Vec<String>,
    /// Whether an alarm already in ALARM when the shift would start stops it (default: no;
    /// such an alarm is ignored until it leaves ALARM, so a broken alarm cannot block a fix).
    pub block_on_alarm: bool,
}

impl Default for DeploySpec {
    fn default() -> Self {
        Self {
            strategy: Strategy::AllAtOnce,
            percent: 10,
            interval_secs: 300,
            alarms: Vec::new(),
            block_on_alarm: false,
        }
    }
}

impl DeploySpec {
    /// The percent of traffic on the new version after each step, ending at 100: canary 10
    /// → `[10, 100]`, linear 30 → `[30, 60, 90, 100]`, all-at-once → `[100]`.
    pub fn schedule(&self) -> Vec<u8> {
        let p = self.percent.clamp(1, 99);
        match self.strategy {
            Strategy::AllAtOnce => vec![100],
            Strategy::Canary => vec![p, 100],
            Strategy::Linear => (1..)
                .map(|k: u32| (u32::from(p) * k).min(100) as u8)
                .take_while(|&v| v < 100)
                .chain([100])
                .collect(),
        }
    }
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
    pub url: Option<UrlSpec>,
    pub deploy: DeploySpec,
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
    let url = manifest.url.map(resolve_url).transpose()?;
    if url.is_some() && manifest.alias.is_none() {
        return Err(invalid(
            "url",
            "needs `alias`: the URL sits on the alias, so that it always reaches the version traffic is on",
        ));
    }
    let deploy = manifest.deploy.map(resolve_deploy).transpose()?.unwrap_or_default();
    if deploy.strategy != Strategy::AllAtOnce && manifest.alias.is_none() {
        return Err(invalid(
            "deploy",
            format!(
                "strategy `{}` needs `alias`: traffic shifts between versions on an alias",
                deploy.strategy.as_str()
            ),
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
        url,
        deploy,
    })
}

/// CORS limits from Lambda's API reference (`Cors`): at most 100 origins, 6 methods, 100
/// headers; MaxAge 0..=86400.
fn resolve_url(t: UrlTable) -> Result<UrlSpec, ManifestError> {
    let auth = match t.auth.as_deref() {
        Some("NONE") => UrlAuth::None,
        Some("AWS_IAM") | None => UrlAuth::AwsIam,
        Some(other) => return Err(invalid("url.auth", format!("`{other}` must be `NONE` or `AWS_IAM`"))),
    };
    for origin in &t.cors_origins {
        let ok = origin == "*" || origin.starts_with("https://") || origin.starts_with("http://");
        if !ok || origin.len() > 253 {
            return Err(invalid(
                "url.cors_origins",
                format!("`{origin}` must be `*` or an origin such as `https://example.com`"),
            ));
        }
    }
    const METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "*"];
    for method in &t.cors_methods {
        if !METHODS.contains(&method.as_str()) {
            return Err(invalid(
                "url.cors_methods",
                format!("`{method}` must be one of {}", METHODS.join(", ")),
            ));
        }
    }
    if t.cors_origins.len() > 100 || t.cors_headers.len() > 100 || t.cors_expose_headers.len() > 100 {
        return Err(invalid("url", "CORS lists hold at most 100 entries"));
    }
    let cors_max_age = t
        .cors_max_age
        .map(|v| in_range("url.cors_max_age", v, 0, 86_400))
        .transpose()?;
    Ok(UrlSpec {
        auth,
        cors_origins: t.cors_origins,
        cors_methods: t.cors_methods,
        cors_headers: t.cors_headers,
        cors_expose_headers: t.cors_expose_headers,
        cors_max_age,
        cors_allow_credentials: t.cors_allow_credentials,
    })
}

fn resolve_deploy(t: DeployTable) -> Result<DeploySpec, ManifestError> {
    let defaults = DeploySpec::default();
    let strategy = match t.strategy.as_deref() {
        None | Some("all-at-once") => Strategy::AllAtOnce,
        Some("canary") => Strategy::Canary,
        Some("linear") => Strategy::Linear,
        Some(other) => {
            return Err(invalid(
                "deploy.strategy",
                format!("`{other}` must be `all-at-once`, `canary` or `linear`"),
            ))
        }
    };
    let percent = in_range(
        "deploy.percent",
        t.percent.unwrap_or(i64::from(defaults.percent)),
        1,
        99,
    )? as u8;
    let interval_secs = in_range(
        "deploy.interval_secs",
        t.interval_secs.unwrap_or(i64::from(defaults.interval_secs)),
        1,
        86_400,
    )? as u32;
    // DescribeAlarms takes at most 100 names (API reference, DescribeAlarms: AlarmNames).
    if t.alarms.len() > 100 {
        return Err(invalid("deploy.alarms", "lists more than 100 alarms"));
    }
    if let Some(bad) = t.alarms.iter().find(|a| a.trim().is_empty() || a.len() > 255) {
        return Err(invalid(
            "deploy.alarms",
            format!("`{bad}` is not an alarm name (1 to 255 characters)"),
        ));
    }
    if strategy == Strategy::AllAtOnce && (!t.alarms.is_empty() || t.block_on_alarm.is_some()) {
        return Err(invalid(
            "deploy.alarms",
            "are read only during a gradual deploy: set `strategy = \"canary\"` or `\"linear\"`, or remove them",
        ));
    }
    Ok(DeploySpec {
        strategy,
        percent,
        interval_secs,
        alarms: t.alarms,
        block_on_alarm: t.block_on_alarm.unwrap_or(false),
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
    fn url_and_deploy_tables() {
        let dir = app(&["app.py"]);
        let m = parse(
            r#"
            alias = "live"
            [url]
            auth = "NONE"
            cors_origins = ["https://example.com"]
            cors_methods = ["GET", "POST"]
            [deploy]
            strategy = "linear"
            percent = 30
            interval_secs = 2
            alarms = ["orders-errors"]
            "#,
        )
        .unwrap();
        let spec = resolve(m, dir.path(), "f", "", &Defaults::default()).unwrap();
        let url = spec.url.unwrap();
        assert_eq!(url.auth, UrlAuth::None);
        assert_eq!(url.cors_origins, ["https://example.com"]);
        assert_eq!(spec.deploy.strategy, Strategy::Linear);
        assert_eq!(spec.deploy.schedule(), [30, 60, 90, 100]);
        assert_eq!(spec.deploy.alarms, ["orders-errors"]);

        let canary = DeploySpec {
            strategy: Strategy::Canary,
            ..DeploySpec::default()
        };
        assert_eq!(canary.schedule(), [10, 100]);
        assert_eq!(
            (canary.interval_secs, canary.percent),
            (300, 10),
            "the documented defaults"
        );
        assert_eq!(DeploySpec::default().schedule(), [100]);
        let ten = DeploySpec {
            strategy: Strategy::Linear,
            ..DeploySpec::default()
        };
        assert_eq!(ten.schedule().len(), 10, "10 % steps end at 100 without a repeat");
    }

    #[test]
    fn url_and_shift_need_an_alias_and_valid_values() {
        let dir = app(&["app.py"]);
        for (toml, names) in [
            ("[url]\nauth = \"NONE\"", "url"),
            ("[deploy]\nstrategy = \"canary\"", "alias"),
            ("alias = \"live\"\n[url]\nauth = \"PUBLIC\"", "url.auth"),
            (
                "alias = \"live\"\n[url]\ncors_origins = [\"example.com\"]",
                "url.cors_origins",
            ),
            (
                "alias = \"live\"\n[deploy]\nstrategy = \"blue-green\"",
                "deploy.strategy",
            ),
            (
                "alias = \"live\"\n[deploy]\nstrategy = \"canary\"\npercent = 100",
                "deploy.percent",
            ),
            ("alias = \"live\"\n[deploy]\ninterval_secs = 0", "deploy.interval_secs"),
            ("alias = \"live\"\n[deploy]\nalarms = [\"errors\"]", "gradual deploy"),
        ] {
            let err = resolve(parse(toml).unwrap(), dir.path(), "f", "", &Defaults::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(names), "{toml}: {err}");
        }
        let err = parse("[deploy]\nstratgy = \"canary\"").unwrap_err().to_string();
        assert!(err.contains("stratgy"), "{err}");
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
