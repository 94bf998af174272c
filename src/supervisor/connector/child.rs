//! Spawning a connector process and the small pumps around it: its stdin writer and its stderr
//! reader. The process is the leader of its own process group, so signals reach the whole tree
//! it may have started.

use std::io;
use std::process::Stdio;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, FramedRead};

use crate::config::ConnectorConfig;
use crate::connectors::kit::secret::Redactor;
use crate::record::log::{Event, EventLog};

/// Longest stderr line kept whole in `bridge.log`; the rest of a longer line is dropped.
const STDERR_LINE_BYTES: usize = 4096;

pub struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Starts the connector with piped stdio in a new process group. `kill_on_drop` is only the
/// backstop: the task stops children through the stop ladder.
pub fn spawn(cfg: &ConnectorConfig, state_dir: &std::path::Path) -> io::Result<Spawned> {
    let mut cmd = Command::new(&cfg.program);
    cmd.args(&cfg.args)
        .envs(&cfg.env)
        .env("BRIDGEKEEPER_CONNECTOR", &cfg.name)
        .env(
            "BRIDGEKEEPER_PROTOCOL",
            bridge_protocol::PROTOCOL_VERSION.to_string(),
        )
        .env("BRIDGEKEEPER_STATE_DIR", state_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &cfg.cwd {
        cmd.current_dir(dir);
    }
    if let Some(dir) = &cfg.session_dir {
        cmd.env("BRIDGEKEEPER_SESSION_DIR", dir);
    }
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("child exited before its pid was read"))?;
    let missing = || io::Error::other("child stdio was not piped");
    Ok(Spawned {
        stdin: child.stdin.take().ok_or_else(missing)?,
        stdout: child.stdout.take().ok_or_else(missing)?,
        stderr: child.stderr.take().ok_or_else(missing)?,
        child,
        pid,
    })
}

/// Signals the connector's whole process group. `Ok(false)` when nothing was left to signal.
pub fn signal_group(pid: u32, signal: Signal) -> nix::Result<bool> {
    match killpg(Pid::from_raw(pid as i32), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes queued command lines to the child's stdin. Dropping every sender closes stdin
/// (after what was queued is written), which is the first rung of the stop ladder.
pub async fn write_stdin(mut stdin: ChildStdin, mut lines: mpsc::Receiver<Bytes>) {
    while let Some(line) = lines.recv().await {
        if stdin.write_all(&line).await.is_err() {
            break; // the child is gone; its exit is handled by the task
        }
        if lines.is_empty() && stdin.flush().await.is_err() {
            break;
        }
    }
}

/// The values of the connector's secret settings (its description says which), as it was
/// given them: taken out of its stderr, whatever it prints.
pub fn secrets_of(cfg: &ConnectorConfig) -> Redactor {
    let settings = crate::connectors::builtin(&cfg.platform).map_or(&[][..], |b| b.settings);
    settings
        .iter()
        .filter(|s| s.secret)
        .fold(Redactor::default(), |redactor, s| {
            let value = cfg
                .env
                .get(s.env)
                .cloned()
                .or_else(|| std::env::var(s.env).ok());
            match value {
                Some(v) => redactor.with(&v, s.env),
                None => redactor,
            }
        })
}

/// Turns the child's stderr into `connector_stderr` events, one per line, `secrets` taken out.
pub async fn pump_stderr(
    stderr: ChildStderr,
    log: EventLog,
    index: usize,
    name: std::sync::Arc<str>,
    secrets: Redactor,
) {
    let mut lines = FramedRead::new(stderr, StderrLines::default());
    while let Some(Ok((line, truncated))) = lines.next().await {
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        log.board().update(index, |c| c.stderr_lines += 1);
        log.emit(
            Some(&name),
            &Event::ConnectorStderr {
                line: log.text(&secrets.redact(text)),
                truncated,
            },
        );
    }
}

/// Splits stderr into lines of at most `STDERR_LINE_BYTES`, never failing on content: stderr is
/// free text, and a decoder error would end the stream.
#[derive(Default)]
struct StderrLines {
    /// Inside a long line whose head was already yielded.
    skipping: bool,
}

impl Decoder for StderrLines {
    type Item = (Bytes, bool);
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        loop {
            let newline = buf.iter().position(|b| *b == b'\n');
            match (newline, self.skipping) {
                (Some(end), true) => {
                    buf.advance(end + 1);
                    self.skipping = false;
                }
                (None, true) => {
                    buf.clear();
                    return Ok(None);
                }
                (Some(end), false) if end <= STDERR_LINE_BYTES => {
                    let line = buf.split_to(end + 1).freeze();
                    return Ok(Some((line.slice(..end), false)));
                }
                (_, false) if buf.len() > STDERR_LINE_BYTES => {
                    let head = buf.split_to(STDERR_LINE_BYTES).freeze();
                    self.skipping = true;
                    return Ok(Some((head, true)));
                }
                (_, false) => return Ok(None),
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        if buf.is_empty() || self.skipping {
            buf.clear();
            return Ok(None);
        }
        Ok(Some((buf.split().freeze(), false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_lines_are_split_and_long_ones_truncated() {
        let mut dec = StderrLines::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"first\n");
        buf.extend(std::iter::repeat_n(b'x', STDERR_LINE_BYTES + 100));
        buf.extend_from_slice(b"\nlast");
        let (a, t) = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!((&a[..], t), (&b"first"[..], false));
        let (b, t) = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!((b.len(), t), (STDERR_LINE_BYTES, true));
        assert!(dec.decode(&mut buf).unwrap().is_none());
        let (c, t) = dec.decode_eof(&mut buf).unwrap().unwrap();
        assert_eq!((&c[..], t), (&b"last"[..], false));
    }
}
