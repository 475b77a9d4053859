//! The `auto-lambda-worker` binary: parse and check the configuration, start logging and
//! metrics, build the AWS clients, then hand over to [`auto_lambda_worker::run`].
#![forbid(unsafe_code)]

use auto_lambda_common::{aws, config, shutdown, systemd, telemetry};
use auto_lambda_worker::{metrics, preflight, run, Clients, Config};

#[tokio::main]
async fn main() {
    // Fault injection for the tests; a no-op unless built with the `failpoints` feature.
    let _failpoints = fail::FailScenario::setup();
    let config: Config = config::parse_args();
    if let Err(err) = config.validate() {
        err.exit();
    }
    telemetry::init(config.log_format);
    let shutdown = shutdown::on_signal();
    if let Some(addr) = config.metrics_addr {
        if let Err(err) = metrics::serve(addr, shutdown.clone()).await {
            config::ConfigError::new(
                "--metrics-addr / AUTO_LAMBDA_METRICS_ADDR",
                format!("cannot listen on {addr}: {err}"),
            )
            .exit();
        }
    }
    let clients = Clients::new(&aws::load_sdk_config(&config.aws).await);
    if let Err(err) = preflight(&config, &clients).await {
        if err.is_transient() {
            config::exit_tempfail(&err);
        }
        config::ConfigError::new("--queue-url / --endpoint-url", err.to_string()).exit();
    }
    systemd::ready();
    systemd::spawn_watchdog(shutdown.clone());
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        systemd::stopping();
    });
    if let Err(err) = run(config, clients, shutdown).await {
        if err.is_transient() {
            config::exit_tempfail(&err);
        }
        config::ConfigError::new("start-up", err.to_string()).exit();
    }
}
