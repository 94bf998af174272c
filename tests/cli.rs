//! The real `bridgekeeper` binary: `run` on stdin/stdout, `status`, the state-dir lock, startup
//! errors, and no orphans after the supervisor is SIGKILLed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bridge_protocol::gateway::{ConnectorStateName, GatewayEvent};

use crate::support::{BRIDGEKEEPER, PATIENCE, alive, connector, pids, wait_for, write_config};

struct Running {
    child: Child,
    events: mpsc::Receiver<GatewayEvent>,
}

impl Running {
    fn start(config: &std::path::Path) -> Self {
        let mut child = Command::new(BRIDGEKEEPER)
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let line = line.unwrap();
                let event: GatewayEvent = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout carried a non-protocol line {line:?}: {e}"));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Self { child, events }
    }

    fn next(&self) -> GatewayEvent {
        self.events
            .recv_timeout(PATIENCE)
            .expect("a gateway event in time")
    }
    /// Started and past its `ready` line.
    fn ready(config: &std::path::Path) -> Self {
        let run = Self::start(config);
        assert!(matches!(run.next(), GatewayEvent::Ready { .. }));
        run
    }

    /// Closes stdin like a gateway going away; the daemon must exit cleanly.
    fn close(mut self) {
        drop(self.child.stdin.take());
        let exit = wait_child(&mut self.child);
        assert!(exit.success(), "{exit:?}");
    }
}

/// `bridgekeeper run` that must refuse to start; returns its stderr.
fn refused_run(config: &std::path::Path) -> String {
    let out = Command::new(BRIDGEKEEPER)
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing may reach the gateway link");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `status --config`: its text, with exit status 0 (running) or 3 (not running).
fn status(config: &std::path::Path) -> String {
    let out = Command::new(BRIDGEKEEPER)
        .args(["status", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = if text.starts_with("bridgekeeper is not running") {
        3
    } else {
        0
    };
    assert_eq!(
        out.status.code(),
        Some(expected),
        "status: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn run_forwards_inbound_survives_three_crashes_and_status_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("starts");
    let config = write_config(
        dir.path(),
        &[connector(
            "fake",
            &[
                "--emit",
                "2",
                "--exit-after-ms",
                "100",
                "--crash-first",
                "3",
                "--counter",
                counter.to_str().unwrap(),
            ],
            "",
        )],
    );
    let mut run = Running::start(&config);
    assert!(matches!(run.next(), GatewayEvent::Ready { .. }));
    let (mut inbound, mut running_after_3) = (0, false);
    while !(running_after_3 && inbound == 8) {
        match run.next() {
            GatewayEvent::Inbound { connector, .. } => {
                assert_eq!(connector, "fake");
                inbound += 1;
            }
            GatewayEvent::ConnectorState {
                state: ConnectorStateName::Running,
                restarts: 3,
                ..
            } => running_after_3 = true,
            _ => {}
        }
    }
    // status.json is written within ~100 ms of a change.
    let mut text = String::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !text.contains("received 8 = delivered 8") {
        assert!(
            std::time::Instant::now() < deadline,
            "status never showed the ledger:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
        text = status(&config);
    }
    assert!(text.contains("running (pid"), "{text}");
    let row = text.lines().find(|l| l.starts_with("fake ")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cols[1], cols[4]), ("running", "3"), "{row}");
    assert!(row.contains("crashed (code 1)"), "{row}");

    drop(run.child.stdin.take()); // the gateway goes away
    let exit = wait_child(&mut run.child);
    assert!(exit.success(), "{exit:?}");
    let text = status(&config);
    assert!(text.starts_with("bridgekeeper is not running"), "{text}");
    assert!(text.contains("stopped"), "{text}");
}

fn wait_child(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn no_connector_outlives_a_sigkilled_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let config = write_config(
        dir.path(),
        &[connector(
            "fake",
            &["--grandchild", "--pid-file", pid_file.to_str().unwrap()],
            "",
        )],
    );
    let mut run = Running::start(&config);
    wait_for("connector and grandchild pids", || {
        pids(&pid_file).len() == 2
    })
    .await;
    let all = pids(&pid_file);
    assert!(all.iter().all(|(_, pid)| alive(*pid)));
    run.child.kill().unwrap(); // SIGKILL: no cleanup code runs in the supervisor
    run.child.wait().unwrap();
    for (role, pid) in all {
        wait_for(&format!("{role} {pid} to exit"), || !alive(pid)).await;
    }
    // State files are intact and the next start takes over. The last states are shown as
    // stale, without the pids of processes that are gone.
    let text = status(&config);
    assert!(text.starts_with("bridgekeeper is not running"), "{text}");
    let row = text.lines().find(|l| l.starts_with("fake ")).unwrap();
    assert!(row.contains("(stale)"), "{row}");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[3], "-", "no pid of a dead process: {row}");
    Running::ready(&config).close();
}

#[test]
fn a_second_supervisor_on_the_same_state_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[connector("fake", &[], "")]);
    let first = Running::ready(&config);
    let err = refused_run(&config);
    let holder = format!(
        "another bridgekeeper (pid {}) is already using",
        first.child.id()
    );
    assert!(err.contains(&holder), "{err}");
    first.close();
}

// Invariant 6: two supervisors can never drive one WhatsApp session, even with different
// state directories.
#[test]
fn a_session_directory_has_one_owner() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("shared-session");
    let entry = format!("session_dir: {:?}", session.to_str().unwrap());
    let first_dir = dir.path().join("one");
    let second_dir = dir.path().join("two");
    std::fs::create_dir_all(&first_dir).unwrap();
    std::fs::create_dir_all(&second_dir).unwrap();
    let first_cfg = write_config(&first_dir, &[connector("wa", &[], &entry)]);
    let second_cfg = write_config(&second_dir, &[connector("wa", &[], &entry)]);
    let first = Running::ready(&first_cfg);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&session).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let err = refused_run(&second_cfg);
    let holder = format!("pid {}", first.child.id());
    assert!(
        err.contains("connector wa") && err.contains("shared-session") && err.contains(&holder),
        "{err}"
    );
    first.close();
    // Released with its owner: the next one may take it.
    Running::ready(&second_cfg).close();
}

