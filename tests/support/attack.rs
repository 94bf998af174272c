//! What a hostile stranger does to a listener, kept as test fixtures: a request head, then its
//! body one byte per TCP segment (`TCP_NODELAY`, a write every millisecond), on several
//! connections at once, each opened again when the listener lets it go. The memory this costs
//! the listener is measured by the tests and benchmarks that use it.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Trickling connections under way.
pub struct Trickle {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Trickled>>,
}

/// What the trickling connections sent and got.
#[derive(Debug, Default)]
pub struct Trickled {
    /// Body bytes written.
    pub bytes: u64,
    /// Connections opened (the first ones and each reopening).
    pub connections: u64,
    /// Answers the listener gave, by status (0: closed without an answer).
    pub answers: BTreeMap<u16, u64>,
}

impl Trickle {
    /// `connections` connections to `addr`, each sending `head` (a request head announcing a
    /// body), then the body a byte at a time.
    pub fn start(addr: &str, head: &str, connections: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..connections)
            .map(|_| {
                let (stop, addr, head) = (stop.clone(), addr.to_owned(), head.to_owned());
                std::thread::spawn(move || trickle(&addr, &head, &stop))
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops every connection; what they sent and got, added up.
    pub fn finish(self) -> Trickled {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Trickled::default();
        for t in self.threads {
            let one = t.join().unwrap();
            all.bytes += one.bytes;
            all.connections += one.connections;
            for (status, n) in one.answers {
                *all.answers.entry(status).or_default() += n;
            }
        }
        all
    }
}

fn trickle(addr: &str, head: &str, stop: &AtomicBool) -> Trickled {
    let mut done = Trickled::default();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        done.connections += 1;
        s.set_nodelay(true).unwrap();
        if s.write_all(head.as_bytes()).is_err() {
            continue;
        }
        s.set_nonblocking(true).unwrap();
        let mut answer = [0u8; 64];
        let status = loop {
            if stop.load(Ordering::Relaxed) {
                return done;
            }
            match s.write(b"a") {
                Ok(n) => done.bytes += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break 0,
            }
            match s.read(&mut answer) {
                Ok(0) => break 0,
                Ok(n) => break status_of(&answer[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break 0,
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        *done.answers.entry(status).or_default() += 1;
    }
    done
}

/// The status code of an HTTP answer's first bytes (0 if none can be read).
pub fn status_of(answer: &[u8]) -> u16 {
    String::from_utf8_lossy(answer)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A request head for `path` announcing a body of `length` bytes, with `headers` (each
/// `Name: value`).
pub fn head(method: &str, path: &str, length: usize, headers: &[&str]) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// A TCP connection to `port` on 127.0.0.1 from `source` (another loopback address): a second
/// client, as far as the listener can tell.
pub fn connect_from(source: Ipv4Addr, port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddrV4::new(source, 0).into()).unwrap();
        socket
            .connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into())
            .await
            .unwrap()
            .into_std()
            .unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
}

/// A process's resident memory in MiB (`VmRSS`), the listener's cost.
pub fn rss(pid: u32) -> f64 {
    super::rss_mib(pid as i32, "VmRSS:")
}

/// Sends `head` alone (none of the body it announces) and reads the answer: its status, or 0
/// if none came within 3 s. A listener that judges the head answers at once.
pub fn answer_to_head(addr: &str, head: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 64];
    match s.read(&mut answer) {
        Ok(n) => status_of(&answer[..n]),
        Err(_) => 0,
    }
}

/// How the attack went, for the test's output and the benchmark table.
pub fn report(receiver: &str, idle: f64, after: f64, sent: &Trickled) {
    eprintln!(
        "{receiver}: RSS idle {idle:.1} MiB, after 20 s of 8 trickling connections {after:.1} MiB (x{:.2}); {} body bytes on {} connections, answers {:?}",
        after / idle.max(0.1),
        sent.bytes,
        sent.connections,
        sent.answers
    );
}

/// The attack of the acceptance: 8 connections trickle `head`'s body at `addr` for
/// 20 s; halfway, `meanwhile` (a real client's request) must be answered within 3 s. The
/// listener's process (`pid`) may grow by a few MiB at most, and every slow body is cut (408)
/// rather than held for the request deadline. Gives the RSS idle and after, in MiB.
pub fn trickle_and_measure(
    receiver: &str,
    addr: &str,
    head: &str,
    pid: u32,
    meanwhile: impl FnOnce(),
) -> (f64, f64) {
    let idle = rss(pid);
    let attack = Trickle::start(addr, head, 8);
    std::thread::sleep(Duration::from_secs(10));
    let started = std::time::Instant::now();
    meanwhile();
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    let after = rss(pid);
    let sent = attack.finish();
    report(receiver, idle, after, &sent);
    assert!(
        took < Duration::from_secs(3),
        "the real request took {took:?}"
    );
    assert!(sent.bytes > 20_000, "the attack sent little: {sent:?}");
    assert!(
        sent.answers.get(&408).copied().unwrap_or(0) >= 8,
        "slow bodies are cut: {sent:?}"
    );
    assert!(
        after - idle < 8.0,
        "{receiver} grew from {idle:.1} to {after:.1} MiB on {} bytes",
        sent.bytes
    );
    (idle, after)
}
