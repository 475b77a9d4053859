//! The `queue-metric-publisher` binary: parse and check the configuration, start logging,
//! build the AWS clients, then hand over to [`queue_metric_publisher::run`].
#![forbid(unsafe_code)]

use auto_lambda_common::{aws, config, shutdown, telemetry};
use queue_metric_publisher::{run, Clients, Config};

#[tokio::main]
async fn main() {
    let config: Config = config::parse_args();
    if let Err(err) = config.validate() {
        err.exit();
    }
    telemetry::init(config.log_format);
    let shutdown = shutdown::on_signal();
    let clients = Clients::new(&aws::load_sdk_config(&config.aws).await);
    run(config, clients, shutdown).await;
}