#[test]
fn startup_errors_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BRIDGEKEEPER)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        String::from_utf8(out.stderr).unwrap()
    };
    let missing = dir.path().join("nope.yaml");
    assert!(run(&["run", "--config", missing.to_str().unwrap()]).contains("cannot read config"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "connectors:\n  - name: x\n    command: definitely-not-installed-xyz\n    restart: {jitter: 2}\n").unwrap();
    let err = run(&["run", "--config", bad.to_str().unwrap()]);
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(
        err.contains(
            "connectors[0].command: \"definitely-not-installed-xyz\" was not found on PATH"
        ),
        "{err}"
    );
    assert!(
        err.contains("connectors[0].restart.jitter: 2 is outside 0.0..1.0"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.yaml");
    std::fs::write(&garbage, "connectors: [[[").unwrap();
    assert!(run(&["run", "--config", garbage.to_str().unwrap()]).contains("is not valid"));

    // A state dir that cannot be created.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let cfg = dir.path().join("blocked.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir: file/state\nconnectors:\n  - name: x\n    command: {:?}\n",
            crate::support::FAKE
        ),
    )
    .unwrap();
    let err = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        err.contains("cannot create directory") && err.contains("file/state"),
        "{err}"
    );
}

/// `run` without a config and with no platform configured under `$HERMES_HOME` starts nothing
/// and says which settings would turn one on.
#[test]
fn run_without_a_config_or_any_platform_says_what_to_set() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(BRIDGEKEEPER)
        .arg("run")
        .env("HERMES_HOME", home.path())
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("WHATSAPP_ENABLED")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needed in [
        "nothing to run",
        "WHATSAPP_ENABLED=true",
        "TELEGRAM_BOT_TOKEN",
        "--config",
    ] {
        assert!(stderr.contains(needed), "{needed:?} missing from {stderr}");
    }
}

/// `platforms --json` answers what `run` without a config would start from a Hermes home, in
/// its order, each with the setting that turns it on and its description's facts; an empty
/// home, nothing.
#[test]
fn platforms_says_what_run_would_start_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("hermes");
    let ask = || {
        let out = crate::support::hermes_command("platforms", &home)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    std::fs::create_dir_all(&home).unwrap();
    assert_eq!(ask()["platforms"], serde_json::json!([]));
    std::fs::write(
        home.join(".env"),
        "WEBHOOK_ENABLED=true\nTELEGRAM_BOT_TOKEN=123:abc\n",
    )
    .unwrap();
    std::fs::create_dir_all(home.join("platforms/whatsapp/session")).unwrap();
    std::fs::write(home.join("platforms/whatsapp/session/creds.json"), "{}").unwrap();
    let answer = ask();
    let said: Vec<(&str, &str)> = answer["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap(),
                p["because"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            ("whatsapp", "a linked WhatsApp session"),
            ("telegram", "TELEGRAM_BOT_TOKEN is set"),
            ("webhook", "WEBHOOK_ENABLED=true")
        ]
    );
    assert_eq!(answer["platforms"][1]["text_limit"], 4096);
    assert_eq!(answer["platforms"][0]["markdown"], "whatsapp");
}

/// `run --platforms` runs only the named ones of what Hermes' settings turn on, says which it
/// leaves out and why, and names what the settings do not turn on; with nothing left, it runs
/// nothing; beside `--config` (whose file decides) it is refused.
#[test]
fn run_platforms_runs_only_the_named_ones() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".env"),
        "WEBHOOK_ENABLED=true\nWEBHOOK_PORT=0\nTELEGRAM_BOT_TOKEN=123:abc\nTELEGRAM_API_ROOT=http://127.0.0.1:9\n",
    )
    .unwrap();
    let mut child = crate::support::hermes_run(&home)
        .args(["--platforms", "webhook,weixin"])
        .spawn()
        .unwrap();
    let rx = crate::support::json_lines(child.stdout.take().unwrap());
    crate::support::next_matching(&rx, "the webhook receiver", &|v| {
        v["type"] == "connection" && v["connector"] == "webhook" && v["status"]["state"] == "open"
    });
    let stderr = crate::support::finish_run(child);
    for said in [
        "not running telegram (TELEGRAM_BOT_TOKEN is set): --platforms leaves it out",
        "--platforms names weixin, which Hermes' settings",
        "no --config: running webhook (",
    ] {
        assert!(stderr.contains(said), "{said:?} missing from {stderr}");
    }
    assert!(
        !stderr.contains("no --config: running telegram"),
        "{stderr}"
    );

    let none = crate::support::hermes_run(&home)
        .args(["--platforms", "weixin"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("nothing to run"));

    let config = crate::support::write_config_with(dir.path(), &[], "");
    let both = Command::new(BRIDGEKEEPER)
        .args(["run", "--platforms", "webhook", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}
