//! tracing setup: journald when our stderr is the journal, else text on stderr.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. The filter comes from `ARCHY_LOG` (`EnvFilter` syntax,
/// default `info`). Does nothing if a subscriber is already installed.
///
/// Text for stderr is written by a background thread, so a request never waits on a slow
/// terminal or pipe; keep the returned guard until exit, it flushes what is left. (It blocks
/// rather than drops lines when the buffer is full: audit lines are never lost.)
#[must_use = "dropping the guard stops the log writer"]
pub fn init() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let (filter, bad_filter) = match std::env::var("ARCHY_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (
                EnvFilter::new("info"),
                Some(format!("ignoring ARCHY_LOG={spec:?}: {e}")),
            ),
        },
        _ => (EnvFilter::new("info"), None),
    };
    let journald = stderr_is_journal()
        .then(tracing_journald::layer)
        .and_then(Result::ok);
    let mut guard = None;
    let installed = match journald {
        Some(journald) => tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .try_init(),
        None => {
            let (writer, g) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(std::io::stderr());
            guard = Some(g);
            tracing_subscriber::registry()
                .with(filter)
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(writer)
                        .with_ansi(std::io::stderr().is_terminal()),
                )
                .try_init()
        }
    };
    if let (Ok(()), Some(warning)) = (installed, bad_filter) {
        tracing::warn!("{warning}");
    }
    guard
}

/// Whether fd 2 is the stream systemd connected to the journal: `JOURNAL_STREAM` holds its
/// `DEV:INO` (systemd.exec(5)). A child that redirected stderr keeps the variable but not the
/// stream, hence the comparison.
pub fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| parse_dev_ino(&v))
    else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| (m.dev(), m.ino()) == expected)
}

fn parse_dev_ino(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_journal_stream() {
        assert_eq!(parse_dev_ino("8:12345"), Some((8, 12345)));
        assert_eq!(parse_dev_ino("8"), None);
        assert_eq!(parse_dev_ino("x:1"), None);
    }
}
