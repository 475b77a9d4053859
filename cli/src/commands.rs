//! The three commands, and how their results are printed: text for people on stdout (progress
//! on stderr), or with `--json` one JSON document on stdout for scripts.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use auto_lambda_worker::manifest;
use serde_json::{json, Value};

use crate::check::{self, LocalApp};
use crate::remote::{self, RemoteError};
use crate::{CheckArgs, Command, ExitCode, PushArgs, StatusArgs, WorkerArgs};

/// Runs one command and says how to exit.
pub async fn run(command: Command) -> ExitCode {
    match command {
        Command::Check(args) => check(args),
        Command::Push(args) => push(args).await,
        Command::Status(args) => status(args).await,
    }
}

/// Writes one line to stdout (the command's output; a closed pipe is not an error worth more).
fn say(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stdout().lock(), "{}", line.as_ref());
}

/// The app's name: a directory's name, or a zip's file stem.
fn app_name(app: &Path) -> String {
    let path = std::fs::canonicalize(app).unwrap_or_else(|_| app.to_owned());
    let name = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into())
}

fn options(worker: &WorkerArgs, default_name: String) -> check::Options {
    check::Options {
        default_name,
        function_prefix: worker.function_prefix.clone(),
        defaults: manifest::Defaults {
            python: worker.default_python_runtime.clone(),
            node: worker.default_node_runtime.clone(),
        },
    }
}

/// The local check's result as JSON: the function spec, the checks, what was left out.
fn local_json(app: &LocalApp) -> Value {
    let s = &app.spec;
    json!({
        "function": {
            "name": s.name,
            "runtime": s.runtime,
            "handler": s.handler,
            "architecture": s.architecture.as_str(),
            "memory": s.memory_mb,
            "timeout": s.timeout_secs,
            "environment": s.environment,
            "description": s.description,
            "layers": s.layers,
            "publish": s.publish,
            "alias": s.alias,
            "url": s.url.as_ref().map(|u| json!({"auth": u.auth.as_str(), "cors_origins": u.cors_origins})),
            "deploy": {
                "strategy": s.deploy.strategy.as_str(),
                "schedule": s.deploy.schedule(),
                "interval_secs": s.deploy.interval_secs,
                "alarms": s.deploy.alarms,
            },
        },
        "checks": app.checks,
        "dropped_files": app.dropped,
        "zip_bytes": app.zip_bytes,
    })
}

fn print_local(app: &LocalApp) {
    let s = &app.spec;
    say(format!("function   {}", s.name));
    say(format!(
        "runtime    {}  handler {}  architecture {}",
        s.runtime,
        s.handler,
        s.architecture.as_str()
    ));
    say(format!(
        "config     memory {} MB  timeout {} s  publish {}  alias {}",
        s.memory_mb,
        s.timeout_secs,
        s.publish,
        s.alias.as_deref().unwrap_or("-")
    ));
    if let Some(url) = &s.url {
        say(format!(
            "url        on alias {}, auth {}",
            s.alias.as_deref().unwrap_or("-"),
            url.auth.as_str()
        ));
    }
    if s.deploy.strategy != auto_lambda_worker::manifest::Strategy::AllAtOnce {
        let steps: Vec<String> = s.deploy.schedule().iter().map(|p| format!("{p} %")).collect();
        let alarms = if s.deploy.alarms.is_empty() {
            "no alarms".to_owned()
        } else {
            format!("alarms {}", s.deploy.alarms.join(", "))
        };
        say(format!(
            "deploy     {}: {} every {} s; {alarms}",
            s.deploy.strategy.as_str(),
            steps.join(", "),
            s.deploy.interval_secs
        ));
    }
    for (check, result) in &app.checks {
        say(format!("check      {check}: {result}"));
    }
    if !app.dropped.is_empty() {
        say(format!("left out   {}", app.dropped.join(", ")));
    }
    say(format!("zip        {} bytes", app.zip_bytes));
}

fn check(args: CheckArgs) -> ExitCode {
    let name = args.name.clone().unwrap_or_else(|| app_name(&args.app));
    match check::prepare(&args.app, &options(&args.worker, name)) {
        Ok(app) => {
            if args.json {
                say(local_json(&app).to_string());
            } else {
                print_local(&app);
                say("ok: the worker would accept this app");
            }
            ExitCode::Ok
        }
        Err(err) => refused(&err, args.json),
    }
}

