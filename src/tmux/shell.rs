//! The shells Archy runs commands in, each with a small hook that prints the end marker from
//! the prompt hook (so it also fires after Ctrl-C) and keeps Archy's lines out of history.

use std::path::{Path, PathBuf};

use super::markers::{BEGIN_FMT, END_FMT, READY_FMT as READY};

/// A supported interactive shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    /// The user's shell when supported (`preferred`, else `$SHELL`), else bash.
    pub fn pick(preferred: Option<&str>) -> Shell {
        let from = preferred
            .map(str::to_string)
            .or_else(|| std::env::var("SHELL").ok())
            .unwrap_or_default();
        Shell::from_name(&from).unwrap_or(Shell::Bash)
    }

    pub fn from_name(path_or_name: &str) -> Option<Shell> {
        match Path::new(path_or_name).file_name()?.to_str()? {
            "bash" => Some(Shell::Bash),
            "zsh" => Some(Shell::Zsh),
            "fish" => Some(Shell::Fish),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }

    /// Write the hook files under `dir` for command files kept in `cmds`; returns the shell
    /// command line tmux starts the pane with.
    pub fn install(self, dir: &Path, cmds: &Path) -> std::io::Result<String> {
        std::fs::create_dir_all(dir)?;
        match self {
            Shell::Bash => {
                let rc = dir.join("hook.bash");
                write_if_changed(&rc, &bash_hook(cmds))?;
                Ok(format!("exec bash --rcfile {} -i", sh_quote(&rc)))
            }
            Shell::Zsh => {
                let zdot = dir.join("zsh");
                std::fs::create_dir_all(&zdot)?;
                write_if_changed(&zdot.join(".zshrc"), &zsh_hook(cmds))?;
                Ok(format!("exec env ZDOTDIR={} zsh -i", sh_quote(&zdot)))
            }
            Shell::Fish => {
                let hook = dir.join("hook.fish");
                write_if_changed(&hook, &fish_hook(cmds))?;
                let init = format!("source {}", fish_quote(&hook.to_string_lossy()));
                Ok(format!("exec fish -i -C {}", quote_str(&init)))
            }
        }
    }

    /// The short line typed to run the session's command file ([`command_file`], which the
    /// hook found from `$ARCHY_SESSION`). It starts with a space (history) and holds no ESC
    /// byte, so its echo never looks like a marker. It is this short because the shell's line
    /// editor takes it a key at a time (a 100-byte line measured 0.25 ms slower than a
    /// 50-byte one). The nonce travels in the line, not in the file, so that a file gone
    /// missing still ends with an end marker (and the source's error) instead of never ending.
    pub fn run_line(self, nonce: &str) -> String {
        match self {
            Shell::Bash | Shell::Zsh => format!(" __archy_b {nonce}; . \"$__archy_f\""),
            Shell::Fish => format!(" __archy_b {nonce}; source $__archy_f"),
        }
    }

    /// Script text that sets the directory and environment, then runs `command` as typed.
    /// Its first line, a comment, is what the hook shows whoever watches the window.
    pub fn script(self, command: &str, cwd: Option<&str>, env: &[(String, String)]) -> String {
        let mut s = format!("# {}\n", display_line(command));
        for (k, v) in env {
            match self {
                Shell::Fish => s.push_str(&format!("set -gx {k} {}\n", fish_quote(v))),
                _ => s.push_str(&format!("export {k}={}\n", quote_str(v))),
            }
        }
        if let Some(dir) = cwd {
            match self {
                Shell::Fish => s.push_str(&format!("cd {}; or return 1\n", fish_quote(dir))),
                _ => s.push_str(&format!("cd -- {} || return 1\n", quote_str(dir))),
            }
        }
        s.push_str(command);
        s.push('\n');
        s
    }
}

