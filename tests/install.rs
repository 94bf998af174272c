//! `scripts/install.sh` from a fresh clone into a temporary prefix, and the installed binary
//! run with nothing of the checkout on its `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::Reaped;
use crate::support::whatsapp::FakeWhatsApp;

/// The checkout's release binary, built when missing or older than this test's build (in CI,
/// `scripts/test.sh` builds it before the tests).
fn release_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let release = root.join("target/release/bridgekeeper");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&release) < modified(Path::new(env!("CARGO_BIN_EXE_bridgekeeper"))) {
        let built = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--locked",
                "--quiet",
                "--bin",
                "bridgekeeper",
            ])
            .current_dir(root)
            .status()
            .unwrap();
        assert!(built.success());
    }
    release
}

/// `PATH` with `node` and the system's tools, and neither the checkout nor `target/`.
fn system_path() -> String {
    let node = which::which("node").expect("node on PATH");
    let node_dir = node.parent().unwrap().display().to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(!node_dir.starts_with(root));
    format!("{node_dir}:/usr/local/bin:/usr/bin:/bin")
}

fn install(script: &Path, args: &[&str], config_home: &Path) -> Output {
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .env("XDG_CONFIG_HOME", config_home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir` and its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    crate::support::files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Installed from a clone (the binary stripped, under 20 MB; node-bridge with its production
/// packages under `share/`; a systemd unit), the binary finds node-bridge with `PATH` holding
/// nothing of the checkout: `doctor` says so, and `run` starts WhatsApp against the fake server
/// and delivers a DM. Installing again keeps the session and the pairing files; `--uninstall`
/// removes the install and leaves them.
#[test]
fn installed_from_a_clone_it_runs_whatsapp_with_nothing_of_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    let cloned = Command::new("git")
        .args(["clone", "--quiet", env!("CARGO_MANIFEST_DIR")])
        .arg(&clone)
        .status()
        .unwrap();
    assert!(cloned.success());
    let script = clone.join("scripts/install.sh");
    let prefix = dir.path().join("prefix");
    let config_home = dir.path().join("config");
    let binary = release_binary();
    let home = dir.path().join("hermes");
    let args = [
        "--prefix",
        prefix.to_str().unwrap(),
        "--binary",
        binary.to_str().unwrap(),
        "--systemd",
        "--hermes-home",
        home.to_str().unwrap(),
    ];
    install(&script, &args, &config_home);
    let installed = prefix.join("bin/bridgekeeper");
    let size = std::fs::metadata(&installed).unwrap().len();
    assert!(size < 20 * 1024 * 1024, "{size} bytes");
    let unit =
        std::fs::read_to_string(config_home.join("systemd/user/bridgekeeper.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains(installed.to_str().unwrap()));

    let plugin = home.join("plugins/bridgekeeper");
    assert!(plugin.join("plugin.yaml").is_file() && plugin.join("__init__.py").is_file());
    let env = std::fs::read_to_string(home.join(".env")).unwrap();
    assert!(
        env.contains(&format!("BRIDGEKEEPER_BIN={}", installed.display())),
        "{env}"
    );

    let server = FakeWhatsApp::start(dir.path());
    let session = home.join("platforms/whatsapp/session");
    server.seed_session(&session);
    std::fs::write(
        home.join(".env"),
        env + "WHATSAPP_MODE=bot\nWHATSAPP_DM_POLICY=allowlist\nWHATSAPP_ALLOWED_USERS=15551234567\n",
    )
    .unwrap();
    let pairing = home.join("platforms/pairing");
    std::fs::create_dir_all(&pairing).unwrap();
    std::fs::write(
        pairing.join("whatsapp-approved.json"),
        r#"{"15557654321": {"user_name": "Ann", "approved_at": 1767225600}}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(&installed);
        command
            .args(args)
            .env_clear()
            .env("PATH", system_path())
            .env("HOME", dir.path())
            .env("HERMES_HOME", &home)
            .env("WHATSAPP_WEB_SOCKET_URL", &server.ws_url);
        command
    };

    let doctor = run(&["doctor", "--port", "0"]).output().unwrap();
    let said = String::from_utf8_lossy(&doctor.stdout);
    let share = prefix.join("share/bridgekeeper/node-bridge");
    assert!(
        said.contains(&format!(
            "node-bridge dependencies installed (baileys 7.0.0-rc13) in {}",
            share.display()
        )),
        "{said}"
    );

    let mut child = Reaped(
        run(&["run"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rx = crate::support::json_lines(child.stdout.take().unwrap());
    let wait =
        |what: &str, pred: &dyn Fn(&Value) -> bool| crate::support::next_matching(&rx, what, pred);
    wait("whatsapp open", &|v| {
        v["type"] == "connection" && v["connector"] == "whatsapp" && v["status"]["state"] == "open"
    });
    server.inject_dm("15551234567", "from an installed bridgekeeper");
    let m = wait("the DM", &|v| v["type"] == "inbound");
    assert_eq!(m["message"]["text"], "from an installed bridgekeeper");
    drop(child.stdin.take());
    let _ = child.wait();

    let state_before = contents(&home.join("platforms"));
    assert!(state_before.iter().any(|(p, _)| p.ends_with("creds.json")));
    install(&script, &args, &config_home);
    assert_eq!(
        contents(&home.join("platforms")),
        state_before,
        "an upgrade keeps the state"
    );
    let again = run(&["--version"]).output().unwrap();
    assert!(again.status.success());

    let out = install(
        &script,
        &[
            "--uninstall",
            "--prefix",
            prefix.to_str().unwrap(),
            "--systemd",
            "--hermes-home",
            home.to_str().unwrap(),
        ],
        &config_home,
    );
    assert!(!installed.exists() && !prefix.join("share/bridgekeeper").exists());
    assert!(
        !config_home
            .join("systemd/user/bridgekeeper.service")
            .exists()
    );
    assert_eq!(contents(&home.join("platforms")), state_before, "{out:?}");
    assert!(!plugin.exists());
    let env = std::fs::read_to_string(home.join(".env")).unwrap();
    assert!(
        !env.contains("BRIDGEKEEPER_BIN") && env.contains("WHATSAPP_MODE=bot"),
        "{env}"
    );
}
