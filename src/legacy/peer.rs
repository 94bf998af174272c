//! Is the HTTP client still there? `GET /messages` takes messages out of the inbox; handing
//! them to a connection whose client has gone (it timed out while we were frozen, or it sent
//! the request and closed at once) would lose them while the ledger says delivered. So the
//! poll looks at its socket first, and its answer puts the batch back when it was never taken.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use http_body::{Frame, SizeHint};
use nix::sys::socket::{MsgFlags, recv};
use serde_json::Value;
use tokio::net::TcpListener;

use super::shape::to_legacy;

use bridge_protocol::message::InboundMessage;

use crate::gateway::in_process::LinkClient;

/// A duplicate of the connection's socket, to look at it without reading from it.
#[derive(Clone, Debug)]
pub struct PeerSocket(Option<Arc<OwnedFd>>);

impl Connected<IncomingStream<'_, TcpListener>> for PeerSocket {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(stream.io().as_fd().try_clone_to_owned().ok().map(Arc::new))
    }
}

impl PeerSocket {
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

/// The body of a `/messages` answer. If hyper drops it before taking the batch (the
/// connection failed first), or the client is found gone just before the batch is handed
/// over, the batch goes back to the head of the inbox.
pub struct BatchBody {
    batch: Option<(Vec<InboundMessage>, Bytes)>,
    client: Arc<LinkClient>,
    peer: PeerSocket,
}

impl BatchBody {
    /// `batch` is answered in the old bridge's shape (`shape::to_legacy`).
    pub fn new(batch: Vec<InboundMessage>, client: Arc<LinkClient>, peer: PeerSocket) -> Self {
        let bot_ids = client.bot_ids();
        let values: Vec<Value> = batch.iter().map(|m| to_legacy(m, &bot_ids)).collect();
        // A Vec<Value> always serialises.
        let bytes = Bytes::from(serde_json::to_vec(&values).unwrap_or_default());
        Self {
            batch: Some((batch, bytes)),
            client,
            peer,
        }
    }

    fn len(&self) -> usize {
        self.batch.as_ref().map_or(0, |(_, b)| b.len())
    }
}

impl http_body::Body for BatchBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.peer.closed() {
            // Dropping the body (below) puts the batch back.
            return Poll::Ready(Some(Err(std::io::ErrorKind::ConnectionAborted.into())));
        }
        Poll::Ready(self.batch.take().map(|(_, bytes)| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.batch.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len() as u64)
    }
}

impl Drop for BatchBody {
    fn drop(&mut self) {
        if let Some((batch, _)) = self.batch.take()
            && !batch.is_empty()
        {
            self.client.note_returned(batch.len());
            self.client.requeue_front(batch);
        }
    }
}