/// The marker functions bash and zsh share: `__archy_b` starts a command, `__archy_p` (run
/// from the prompt hook, so also after Ctrl-C) ends it with `$?`, and `exit` reports the
/// status before the shell goes (the session then ends; the next command makes a new one).
fn posix_markers(cmds: &Path) -> String {
    format!(
        r#"__archy_n= __archy_f={}/"$ARCHY_SESSION".sh
__archy_b() {{
  __archy_n=$1
  local l; IFS= read -r l < "$__archy_f"; printf '\033[2m$ %s\033[0m\n' "${{l#\# }}"
  printf '{BEGIN_FMT}' "$1"
}}
__archy_p() {{
  local rc=$?
  if [ -n "$__archy_n" ]; then printf '{END_FMT}' "$__archy_n" "$rc"; __archy_n=; fi
  return $rc
}}
exit() {{
  local rc=${{1:-$?}}
  if [ -n "$__archy_n" ]; then printf '{END_FMT}' "$__archy_n" "$rc"; __archy_n=; fi
  builtin exit "$@"
}}
"#,
        sh_quote(cmds)
    )
}

fn bash_hook(cmds: &Path) -> String {
    format!(
        r#"# Archy's bash hook: the user's bashrc, then markers around Archy's commands.
[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"
HISTCONTROL="ignorespace${{HISTCONTROL:+:$HISTCONTROL}}"
{}PROMPT_COMMAND=(__archy_p "${{PROMPT_COMMAND[@]}}")
printf '{READY}'
"#,
        posix_markers(cmds)
    )
}

fn zsh_hook(cmds: &Path) -> String {
    format!(
        r#"# Archy's zsh hook: the user's zshrc, then markers around Archy's commands.
ZDOTDIR="$HOME"
[ -f "$HOME/.zshrc" ] && . "$HOME/.zshrc"
setopt HIST_IGNORE_SPACE
# PROMPT_SP redraws over a last line without a newline before precmd, into the output.
unsetopt PROMPT_SP
{}precmd_functions=(__archy_p $precmd_functions)
printf '{READY}'
"#,
        posix_markers(cmds)
    )
}

fn fish_hook(cmds: &Path) -> String {
    format!(
        r#"# Archy's fish hook: markers around Archy's commands.
set -g __archy_n ''
set -g __archy_f {}/$ARCHY_SESSION.sh
function __archy_b
    set -g __archy_n $argv[1]
    read -l l < $__archy_f
    printf '\033[2m$ %s\033[0m\n' (string replace -r '^# ' '' -- $l)
    printf '{BEGIN_FMT}' $argv[1]
end
function exit --description "exit, reporting the status of Archy's command first"
    set -l rc $status
    set -q argv[1]; and set rc $argv[1]
    if test -n "$__archy_n"
        printf '{END_FMT}' $__archy_n $rc
        set -g __archy_n ''
    end
    builtin exit $argv
end
# After the command line, before fish redraws over a last line without a newline.
function __archy_p --on-event fish_postexec
    set -l rc $status
    if test -n "$__archy_n"
        printf '{END_FMT}' $__archy_n $rc
        set -g __archy_n ''
    end
end
printf '{READY}'
"#,
        fish_quote(&cmds.to_string_lossy())
    )
}

/// What the window shows for a command: its first line, without control characters, at most
/// 200 characters, with `…` when there is more.
fn display_line(command: &str) -> String {
    let first = command.trim().lines().next().unwrap_or("");
    let mut shown: String = first
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if shown.len() < first.len() || command.trim().lines().nth(1).is_some() {
        shown.push_str(" …");
    }
    shown
}

/// A shell starting in another session may be reading the hook right now: never rewrite it
/// in place; replace it whole (rename), and only when it changed.
fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// Single-quote a path for sh-like shells (and fish, which accepts the same form).
pub fn sh_quote(p: &Path) -> String {
    quote_str(&p.to_string_lossy())
}

/// fish's single quotes take `\'` and `\\` escapes instead of sh's `'\''`.
fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The file `session`'s next command is written to, under the commands directory: one per
/// session, rewritten in place for each command (the shell has read it whole before the
/// command's end marker, and the next command is written only after that).
pub fn command_file(cmds: &Path, session: &str) -> PathBuf {
    cmds.join(format!("{session}.sh"))
}

/// Where the hook files for one tmux server live.
pub fn hook_dir(runtime: &Path) -> PathBuf {
    runtime.join("hooks")
}
