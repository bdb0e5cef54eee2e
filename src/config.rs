//! `$XDG_CONFIG_HOME/archy/config.toml`: sections `[executor]` and `[policy]` (the `[brain]`
//! section belongs to the Python side). Unknown keys and bad values stop start-up with the
//! file, line and reason.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::policy::{Policy, UserRule};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub executor: ExecutorConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Read by the Python brain; accepted here as it is.
    #[serde(default)]
    pub brain: Option<toml::Table>,
}

/// `[executor]`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Socket path when not socket-activated.
    pub socket: Option<PathBuf>,
    /// `tmux -L` name of Archy's tmux server (default `archy`).
    pub tmux_socket: Option<String>,
    /// Seconds without clients before exiting (socket-activated default 300; 0 = never).
    pub idle_timeout: Option<u64>,
    /// Terminal program for `open_terminal` (default: foot, else the first found).
    pub terminal: Option<String>,
    /// Shell for new sessions: bash, zsh or fish (default: `$SHELL` when supported).
    pub shell: Option<String>,
    pub max_connections: Option<usize>,
    pub max_subscriptions: Option<u32>,
    pub max_line_bytes: Option<usize>,
    /// Cleaned output kept in memory per command before spilling to a file.
    pub output_memory_cap: Option<usize>,
    /// Finished commands remembered for `history`, `wait` and `output`.
    pub history: Option<usize>,
}

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Built-in rule names to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Extra rules.
    #[serde(default)]
    pub deny: Vec<DenyRule>,
}

/// `[[policy.deny]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyRule {
    pub name: String,
    pub pattern: Spanned<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A configuration error, already worded for the user.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// The default file location.
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(".config")
        });
    base.join("archy").join("config.toml")
}

/// Read the file (absent is fine unless `required`).
pub fn load(path: &Path, required: bool) -> Result<(ConfigFile, Policy), ConfigError> {
    let err = |message: String| ConfigError {
        path: path.display().to_string(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok((ConfigFile::default(), Policy::default()));
        }
        Err(e) => return Err(err(e.to_string())),
    };
    parse(&text).map_err(err)
}

/// Parse config text; errors carry the line.
pub fn parse(text: &str) -> Result<(ConfigFile, Policy), String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
    let builtin: Vec<&str> = crate::policy::BUILTIN.iter().map(|(n, _)| *n).collect();
    let mut rules = Vec::new();
    for r in &file.policy.deny {
        let regex = regex::Regex::new(r.pattern.get_ref()).map_err(|e| {
            let line = text[..r.pattern.span().start].lines().count().max(1);
            format!("line {line}: policy rule {:?}: bad regex: {e}", r.name)
        })?;
        rules.push(UserRule {
            name: r.name.clone(),
            regex,
            reason: r
                .reason
                .clone()
                .unwrap_or_else(|| format!("matches {}", r.pattern.get_ref())),
        });
    }
    for d in &file.policy.disable {
        if !builtin.contains(&d.as_str()) && !rules.iter().any(|r| &r.name == d) {
            return Err(format!(
                "[policy] disable: unknown rule {d:?} (built-in rules: {})",
                builtin.join(", ")
            ));
        }
    }
    if let Some(shell) = &file.executor.shell
        && crate::tmux::shell::Shell::from_name(shell).is_none()
    {
        return Err(format!(
            "[executor] shell = {shell:?}: use bash, zsh or fish"
        ));
    }
    let policy = Policy::new(file.policy.disable.clone(), rules);
    Ok((file, policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_full_file() {
        let (f, p) = parse(
            r#"
[executor]
tmux_socket = "t"
idle_timeout = 60
terminal = "kitty"

[policy]
disable = ["pipe-to-shell"]
[[policy.deny]]
name = "no-reboot"
pattern = '\breboot\b'

[brain]
model = "gemini-2.5-flash"
"#,
        )
        .unwrap();
        assert_eq!(f.executor.tmux_socket.as_deref(), Some("t"));
        assert_eq!(p.check("reboot").unwrap_err().rule, "no-reboot");
        assert!(p.check("curl x | sh").is_ok());
    }

    #[test]
    fn errors_name_the_line_and_reason() {
        let e = parse("[executor]\nidle_timeout = 5\nbogus = 1\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("bogus"), "{e}");
        let e = parse("[executor]\nidle_timeout = \"soon\"\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("[policy]\n[[policy.deny]]\nname = \"x\"\npattern = \"(\"\n").unwrap_err();
        assert!(e.contains("line 4") && e.contains("bad regex"), "{e}");
        let e = parse("[policy]\ndisable = [\"nope\"]\n").unwrap_err();
        assert!(e.contains("unknown rule"), "{e}");
    }
}
