//! Variables systemd sets for the service itself, which children must not inherit.

/// Removed from every child's environment. A child seeing `NOTIFY_SOCKET` could report
/// readiness or stopping for the daemon, `LISTEN_*` could make it take our socket,
/// `WATCHDOG_*` would point it at our watchdog, and `JOURNAL_STREAM` would make it log as if
/// its stderr were the journal. `INVOCATION_ID` and `SYSTEMD_EXEC_PID` describe this service
/// run, not the child's.
pub const CHILD_ENV_BLOCKLIST: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "JOURNAL_STREAM",
    "INVOCATION_ID",
    "SYSTEMD_EXEC_PID",
];

/// Keeps the blocklisted variables out of `cmd`'s environment. For a
/// `tokio::process::Command`, pass `cmd.as_std_mut()`.
pub fn scrub(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for name in CHILD_ENV_BLOCKLIST {
        cmd.env_remove(name);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_every_blocklisted_variable() {
        let mut cmd = std::process::Command::new("env");
        scrub(&mut cmd);
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_owned())
            .collect();
        assert_eq!(removed.len(), CHILD_ENV_BLOCKLIST.len());
    }
}