fn refused(err: &check::CheckError, json: bool) -> ExitCode {
    if json {
        say(json!({"outcome": "refused", "error": err.to_string()}).to_string());
    } else {
        eprintln!("error: {err}");
    }
    ExitCode::Refused
}

async fn s3_client(aws: &auto_lambda_common::aws::AwsArgs) -> aws_sdk_s3::Client {
    let sdk = auto_lambda_common::aws::load_sdk_config(aws).await;
    auto_lambda_common::aws::s3_client_with(&sdk, auto_lambda_common::aws::upload_timeouts())
}

async fn push(args: PushArgs) -> ExitCode {
    let started = Instant::now();
    let key = args
        .key
        .clone()
        .unwrap_or_else(|| format!("{}{}.zip", args.source_prefix, app_name(&args.app)));
    if !key.starts_with(&args.source_prefix) || !key.ends_with(".zip") {
        eprintln!(
            "error: --key `{key}` must be under the source prefix `{}` and end in .zip, or no worker will deploy it",
            args.source_prefix
        );
        return ExitCode::Usage;
    }
    let app = match check::prepare(
        &args.app,
        &options(&args.worker, auto_lambda_worker::job::default_name(&key)),
    ) {
        Ok(app) => app,
        Err(err) => return refused(&err, args.json),
    };
    if !args.json {
        print_local(&app);
    }
    let local_ms = started.elapsed().as_millis() as u64;
    let s3 = s3_client(&args.aws).await;
    let uploaded = match remote::upload(&s3, &args.bucket, &key, &app.zip, &args.status_prefix).await {
        Ok(u) => u,
        Err(err) => return aws_error(&err, args.json),
    };
    let upload_ms = started.elapsed().as_millis() as u64 - local_ms;
    if !args.wait {
        if args.json {
            say(
                json!({"outcome": "uploaded", "bucket": args.bucket, "key": key, "status_keys": uploaded.report_keys})
                    .to_string(),
            );
        } else {
            say(format!("uploaded   s3://{}/{key}", args.bucket));
            say(format!(
                "report     s3://{}/{}",
                args.bucket,
                uploaded.report_keys.last().map_or("", String::as_str)
            ));
        }
        return ExitCode::Ok;
    }
    if !args.json {
        say(format!("uploaded   s3://{}/{key}; waiting for the worker", args.bucket));
    }
    let waited = remote::wait(&s3, &uploaded, Duration::from_secs(args.timeout), progress).await;
    let wait_ms = started.elapsed().as_millis() as u64 - local_ms - upload_ms;
    let client = json!({"local_ms": local_ms, "upload_ms": upload_ms, "wait_ms": wait_ms});
    finish(waited, args.timeout, args.json, Some(client))
}

/// Progress while waiting, on stderr: the time waited, and what a non-final report says.
fn progress(waited: Duration, latest: Option<&Value>) {
    let note = match latest {
        Some(r) if r["outcome"] == "shifting" => format!(
            " (shifting: {} % on version {}, next step at {})",
            r["shift"]["percent"],
            r["shift"]["to_version"].as_str().unwrap_or("?"),
            r["shift"]["next_step_at"].as_str().unwrap_or("?")
        ),
        Some(r) => format!(
            " (attempt {} failed, retrying: {})",
            r["attempt"],
            r["error"].as_str().unwrap_or("")
        ),
        None => String::new(),
    };
    eprintln!("waiting    {} s{note}", waited.as_secs());
}

fn aws_error(err: &RemoteError, json: bool) -> ExitCode {
    if json {
        say(json!({"outcome": "error", "error": err.to_string()}).to_string());
    } else {
        eprintln!("error: {err}");
    }
    ExitCode::Aws
}

