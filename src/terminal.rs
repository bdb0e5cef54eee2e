//! Opening a terminal window attached to a session.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::api::EnvMap;
use crate::error::{Error, Result};

/// Terminals tried in order when none is configured.
pub const KNOWN: &[&str] = &[
    "foot",
    "kitty",
    "alacritty",
    "wezterm",
    "gnome-terminal",
    "konsole",
    "xterm",
];

/// Variables a window needs from the caller (the service's own environment has none).
pub const DISPLAY_VARS: &[&str] = &[
    "WAYLAND_DISPLAY",
    "DISPLAY",
    "XDG_RUNTIME_DIR",
    "XDG_SESSION_TYPE",
    "XDG_CURRENT_DESKTOP",
    "DBUS_SESSION_BUS_ADDRESS",
    "SWAYSOCK",
    "XAUTHORITY",
    "HYPRLAND_INSTANCE_SIGNATURE",
];

/// Find the program: the one asked for, else the configured one, else the first known found.
pub fn choose(asked: Option<&str>, configured: Option<&str>) -> Result<(String, PathBuf)> {
    if let Some(name) = asked.or(configured) {
        return which(name)
            .map(|p| (base(name), p))
            .ok_or(Error::NoTerminal {
                tried: vec![name.to_string()],
            });
    }
    KNOWN
        .iter()
        .find_map(|n| which(n).map(|p| (n.to_string(), p)))
        .ok_or(Error::NoTerminal {
            tried: KNOWN.iter().map(|s| s.to_string()).collect(),
        })
}

fn base(name: &str) -> String {
    Path::new(name)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}

fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The argv that makes `terminal` run `inner`.
fn argv(terminal: &str, program: &Path, inner: &[String]) -> Vec<String> {
    let mut v = vec![program.to_string_lossy().into_owned()];
    match terminal {
        "foot" | "kitty" => {}
        "wezterm" => v.extend(["start".into(), "--".into()]),
        "gnome-terminal" => v.extend(["--wait".into(), "--".into()]),
        _ => v.push("-e".into()),
    }
    v.extend(inner.iter().cloned());
    v
}

/// A window to open.
pub struct Launch<'a> {
    /// Terminal name, e.g. `foot` (decides how the command is passed).
    pub terminal: &'a str,
    pub program: &'a Path,
    pub tmux_socket: &'a str,
    pub session: &'a str,
    /// The caller's display variables.
    pub env: &'a EnvMap,
    /// Wrapper such as `systemd-run --user --scope`.
    pub prefix: &'a [String],
    /// Variables the window must not inherit.
    pub scrub: &'a [&'a str],
    /// Where the terminal's own messages go.
    pub log: &'a Path,
}

/// Start the window detached; fails if it exits at once (no display, bad program).
pub fn open(l: Launch<'_>) -> Result<u32> {
    let Launch {
        terminal,
        program,
        tmux_socket,
        session,
        env,
        prefix,
        scrub,
        log,
    } = l;
    let inner = vec![
        "tmux".to_string(),
        "-u".into(),
        "-L".into(),
        tmux_socket.into(),
        "attach-session".into(),
        "-t".into(),
        format!("={session}"),
    ];
    let mut full: Vec<String> = prefix.to_vec();
    full.extend(argv(terminal, program, &inner));
    // Its messages go to a file: a pipe nobody reads would block or kill the window later.
    let errfile = log
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| std::fs::File::create(log))
        .map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
    let mut cmd = Command::new(&full[0]);
    cmd.args(&full[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(errfile)
        .process_group(0);
    for v in scrub {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| Error::TerminalFailed {
        terminal: terminal.to_string(),
        reason: e.to_string(),
    })?;
    let pid = child.id();
    // A window that cannot reach a display exits within moments; report that, not a pid.
    let deadline = std::time::Instant::now() + Duration::from_millis(400);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(log).unwrap_or_default();
            let hint = if env.contains_key("WAYLAND_DISPLAY") || env.contains_key("DISPLAY") {
                String::new()
            } else {
                " (pass the caller's WAYLAND_DISPLAY or DISPLAY in env)".to_string()
            };
            return Err(Error::TerminalFailed {
                terminal: terminal.to_string(),
                reason: format!("exited with {status}: {}{hint}", err.trim()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reap it when it ends.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}
