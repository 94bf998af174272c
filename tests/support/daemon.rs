//! `bridgekeeper run --config` as a process, its gateway link on pipes: requests written,
//! every event kept, stdout and stderr copied for greps.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::PATIENCE;

/// `bridgekeeper run` as a process, its gateway link on pipes.
pub struct Daemon {
    pub child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stdout_copy: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// `env`: more of its environment (a token…).
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("GATEWAY_RELAY_SECRET", crate::support::hermes::SECRET)
            .env_remove("GATEWAY_RELAY_ID")
            .env("BRIDGEKEEPER_HEARTBEAT_MS", "1000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, events) = mpsc::channel();
        let stdout_copy = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let copy = stdout_copy.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                copy.lock().unwrap().push_str(&line);
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let copy = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                copy.lock().unwrap().push_str(&line);
            }
        });
        Self {
            child,
            stdin: Some(stdin),
            events,
            seen: Vec::new(),
            stderr,
            stdout_copy,
        }
    }

    /// How many times a connector was started (`starting` states seen so far).
    pub fn starts(&self) -> usize {
        self.seen
            .iter()
            .filter(|v| v["type"] == "connector_state" && v["state"] == "starting")
            .count()
    }

    /// The port `run` said its relay listens on (waits for the line).
    pub fn relay_port(&self) -> u16 {
        let mut port = None;
        super::wait_blocking("the relay to listen", || {
            let err = self.stderr.lock().unwrap().clone();
            port = err
                .split("relay listening on http://127.0.0.1:")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .and_then(|p| p.parse::<u16>().ok());
            port.is_some()
        });
        port.unwrap()
    }

    pub fn send(&mut self, request: Value) {
        let stdin = self.stdin.as_mut().expect("running");
        writeln!(stdin, "{request}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = self.seen.iter().find(|v| pred(v)) {
                return v.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => panic!("no {what}; seen: {:#?}", self.seen),
            }
        }
    }

    /// The `result` of request `id`.
    pub fn result(&mut self, id: &str) -> Value {
        self.wait(&format!("result {id}"), |v| {
            v["type"] == "result" && v["id"] == id
        })
    }

    /// Waits until `connector`'s connection has said `open` `n` times in all (a reconnect is
    /// the second); gives the last of them.
    pub fn opened(&mut self, connector: &str, n: usize) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let opens: Vec<&Value> = self
                .seen
                .iter()
                .filter(|v| {
                    v["type"] == "connection"
                        && v["connector"] == connector
                        && v["status"]["state"] == "open"
                })
                .collect();
            if opens.len() >= n {
                return opens[n - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{connector} did not open {n} time(s): {:#?}",
                self.seen
            );
            self.settle(Duration::from_millis(50));
        }
    }

    /// The pid of `connector`'s process now, from a `status` request.
    pub fn pid(&mut self, connector: &str) -> i32 {
        let id = format!("pid-{connector}-{}", self.seen.len());
        self.send(serde_json::json!({"type": "status", "id": id}));
        let status = self.result(&id);
        status["data"]["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == connector)
            .and_then(|c| c["pid"].as_i64())
            .unwrap_or_else(|| panic!("no pid for {connector}: {status}")) as i32
    }

    pub fn settle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while let Ok(v) = self
            .events
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.seen.push(v);
        }
    }

    pub fn inbound_texts(&self, connector: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter(|v| v["type"] == "inbound" && v["connector"] == connector)
            .filter_map(|v| v["message"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// Closes stdin (the gateway goes away) and waits for the exit; gives what it printed.
    pub fn stop(mut self) -> (String, String) {
        drop(self.stdin.take());
        // With the relay, end of stdin does not stop the daemon: SIGTERM does, as for a service.
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.child.try_wait().unwrap().is_none() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let _ = self.child.wait();
        (
            self.stdout_copy.lock().unwrap().clone(),
            self.stderr.lock().unwrap().clone(),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
