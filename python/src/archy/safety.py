"""Safety before anything runs, and privacy before anything leaves the machine.

:func:`classify` sorts a proposed command into read-only, changes the system, or dangerous (a
cautious heuristic: anything it does not know is a change). :func:`redact` masks secrets in
output sent to a remote model; :func:`cut` keeps the head and tail of long output.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Classification", "Risk", "classify", "cut", "looks_like_password_prompt", "redact"]


class Risk(StrEnum):
    READ_ONLY = "read_only"
    CHANGES = "changes"
    DANGEROUS = "dangerous"


@dataclass(frozen=True)
class Classification:
    risk: Risk
    reason: str


# Programs that only look (with any arguments, unless listed in _SUBCOMMANDS or _WRITE_FLAGS).
_READ_ONLY = frozenset(
    "uptime uname hostname hostnamectl whoami id groups w who users last lastlog date "
    "cal ls ll dir tree stat file cat tac head tail less more wc nl od xxd hexdump "
    "strings md5sum sha1sum sha256sum sha512sum b2sum cksum du df free vmstat iostat "
    "mpstat sar top htop btop ps pgrep pstree pidof lsof fuser lsblk blkid lscpu "
    "lspci lsusb lsmod lshw lsipc lslocks findmnt mount sensors nproc arch getconf "
    "locale localectl timedatectl env printenv echo printf true false test [ pwd "
    "which whereis type command realpath readlink basename dirname grep egrep fgrep "
    "rg ag sort uniq cut tr column jq yq awk diff cmp comm fmt fold journalctl dmesg "
    "loginctl busctl coredumpctl resolvectl networkctl ip ss netstat ping ping6 "
    "traceroute tracepath dig nslookup host getent nmcli iwctl iw iwconfig ifconfig "
    "route arp curl wget man info help apropos whatis tldr pacman yay paru apt "
    "apt-cache apt-get dpkg dpkg-query rpm dnf flatpak snap pip pip3 systemctl git docker "
    "podman nvidia-smi glxinfo vulkaninfo xrandr wlr-randr swaymsg hyprctl gsettings "
    "xdg-settings xdg-mime inxi neofetch fastfetch screenfetch find locate fd sleep "
    "seq yes time timeout nice ionice xargs tee sed read".split()
)

# Programs whose subcommand decides: the subcommands (or flags) listed are read-only.
_SUBCOMMANDS: dict[str, frozenset[str]] = {
    "systemctl": frozenset(
        "status show list-units list-unit-files list-timers list-sockets "
        "list-dependencies is-active is-enabled is-failed cat get-default --version help".split()
    ),
    "git": frozenset(
        "status log diff show branch remote tag describe rev-parse ls-files blame "
        "shortlog reflog config --version".split()
    ),
    "apt": frozenset("list show search policy depends rdepends --version".split()),
    "apt-get": frozenset("check changelog --version -s --simulate".split()),
    "dnf": frozenset("list info search repolist provides history --version".split()),
    "pip": frozenset("list show freeze check --version".split()),
    "pip3": frozenset("list show freeze check --version".split()),
    "docker": frozenset("ps images inspect logs version info stats top".split()),
    "podman": frozenset("ps images inspect logs version info stats top".split()),
    "flatpak": frozenset("list info search remotes history --version".split()),
    "snap": frozenset("list info find version".split()),
    "ip": frozenset(
        "a addr address r route l link n neigh neighbour rule -br -c -s -4 -6 -j -details".split()
    ),
    "nmcli": frozenset("-t -f general g device d connection c radio r monitor".split()),
    "gsettings": frozenset("get list-schemas list-keys list-recursively range describe".split()),
    "timedatectl": frozenset("status show list-timezones".split()),
    "localectl": frozenset("status list-locales list-keymaps".split()),
    "hostnamectl": frozenset("status".split()),
    "loginctl": frozenset(
        "list-sessions list-users show-session show-user session-status user-status".split()
    ),
    "resolvectl": frozenset("status query statistics dns domain".split()),
    "networkctl": frozenset("list status lldp".split()),
    "iwctl": frozenset("station device adapter known-networks".split()),
    "swaymsg": frozenset("-t".split()),
    "hyprctl": frozenset("monitors workspaces clients devices version activewindow".split()),
    "busctl": frozenset("list status tree introspect".split()),
}
_PACMAN_READ = re.compile(r"^-(Q|S[si]|F|T|V|-query|-version|-help|h)")
# Flags that make an otherwise read-only program write.
_WRITE_FLAGS: dict[str, re.Pattern[str]] = {
    "sed": re.compile(r"^(-i|--in-place)"),
    "find": re.compile(r"^-(delete|exec|execdir|ok|fprint)"),
    "curl": re.compile(r"^(-o|-O|--output|--remote-name|-T|--upload-file|-X|--request|-d|--data)"),
    "wget": re.compile(r"^"),  # wget writes a file unless -O -
    "tee": re.compile(r"^[^-]"),
    "sort": re.compile(r"^(-o|--output)"),
    "date": re.compile(r"^(-s|--set)"),
    "hostname": re.compile(r"^[^-]"),
    "mount": re.compile(r"^[^-]|^-(o|t|a)"),
    "xargs": re.compile(r"^"),  # runs whatever follows; judged as a change
    "timeout": re.compile(r"^"),
    "time": re.compile(r"^"),
    "nice": re.compile(r"^"),
    "ionice": re.compile(r"^"),
    "dmesg": re.compile(r"^-(C|c|-clear|-read-clear)"),
    "journalctl": re.compile(r"^--(vacuum|rotate|flush|sync|relinquish)"),
    "git": re.compile(r"^(-c)$"),
    "awk": re.compile(r"system\(|>"),
}

# Patterns that make a command dangerous (beyond the executor's own deny rules, which refuse).
_DANGEROUS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\brm\b[^|;&]*\s-[a-zA-Z]*[rR]"), "deletes recursively"),
    (re.compile(r"\brm\b[^|;&]*\s(/|~|\*|\$HOME)(\s|$)"), "deletes broadly"),
    (
        re.compile(r"\b(mkfs(\.\w+)?|wipefs|fdisk|sfdisk|gdisk|parted|cryptsetup|mkswap)\b"),
        "rewrites disks or partitions",
    ),
    (re.compile(r"\bdd\b.*\bof="), "writes raw data with dd"),
    (re.compile(r">\s*/dev/(sd|nvme|vd|hd|mmcblk)"), "writes to a block device"),
    (
        re.compile(
            r"\b(shutdown|reboot|poweroff|halt)\b|systemctl\s+(reboot|poweroff|halt|"
            r"kexec|suspend|hibernate)"
        ),
        "stops or restarts the machine",
    ),
    (
        re.compile(r"\bchmod\b.*\s-[a-zA-Z]*R|\bchown\b.*\s-[a-zA-Z]*R"),
        "changes permissions recursively",
    ),
    (re.compile(r"\b(curl|wget)\b.*\|\s*(sudo\s+)?(ba|z|da|fi)?sh\b"), "runs a downloaded script"),
    (re.compile(r":\(\)\s*\{"), "fork bomb"),
    (
        re.compile(r"\bkill(all)?\b.*\s-(9|KILL)\b.*\s1(\s|$)|\bkill\s+-9\s+-1\b"),
        "kills every process",
    ),
    (
        re.compile(r"\bgit\b.*\bpush\b.*(--force|-f\b)|\bgit\b.*\breset\s+--hard|\bgit\s+clean\b"),
        "discards work in git",
    ),
    (
        re.compile(
            r"\bpacman\b.*\s-R[a-z]*|\bapt(-get)?\s+(remove|purge|autoremove)|"
            r"\bdnf\s+(remove|erase)"
        ),
        "removes packages",
    ),
    (
        re.compile(r"(^|[;&|(]\s*|\b(sudo|doas)\s+)(userdel|groupdel|passwd|visudo|usermod)\b"),
        "changes accounts",
    ),
    (re.compile(r"\biptables\b.*-(F|X)\b|\bnft\s+flush"), "flushes the firewall"),
    (re.compile(r">\s*/etc/"), "overwrites a system file"),
    (
        re.compile(
            r"\bsystemctl\b.*\b(disable|mask|stop)\b.*\b(sshd?|NetworkManager|"
            r"systemd-\w+|dbus|gdm|sddm|lightdm)\b"
        ),
        "stops a core service",
    ),
]

_SEPARATORS = frozenset("; && || | & |& ( ) { } ! \n".split())
_PRIVILEGED = frozenset("sudo doas pkexec su run0".split())
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _segments(command: str) -> list[list[str]] | None:
    """Split a command line into simple commands; None when it cannot be tokenized."""
    lex = shlex.shlex(command, posix=True, punctuation_chars=";&|()<>!")
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        tokens = list(lex)
    except ValueError:
        return None
    segments: list[list[str]] = [[]]
    for tok in tokens:
        if tok in _SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(tok)
    return [s for s in segments if s]


def _redirect_target(words: list[str]) -> tuple[list[str], bool]:
    """Remove redirections from a simple command; True when one writes to a file."""
    out: list[str] = []
    writes = False
    skip = False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w in (">", ">>", ">|", "&>", "&>>", ">&"):
            target = words[i + 1] if i + 1 < len(words) else ""
            if target not in ("/dev/null", "/dev/stdout", "/dev/stderr", "1", "2", "&1", "&2"):
                writes = True
            skip = True
            continue
        if w in ("<", "<<", "<<<"):
            skip = True
            continue
        if w.isdigit() and i + 1 < len(words) and words[i + 1] in (">", ">>", ">&", "<"):
            continue
        out.append(w)
    return out, writes


def _simple_is_read_only(words: list[str]) -> tuple[bool, str]:
    while words and _ASSIGN.match(words[0]):
        words = words[1:]
    if not words:
        return True, ""
    prog = words[0].rsplit("/", 1)[-1]
    args = words[1:]
    if prog in _PRIVILEGED:
        return False, f"runs as root ({prog})"
    if prog in ("pacman", "yay", "paru"):
        flags = [a for a in args if a.startswith("-")]
        if flags and all(_PACMAN_READ.match(f) for f in flags[:1]):
            return True, ""
        return False, f"{prog} {' '.join(args[:2])}".strip()
    if prog not in _READ_ONLY:
        return False, f"runs {prog}"
    write = _WRITE_FLAGS.get(prog)
    wget_to_stdout = prog == "wget" and ("-O-" in args or ("-O" in args and "-" in args))
    if write is not None and any(write.search(a) for a in args) and not wget_to_stdout:
        return False, f"{prog} with {' '.join(args[:3])}"
    allowed = _SUBCOMMANDS.get(prog)
    if allowed is not None:
        sub = next((a for a in args if not a.startswith("-") or a in allowed), None)
        if prog in ("ip", "nmcli"):
            # `ip addr`, `ip -br a`: read-only unless a verb like add/del/set follows.
            if any(
                a
                in (
                    "add",
                    "del",
                    "delete",
                    "set",
                    "change",
                    "replace",
                    "flush",
                    "up",
                    "down",
                    "modify",
                    "connect",
                    "disconnect",
                    "on",
                    "off",
                )
                for a in args
            ):
                return False, f"{prog} {' '.join(args[:3])}"
            return True, ""
        if sub is None and prog in (
            "systemctl",
            "git",
            "docker",
            "podman",
            "timedatectl",
            "localectl",
            "hostnamectl",
            "loginctl",
            "resolvectl",
            "networkctl",
        ):
            return True, ""  # bare `systemctl`, `git`: list or status
        if sub is not None and sub not in allowed:
            return False, f"{prog} {sub}"
    return True, ""


def classify(command: str) -> Classification:
    """Read-only, changes the system, or dangerous, with a short reason."""
    text = command.strip()
    for pattern, why in _DANGEROUS:
        if pattern.search(text):
            return Classification(Risk.DANGEROUS, why)
    if "<(" in text or ">(" in text:
        return Classification(Risk.CHANGES, "runs a process substitution")
    substitution = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
    for a, b in substitution.findall(text):
        if classify(a or b).risk is not Risk.READ_ONLY:
            return Classification(Risk.CHANGES, "runs a command substitution that changes things")
    text = substitution.sub("SUBST", text)
    segments = _segments(text)
    if segments is None:
        return Classification(Risk.CHANGES, "could not be parsed")
    for segment in segments:
        words, writes = _redirect_target(segment)
        if writes:
            return Classification(Risk.CHANGES, "writes to a file")
        ok, why = _simple_is_read_only(words)
        if not ok:
            return Classification(Risk.CHANGES, why)
    return Classification(Risk.READ_ONLY, "only reads")


# -- privacy --------------------------------------------------------------------------------

_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|\Z)", re.S
        ),
        "[REDACTED private key]",
    ),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED aws-key]"),
    (
        re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
        "[REDACTED github-token]",
    ),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"), "[REDACTED gitlab-token]"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "[REDACTED google-api-key]"),
    (re.compile(r"\bsk-(proj-|ant-)?[A-Za-z0-9_-]{20,}\b"), "[REDACTED api-key]"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), "[REDACTED slack-token]"),
    (
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),
        "[REDACTED jwt]",
    ),
    (re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{16,}"), r"\1 [REDACTED]"),
    # user:password@host in URLs
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+):[^\s@/]+@"), r"\1:[REDACTED]@"),
    # KEY=value / key: value where the key names a secret
    (
        re.compile(
            r"(?i)\b([A-Z0-9_.-]*(?:PASSWORD|PASSWD|PASS|SECRET|TOKEN|API_?KEY|"
            r"ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|AUTH)[A-Z0-9_]*)([ \t]*[=:][ \t]*)"
            r"(?!\[REDACTED)(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',;]+)"
        ),
        r"\1\2[REDACTED]",
    ),
]


def redact(text: str) -> tuple[str, int]:
    """Mask secrets; returns the text and how many were masked."""
    total = 0
    for pattern, replacement in _REDACTIONS:
        text, n = pattern.subn(replacement, text)
        total += n
    return text, total


def cut(text: str, max_chars: int) -> str:
    """Keep the head and tail of ``text`` within ``max_chars``, with a note of what was cut."""
    if len(text) <= max_chars:
        return text
    head_len = max_chars // 3
    tail_len = max_chars - head_len
    head, tail = text[:head_len], text[-tail_len:]
    # Cut on line boundaries when there are any.
    if "\n" in head:
        head = head[: head.rfind("\n") + 1]
    if "\n" in tail:
        tail = tail[tail.find("\n") + 1 :]
    middle = text[len(head) : len(text) - len(tail)]
    note = (
        f"[… {middle.count(chr(10))} lines ({len(middle)} characters) cut; "
        "the whole output is in the terminal …]\n"
    )
    return head + ("" if head.endswith("\n") else "\n") + note + tail


_PASSWORD_PROMPT = re.compile(
    r"(?i)(password|passphrase|passcode|\bpin\b|verification code|token|secret)[^\n]*[:?]\s*$|"
    r"\[sudo\]|^Password:|Enter passphrase"
)


def looks_like_password_prompt(prompt: str | None) -> bool:
    """Whether a waiting command's prompt asks for a secret (then only the user answers)."""
    return bool(prompt) and bool(_PASSWORD_PROMPT.search((prompt or "").strip()))
