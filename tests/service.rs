//! bridgekeeper as a systemd service (`Type=notify`): a `NOTIFY_SOCKET` of the test's own (a
//! Unix datagram socket, as systemd's) hears what systemd would.

use std::io::BufRead;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{BRIDGEKEEPER, Reaped, connector, write_config};

/// `READY=1` comes only once the gateway link has said `ready` and the connector has started,
/// with a `STATUS=` line of connector states, and a new one when they change; `WATCHDOG=1` comes at half the `WATCHDOG_USEC`
/// systemd set; closing the gateway link (the end of the service) says `STOPPING=1`. The
/// pings come from the connector tasks' loops: `service::notify`'s own test shows a loop that
/// does not turn stops them.
#[test]
fn systemd_hears_ready_after_the_link_then_the_watchdog_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[connector("fake", &[], "")]);
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut child = Reaped(
        Command::new(BRIDGEKEEPER)
            .args(["run", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, link) = mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said_on_link = Vec::new();
    let mut heard: Vec<(Instant, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + crate::support::PATIENCE;
    // Until READY and two seconds of pings after it.
    let mut ready_at = None;
    while ready_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(2)) {
        assert!(Instant::now() < deadline, "heard: {heard:?}");
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        // What the link said before this datagram came is in the pipe already; the reader
        // thread may take a moment to hand it over.
        said_on_link.extend(link.try_iter());
        if text.contains("READY=1") && ready_at.is_none() {
            let ready = |lines: &[String]| lines.iter().any(|l| l.contains(r#""type":"ready""#));
            if !ready(&said_on_link)
                && let Ok(line) = link.recv_timeout(Duration::from_millis(500))
            {
                said_on_link.push(line);
            }
            assert!(
                ready(&said_on_link),
                "READY=1 before the gateway link said ready: {said_on_link:?}"
            );
            ready_at = Some(Instant::now());
        }
        heard.push((Instant::now(), text));
    }
    let ready = heard.iter().find(|(_, t)| t.contains("READY=1")).unwrap();
    // The connector has been started (it may not have said hello yet): its state comes along,
    // and its next one when it changes.
    assert!(ready.1.contains("STATUS=fake "), "{heard:?}");
    assert!(
        heard.iter().any(|(_, t)| t.contains("STATUS=fake running")),
        "{heard:?}"
    );
    let pings = heard
        .iter()
        .filter(|(at, t)| t.contains("WATCHDOG=1") && *at >= ready.0)
        .count();
    // Every 200 ms for 2 s: about 10; the machines are shared, so only the order of it.
    assert!((3..=15).contains(&pings), "{pings} pings in 2 s: {heard:?}");

    drop(child.stdin.take());
    let mut stopping = false;
    while !stopping && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            stopping = String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
        }
    }
    assert!(stopping, "no STOPPING=1");
    assert!(child.wait().unwrap().success());
}