/// Prints a final report (or the time-out) and picks the exit code.
fn finish(waited: Result<Option<Value>, RemoteError>, timeout: u64, json: bool, client: Option<Value>) -> ExitCode {
    let mut report = match waited {
        Err(err) => return aws_error(&err, json),
        Ok(None) => {
            if json {
                say(json!({"outcome": "timed-out", "timeout_secs": timeout, "client": client}).to_string());
            } else {
                eprintln!("error: no final status report within {timeout} s; is a worker running? (its log says why)");
            }
            return ExitCode::TimedOut;
        }
        Ok(Some(report)) => report,
    };
    let code = match report["outcome"].as_str() {
        _ if !remote::is_final(&report) => ExitCode::TimedOut,
        Some("deployed" | "unchanged") => ExitCode::Ok,
        Some("stale-skipped") => ExitCode::Stale,
        _ => ExitCode::Failed,
    };
    if json {
        if let (Some(obj), Some(client)) = (report.as_object_mut(), client) {
            obj.insert("client".into(), client);
        }
        say(report.to_string());
    } else {
        print_report(&report);
        if let Some(c) = client {
            say(format!(
                "time       local {} ms, upload {} ms, worker {} ms",
                c["local_ms"], c["upload_ms"], c["wait_ms"]
            ));
        }
    }
    code
}

fn print_report(r: &Value) {
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let mut outcome = text(&r["outcome"]);
    if let Some(class) = r["error_class"].as_str() {
        outcome.push_str(&format!(" ({class})"));
    }
    say(format!("outcome    {outcome}"));
    if let Some(name) = r["function_name"].as_str() {
        say(format!(
            "function   {name}  {}",
            r["function_arn"].as_str().unwrap_or("")
        ));
    }
    if !r["version"].is_null() {
        let alias = r["alias"].as_str().map(|a| format!("  alias {a}")).unwrap_or_default();
        say(format!("version    {}{alias}", text(&r["version"])));
    }
    if let Some(sha) = r["code_sha256"].as_str() {
        say(format!("sha256     {sha}"));
    }
    if let Some(url) = r["url"].as_str() {
        say(format!("url        {url}"));
    }
    if let Some(shift) = r["shift"].as_object() {
        let next = shift
            .get("next_step_at")
            .and_then(Value::as_str)
            .map(|t| format!(", next step at {t}"))
            .unwrap_or_default();
        say(format!(
            "shift      {} from version {} to {}: {} %, step {} of {}{next}",
            text(&r["shift"]["strategy"]),
            text(&r["shift"]["from_version"]),
            text(&r["shift"]["to_version"]),
            r["shift"]["percent"],
            r["shift"]["step"],
            r["shift"]["steps"]
        ));
    }
    if let Some(from) = r["dependencies_from"].as_str() {
        let built_on = match r["built_on"].as_str() {
            Some("container") => " in a build container".to_owned(),
            Some(on) => format!(" on the {on}"),
            None => String::new(),
        };
        say(format!(
            "deps       {from} ({}, {}{built_on})",
            r["dependencies"].as_str().unwrap_or("-"),
            r["installer"].as_str().unwrap_or("-")
        ));
    }
    if let Some(checks) = r["checks"].as_object() {
        for (check, result) in checks {
            say(format!("verified   {check}: {}", text(result)));
        }
    }
    if let Some(stages) = r["timings_ms"].as_object() {
        let line: Vec<String> = stages.iter().map(|(k, v)| format!("{k} {v} ms")).collect();
        say(format!("stages     {}", line.join(", ")));
    }
    if let Some(error) = r["error"].as_str() {
        say(format!("error      {error}"));
    }
    if let Some(log) = r["build_log_tail"].as_str().filter(|_| r["outcome"] == "failed") {
        match r["build_log"].as_str() {
            Some(uri) => say(format!("log tail (whole log: {uri}):")),
            None => say("log tail:"),
        }
        for line in log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev() {
            say(format!("  {line}"));
        }
    }
}

async fn status(args: StatusArgs) -> ExitCode {
    let s3 = s3_client(&args.aws).await;
    if !args.watch {
        let report = remote::latest(&s3, &args.bucket, &args.key, &args.status_prefix).await;
        return match report {
            Ok(report) => finish(Ok(Some(report)), args.timeout, args.json, None),
            Err(err) => aws_error(&err, args.json),
        };
    }
    // --watch follows the object stored at the key now, not an earlier upload's report.
    let upload = match remote::current(&s3, &args.bucket, &args.key, None, &args.status_prefix).await {
        Ok(upload) => upload,
        Err(err) => return aws_error(&err, args.json),
    };
    let waited = remote::wait(&s3, &upload, Duration::from_secs(args.timeout), progress).await;
    finish(waited, args.timeout, args.json, None)
}
