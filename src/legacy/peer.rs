//! Is the HTTP client still there? `GET /messages` takes messages out of the inbox; handing
//! them to a connection whose client has gone (it timed out while we were frozen, or it sent
//! the request and closed at once) would lose them while the ledger says delivered. So the
//! poll looks at its socket first; its answer puts the batch back when it was never taken, and
//! once taken counts it as handed over only when the client's TCP acknowledged it without a
//! reset (`handover`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use bridge_protocol::message::InboundMessage;
use http_body::{Frame, SizeHint};
use nix::sys::socket::{MsgFlags, recv};
use serde_json::Value;

use super::shape::to_legacy;
use crate::gateway::in_process::GatewayClient;

/// A duplicate of the connection's socket, to look at it without reading from it.
#[derive(Clone, Debug)]
pub struct PeerSocket(Option<Arc<OwnedFd>>);

impl PeerSocket {
    /// The `connect_info` of the drop-in listener (`listener::Listener`).
    pub fn of(stream: &tokio::net::TcpStream, _: std::net::SocketAddr) -> Self {
        Self(stream.as_fd().try_clone_to_owned().ok().map(Arc::new))
    }

    /// The client has closed its end: the request was read, and what follows is end of file.
    /// (Pipelined bytes, or nothing yet, mean it is still there.)
    pub fn closed(&self) -> bool {
        let Some(fd) = &self.0 else { return false };
        let mut probe = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        match recv(fd.as_raw_fd(), &mut probe, flags) {
            Ok(0) => true,
            Ok(_) => false,
            Err(nix::errno::Errno::EAGAIN) => false,
            // Reset or otherwise broken: nobody will read an answer.
            Err(_) => true,
        }
    }
}

/// TCP states of Linux's `tcp_states.h` (libc does not export them).
const TCP_TIME_WAIT: u8 = 6;
const TCP_CLOSE: u8 = 7;

/// TCP's own view of the connection (`TCP_INFO`, `SO_ERROR`): what the peer's kernel
/// acknowledged, and whether it reset the connection.
#[derive(Debug, Clone, Copy)]
struct TcpView {
    state: u8,
    bytes_acked: u64,
    in_flight: bool,
    /// The peer reset the connection (`ECONNRESET`, or `EPIPE` on a write after it).
    reset: bool,
}

impl PeerSocket {
    fn tcp_view(&self) -> Option<TcpView> {
        let fd = self.0.as_ref()?.as_raw_fd();
        let info: libc::tcp_info = socket_option(fd, libc::IPPROTO_TCP, libc::TCP_INFO)?;
        let error: libc::c_int =
            socket_option(fd, libc::SOL_SOCKET, libc::SO_ERROR).unwrap_or_default();
        Some(TcpView {
            state: info.tcpi_state,
            bytes_acked: info.tcpi_bytes_acked,
            in_flight: info.tcpi_unacked > 0 || info.tcpi_notsent_bytes > 0,
            reset: error == libc::ECONNRESET || error == libc::EPIPE,
        })
    }
}

/// `getsockopt` for a plain C value (`tcp_info`, an `int`).
fn socket_option<T: Copy>(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> Option<T> {
    // SAFETY: `T` is a plain C struct or integer the kernel fills up to `len` bytes, starting
    // zeroed; `fd` is a socket we hold a duplicate of.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut T).cast(), &mut len) };
    (rc == 0).then_some(value)
}

/// How long a written answer may take to be acknowledged by the client's TCP before its
/// delivery is called unknown.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// After the acknowledgement, how long a reset still means "not read": a client that closes
/// with our answer unread in its buffer resets the connection at once.
const RESET_GRACE: Duration = Duration::from_millis(200);

/// What became of a batch handed to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// The client's TCP acknowledged every byte, and the client did not reset the connection.
    Delivered,
    /// The client had gone, or left without reading: its TCP reset the connection.
    Lost,
    /// Neither within `ACK_WAIT`.
    Unknown,
}

/// Watches the connection after the answer was written (the `/messages` answer closes the
/// connection, so nothing else reads from it and a reset stays visible to us).
async fn handover(peer: &PeerSocket, acked_before: u64, len: usize) -> Handover {
    let started = tokio::time::Instant::now();
    let mut acked_at = None;
    loop {
        let Some(view) = peer.tcp_view() else {
            return Handover::Unknown;
        };
        if view.reset {
            return Handover::Lost;
        }
        if acked_at.is_none() && view.bytes_acked >= acked_before + len as u64 && !view.in_flight {
            acked_at = Some(tokio::time::Instant::now());
        }
        match acked_at {
            Some(at) => {
                // Closed in order (FIN both ways), or quiet long enough: it was read.
                if view.state == TCP_TIME_WAIT || view.state == TCP_CLOSE {
                    return Handover::Delivered;
                }
                if at.elapsed() >= RESET_GRACE {
                    return Handover::Delivered;
                }
            }
            None if view.state == TCP_CLOSE => return Handover::Lost,
            None if started.elapsed() >= ACK_WAIT => return Handover::Unknown,
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The body of a `/messages` answer. If hyper drops it before taking the batch (the
/// connection failed first), or the client is found gone just before the batch is handed
/// over, the batch goes back to the head of the inbox. Once taken, the client's TCP must
/// acknowledge it: a reset puts the batch back too; no answer either way within `ACK_WAIT`
/// is counted and alerted as unknown, never as delivered.
pub struct BatchBody {
    batch: Vec<InboundMessage>,
    bytes: Option<Bytes>,
    len: usize,
    taken: bool,
    acked_before: u64,
    client: Arc<GatewayClient>,
    peer: PeerSocket,
}

impl BatchBody {
    /// `batch` is answered in the old bridge's shape (`shape::to_legacy`).
    pub fn new(batch: Vec<InboundMessage>, client: Arc<GatewayClient>, peer: PeerSocket) -> Self {
        let bot_ids = client.bot_ids();
        let values: Vec<Value> = batch.iter().map(|m| to_legacy(m, &bot_ids)).collect();
        // A Vec<Value> always serialises.
        let bytes = Bytes::from(serde_json::to_vec(&values).unwrap_or_default());
        let acked_before = peer.tcp_view().map_or(0, |v| v.bytes_acked);
        Self {
            batch,
            len: bytes.len(),
            bytes: Some(bytes),
            taken: false,
            acked_before,
            client,
            peer,
        }
    }
}

impl http_body::Body for BatchBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.bytes.is_some() && self.peer.closed() {
            // Dropping the body (below) puts the batch back.
            return Poll::Ready(Some(Err(std::io::ErrorKind::ConnectionAborted.into())));
        }
        let frame = self.bytes.take().map(|bytes| Ok(Frame::data(bytes)));
        self.taken |= frame.is_some();
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len as u64)
    }
}

impl Drop for BatchBody {
    fn drop(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return;
        }
        if !self.taken {
            self.client.note_returned(batch.len());
            self.client.requeue_front(batch);
            return;
        }
        let (client, peer) = (self.client.clone(), self.peer.clone());
        let (acked_before, len) = (self.acked_before, self.len);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            match handover(&peer, acked_before, len).await {
                Handover::Delivered => {}
                Handover::Lost => {
                    client.note_returned(batch.len());
                    client.requeue_front(batch);
                }
                Handover::Unknown => client.delivery_unknown(&batch),
            }
        });
    }
}
