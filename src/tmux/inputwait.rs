//! Tell from `/proc` and the terminal's mode whether a pane is waiting for the user: a
//! process of the terminal's foreground group is blocked reading the terminal.

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;

/// What the foreground of a pane is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreground {
    pub pid: u32,
    pub name: String,
    /// Blocked in a read of the terminal.
    pub reading_tty: bool,
    /// Terminal in line mode with echo off: a password prompt.
    pub password_mode: bool,
}

/// Inspect the pane whose shell is `shell_pid` and terminal is `tty`.
pub fn inspect(shell_pid: u32, tty: &str) -> Option<Foreground> {
    let tpgid = stat_field(shell_pid, 5)?; // fields after "comm": 0=state ... 5=tpgid
    let tpgid: i32 = tpgid.parse().ok()?;
    if tpgid <= 0 {
        return None;
    }
    let members = group_members(tpgid as u32);
    let leader = members
        .iter()
        .copied()
        .find(|&p| p == tpgid as u32)
        .or(members.first().copied())?;
    let reading_tty = members.iter().any(|&p| reads_tty(p, tty));
    let password_mode = password_mode(tty);
    Some(Foreground {
        pid: leader,
        name: comm(leader).unwrap_or_default(),
        reading_tty,
        password_mode,
    })
}

/// Field `n` (0-based) after the `(comm)` of `/proc/PID/stat`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(n).map(str::to_string)
}

pub fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pgid = pgid.to_string();
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_field(pid, 2).as_deref() == Some(pgid.as_str()))
        .collect()
}

/// Blocked in the kernel's tty read path with the terminal open. `wchan` is readable for our
/// own processes even where Yama forbids reading `/proc/PID/syscall` of non-descendants.
fn reads_tty(pid: u32, tty: &str) -> bool {
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    if !matches!(wchan.trim(), "wait_woken" | "n_tty_read") {
        return false;
    }
    // Prefer the exact syscall (read on a descriptor that is the terminal) when visible.
    if let Ok(sc) = fs::read_to_string(format!("/proc/{pid}/syscall")) {
        let mut parts = sc.split_whitespace();
        let nr = parts.next().unwrap_or("");
        let read_nr = if cfg!(target_arch = "aarch64") {
            "63"
        } else {
            "0"
        };
        if nr != read_nr {
            return false;
        }
        if let Some(fd) = parts
            .next()
            .and_then(|a| i64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        {
            return fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p == Path::new(tty))
                .unwrap_or(false);
        }
    }
    fs::read_link(format!("/proc/{pid}/fd/0"))
        .map(|p| p == Path::new(tty))
        .unwrap_or(false)
}

/// Canonical mode with echo off, as `sudo`, `passwd` and `read -s` set it.
fn password_mode(tty: &str) -> bool {
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(tty)
    else {
        return false;
    };
    match tcgetattr(f.as_fd()) {
        Ok(t) => {
            t.local_flags.contains(LocalFlags::ICANON) && !t.local_flags.contains(LocalFlags::ECHO)
        }
        Err(_) => false,
    }
}

use std::os::unix::fs::OpenOptionsExt;
