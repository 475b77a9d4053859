//! A steady cadence: run a task at every multiple of a period from start, without drift.
//!
//! Each tick is scheduled on the grid `start + n × period`, not "period after the last one
//! finished", so slow calls do not push later samples back. A tick that is still running when
//! the next one is due is cut off (and counted), so one hung API call cannot stall the
//! publisher; missed ticks are skipped, never bunched up.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Calls `tick(scheduled_at)` every `period` until `shutdown` is cancelled, or once if `once`.
/// Returns the number of ticks that were cut off at the period.
pub async fn every<F, Fut>(period: Duration, once: bool, shutdown: &CancellationToken, mut tick: F) -> u64
where
    F: FnMut(Instant) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut cut_off = 0;
    loop {
        let scheduled = tokio::select! {
            _ = shutdown.cancelled() => break,
            at = interval.tick() => at,
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            done = tokio::time::timeout(period, tick(scheduled)) => {
                if done.is_err() {
                    cut_off += 1;
                    tracing::warn!(period_ms = period.as_millis() as u64, "A tick took longer than the period and was cut off.");
                }
            }
        }
        if once {
            break;
        }
    }
    cut_off
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Runs `every` with a tick that takes `work` and returns when each tick started,
    /// relative to the start, in seconds.
    async fn starts(period: u64, work: u64, run_for: u64) -> (Vec<u64>, u64) {
        let start = Instant::now();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(run_for)).await;
            stopper.cancel();
        });
        let seen_in = seen.clone();
        let cut = every(Duration::from_secs(period), false, &shutdown, move |_| {
            let seen = seen_in.clone();
            async move {
                seen.lock().unwrap().push(start.elapsed().as_secs());
                tokio::time::sleep(Duration::from_secs(work)).await; // a slow API call
            }
        })
        .await;
        let v = seen.lock().unwrap().clone();
        (v, cut)
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_do_not_drift_the_cadence() {
        let (ticks, cut) = starts(10, 7, 55).await;
        assert_eq!(ticks, [0, 10, 20, 30, 40, 50]);
        assert_eq!(cut, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_is_cut_off_and_the_grid_holds() {
        let (ticks, cut) = starts(10, 25, 45).await;
        assert_eq!(ticks, [0, 10, 20, 30, 40]);
        assert_eq!(cut, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn once_runs_one_tick() {
        let shutdown = CancellationToken::new();
        let mut n = 0;
        every(Duration::from_secs(1), true, &shutdown, |_| {
            n += 1;
            async {}
        })
        .await;
        assert_eq!(n, 1);
    }
}
