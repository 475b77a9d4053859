//! The `queue-metric-publisher` binary: parse and check the configuration, start logging and
//! the health endpoint, build the AWS clients, then hand over to [`queue_metric_publisher::run`].
#![forbid(unsafe_code)]

use auto_lambda_common::{aws, config, http, shutdown, systemd, telemetry};
use queue_metric_publisher::{metrics, run, Clients, Config};

#[tokio::main]
async fn main() {
    let config: Config = config::parse_args();
    if let Err(err) = config.validate() {
        err.exit();
    }
    telemetry::init(config.log_format);
    let shutdown = shutdown::on_signal();
    if let Some(addr) = config.metrics_addr {
        if let Err(err) = http::serve(addr, metrics::get().registry.clone(), shutdown.clone()).await {
            config::ConfigError::new(
                "--metrics-addr / QMP_METRICS_ADDR",
                format!("cannot listen on {addr}: {err}"),
            )
            .exit();
        }
    }
    let clients = Clients::new(&aws::load_sdk_config(&config.aws).await);
    systemd::ready();
    systemd::spawn_watchdog(shutdown.clone());
    run(config, clients, shutdown).await;
}
