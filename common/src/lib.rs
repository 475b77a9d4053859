//! What both auto-lambda binaries share: one way to build AWS clients ([`aws`]), one way to
//! set up logging ([`telemetry`]), one shutdown signal ([`shutdown`]), one /metrics and /healthz server ([`http`]), systemd notifications ([`systemd`]) and one way to refuse
//! bad configuration ([`config`]).
#![forbid(unsafe_code)]

pub mod aws;
pub mod config;
pub mod http;
pub mod shutdown;
pub mod systemd;
pub mod telemetry;
