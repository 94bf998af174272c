//! The real path: messages injected into the fake WhatsApp server travel through real Baileys and
//! node-bridge, read either directly from node-bridge's stdout (the baseline) or through
//! bridgekeeper's gateway link.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Bench, Sample, collect, now_ns, stop};

fn node_bridge() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node-bridge")
}

struct Server {
    child: Child,
    ws_url: String,
    admin_url: String,
    token: String,
    self_jid: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> Result<Server, String> {
    let bin = node_bridge().join("node_modules/.bin/crabline");
    if !bin.exists() {
        return Err(format!("{} missing (npm ci in node-bridge)", bin.display()));
    }
    let ready = dir.join("ready.json");
    let child = Command::new(bin)
        .args(["--json", "serve", "whatsapp", "--ready-file"])
        .arg(&ready)
        .arg("--recorder")
        .arg(dir.join("recorder.jsonl"))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let manifest: serde_json::Value = loop {
        if let Some(v) = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            break v;
        }
        if Instant::now() > deadline {
            return Err("the fake server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let s = |p: &str| {
        manifest
            .pointer(p)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Server {
        child,
        ws_url: s("/endpoints/baileysWebSocketUrl"),
        admin_url: s("/endpoints/adminInboundUrl"),
        token: s("/adminToken"),
        self_jid: s("/selfJid"),
    })
}

fn seed(session: &Path, self_jid: &str) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(session);
    let ok = Command::new("node")
        .arg(node_bridge().join("test/support/seed-creds.js"))
        .arg(session)
        .arg(self_jid)
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if ok {
        Ok(())
    } else {
        Err("seeding credentials failed".into())
    }
}

fn inject(server_url: &str, token: &str, n: usize) {
    let rest = server_url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    for _ in 0..n {
        let jid = "15551234567@s.whatsapp.net";
        let body = serde_json::json!({"chatJid": jid, "senderJid": jid, "text": format!("t={}", now_ns())}).to_string();
        let mut s = TcpStream::connect(host).unwrap();
        write!(
            s,
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nX-Crabline-Admin-Token: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
    }
}

/// Reads lines until one contains `needle`, returning the rest of the stream.
fn wait_for_line(
    reader: &mut BufReader<std::process::ChildStdout>,
    needle: &str,
) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("stream ended before {needle:?}"));
        }
        if line.contains(needle) {
            return Ok(());
        }
    }
}

fn run(mut child: Child, server: &Server, open: &str, n: usize) -> Result<Sample, String> {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    wait_for_line(&mut reader, open)?;
    let (url, token) = (server.admin_url.clone(), server.token.clone());
    let injector = std::thread::spawn(move || inject(&url, &token, n));
    let sample = collect(reader, n);
    injector.join().map_err(|_| "injector failed")?;
    stop(child);
    Ok(sample)
}

/// (through bridgekeeper, node-bridge read directly).
pub fn measure(b: &mut Bench, n: usize) -> Result<(Sample, Sample), String> {
    let dir = b.dir("real");
    let server = start_server(&dir)?;
    let entry = node_bridge().join("src/index.js");

    let session = dir.join("session-direct");
    seed(&session, &server.self_jid)?;
    let direct = Command::new("node")
        .arg(&entry)
        .arg("--session")
        .arg(&session)
        .env("WHATSAPP_WEB_SOCKET_URL", &server.ws_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let direct = run(direct, &server, "\"state\":\"open\"", n)?;

    let session = dir.join("session-bk");
    seed(&session, &server.self_jid)?;
    let config = dir.join("real.yaml");
    std::fs::write(
        &config,
        format!(
            "state_dir: {:?}\nhermes_home: {:?}\nconnectors:\n  - name: whatsapp\n    command: node\n    args: [{:?}]\n    session_dir: {:?}\n    env: {{WHATSAPP_WEB_SOCKET_URL: {:?}}}\n    policy: {{mode: bot, dm_policy: open}}\n",
            dir.join("state"), dir.join("hermes"), entry, session, server.ws_url
        ),
    )
    .map_err(|e| e.to_string())?;
    let ours = run(
        b.bridgekeeper(&config),
        &server,
        "\"type\":\"connection\",\"connector\":\"whatsapp\",\"status\":{\"state\":\"open\"",
        n,
    )?;
    Ok((ours, direct))
}
