//! Living under systemd: readiness and watchdog notifications, journald logging, and keeping
//! systemd's per-service variables away from child processes. Everything here also works
//! (as a no-op or a fallback) outside systemd.

pub mod env;
pub mod logging;
pub mod notify;
