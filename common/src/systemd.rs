//! Talking to systemd: `READY=1` once the service is really serving, `WATCHDOG=1` while it is
//! alive, `STOPPING=1` on shutdown. Every call is a no-op outside systemd (no NOTIFY_SOCKET).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Tells systemd that start-up is done (`Type=notify` units wait for this).
pub fn ready() {
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %err, "Cannot notify systemd of readiness.");
    }
}

/// Tells systemd that shutdown has begun.
pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// If the unit has `WatchdogSec=`, pings the watchdog at half its interval until `shutdown`.
/// The pings run on the same runtime as the service, so a wedged runtime stops them and
/// systemd restarts the service.
pub fn spawn_watchdog(shutdown: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(Duration::from_millis(500));
    tokio::spawn(async move {
        loop {
            if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                tracing::warn!(error = %err, "Cannot ping the systemd watchdog.");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}
