//! `auto-lambda`: the uploader's command. `check` an app as the worker would, `push` it and
//! wait for the worker's verdict, read the `status` of an upload. Exit codes are in
//! [`ExitCode`]; `--json` prints the status report for scripts.
#![forbid(unsafe_code)]

mod check;
mod commands;
mod remote;

use std::path::PathBuf;

use auto_lambda_common::aws::AwsArgs;
use clap::{Parser, Subcommand};

/// Deploy apps to AWS Lambda through an auto-lambda bucket: check, push, wait.
///
/// `push` zips a directory the same way every time, checks it with the worker's own rules
/// (lambda.toml, runtime and handler, native files, layout), uploads it under the source
/// prefix, and with --wait follows the worker's status report until it is final. The exit
/// code says how it ended: 0 deployed or unchanged, 1 failed or rolled back, 2 refused by the local check
/// (nothing uploaded), 3 stale-skipped (a newer upload won), 4 timed out waiting, 5 AWS
/// refused or could not be reached, 64 bad usage.
#[derive(Debug, Parser)]
#[command(name = "auto-lambda", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an app (a directory or a zip) as the worker would, without uploading it; print
    /// the function it would deploy.
    Check(CheckArgs),
    /// Check, upload and (with --wait) follow an app to its outcome.
    Push(PushArgs),
    /// The latest status report of an upload key.
    Status(StatusArgs),
}

/// What the uploader knows of the worker's configuration.
#[derive(Debug, Clone, clap::Args)]
struct WorkerArgs {
    /// The workers' --function-prefix, put in front of every function name.
    #[arg(long, env = "AUTO_LAMBDA_FUNCTION_PREFIX", default_value = "")]
    function_prefix: String,
    /// The workers' --default-python-runtime.
    #[arg(long, env = "AUTO_LAMBDA_DEFAULT_PYTHON_RUNTIME", default_value = "python3.14")]
    default_python_runtime: String,
    /// The workers' --default-node-runtime.
    #[arg(long, env = "AUTO_LAMBDA_DEFAULT_NODE_RUNTIME", default_value = "nodejs24.x")]
    default_node_runtime: String,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The app: a directory (zipped as `push` would) or a .zip file.
    app: PathBuf,
    /// The function name a key without lambda.toml `name` gives. Default: the app's name.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    worker: WorkerArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct PushArgs {
    /// The app: a directory (zipped deterministically) or a .zip file (uploaded as it is).
    app: PathBuf,
    /// The auto-lambda bucket.
    #[arg(long, env = "AUTO_LAMBDA_BUCKET")]
    bucket: String,
    /// The key to upload to. Default: <source prefix><app name>.zip; the function is named
    /// after its file stem unless lambda.toml says `name`.
    #[arg(long)]
    key: Option<String>,
    /// The workers' --source-prefix.
    #[arg(long, env = "AUTO_LAMBDA_SOURCE_PREFIX", default_value = "apps/")]
    source_prefix: String,
    /// The workers' --status-prefix.
    #[arg(long, env = "AUTO_LAMBDA_STATUS_PREFIX", default_value = "status/")]
    status_prefix: String,
    /// Follow the status report until it is final, and exit with the outcome.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (exit 4).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    aws: AwsArgs,
    /// Print the status report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The upload key, e.g. apps/hello-api.zip.
    key: String,
    /// The auto-lambda bucket.
    #[arg(long, env = "AUTO_LAMBDA_BUCKET")]
    bucket: String,
    /// The workers' --status-prefix.
    #[arg(long, env = "AUTO_LAMBDA_STATUS_PREFIX", default_value = "status/")]
    status_prefix: String,
    /// Follow the report until it is final.
    #[arg(long)]
    watch: bool,
    /// With --watch: give up after this many seconds (exit 4).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    #[command(flatten)]
    aws: AwsArgs,
    /// Print the status report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How `auto-lambda` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Deployed or unchanged; or a check that passed; or an upload without --wait.
    Ok = 0,
    /// The worker reported `failed`, or `rolled-back` (a gradual deploy's alarm went off).
    Failed = 1,
    /// The local check refused the app; nothing was uploaded.
    Refused = 2,
    /// A newer upload of the same function won (`stale-skipped`).
    Stale = 3,
    /// No final report within --timeout.
    TimedOut = 4,
    /// AWS refused a call or could not be reached.
    Aws = 5,
    /// Bad usage (sysexits.h `EX_USAGE`, as the daemons use for bad configuration).
    Usage = 64,
}

fn main() {
    let cli: Cli = auto_lambda_common::config::parse_args();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start: {err}");
            std::process::exit(ExitCode::Usage as i32);
        }
    };
    let code = runtime.block_on(commands::run(cli.command));
    std::process::exit(code as i32);
}
