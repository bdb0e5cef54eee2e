//! `sd_notify(3)` messages. Each is a no-op when `NOTIFY_SOCKET` is unset.

use std::time::Duration;

use sd_notify::NotifyState;

/// `READY=1`: the socket is being served.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// `STATUS=…`: one line saying what the daemon is doing (`systemctl status` shows it).
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `STOPPING=1`: the daemon is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Pings the watchdog at half its interval, if the unit sets `WatchdogSec=`. Returns `None`
/// (and starts nothing) otherwise. Must be called inside a tokio runtime.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = watchdog_interval()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

/// Half the watchdog timeout systemd asked for, when it asked (for this pid).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|t| t / 2)
        .filter(|t| !t.is_zero())
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}
