//! Request bodies, as every listener reads them.
//!
//! hyper hands a body out in frames, each a slice of the connection's read buffer. Keeping the
//! frames (`axum::body::to_bytes`) keeps every buffer a frame points into: a body sent one byte
//! per TCP segment cost kilobytes per byte. `read` copies each frame into one buffer as it
//! arrives and lets the frame go, so a request holds about the bytes it sent.
//!
//! A body must also keep coming: `Paced` (put around every request body by `Listener`) fails
//! one that falls behind `min_rate` bytes a second once `grace` has passed, so a slow client
//! holds its slot for seconds, not for the whole request deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::ListenerCounters;

/// What a request body may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than this endpoint takes")]
    TooLarge,
    #[error("the body arrived more slowly than the listener's minimum rate")]
    TooSlow,
    #[error("the body ended before it was complete")]
    Broken,
}

impl BodyError {
    /// The status a refused body is answered with; each endpoint words the answer its own way.
    pub fn status(self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooSlow => StatusCode::REQUEST_TIMEOUT,
            Self::Broken => StatusCode::BAD_REQUEST,
        }
    }
}

/// How fast a body must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Time a body gets before the rate counts (a request's first round trips).
    pub grace: Duration,
    /// Bytes a second, on average since the request came, once the grace is over.
    pub min_rate: u64,
}

impl Pace {
    /// When a body that has sent `received` bytes since `started` falls behind. Pure.
    pub fn due(&self, started: Instant, received: u64) -> Instant {
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate.max(1) as f64);
        started + self.grace + earned
    }
}

/// A request body held to a `Pace`; says on `ended` whether it was read to its end.
pub struct Paced {
    inner: Incoming,
    pace: Pace,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    counters: Arc<ListenerCounters>,
    ended: Arc<AtomicBool>,
}

impl Paced {
    pub fn new(
        inner: Incoming,
        pace: Pace,
        counters: Arc<ListenerCounters>,
    ) -> (Self, Arc<AtomicBool>) {
        let started = Instant::now();
        let ended = Arc::new(AtomicBool::new(inner.is_end_stream()));
        let body = Self {
            inner,
            pace,
            started,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(pace.due(started, 0))),
            counters,
            ended: ended.clone(),
        };
        (body, ended)
    }
}

impl HttpBody for Paced {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let due = this.pace.due(this.started, this.received);
                    this.timer.as_mut().reset(due);
                }
                if this.inner.is_end_stream() {
                    this.ended.store(true, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.ended.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    this.counters.count(&this.counters.slow_body);
                    return Poll::Ready(Some(Err(Box::new(BodyError::TooSlow))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// At most this much is set aside before bytes arrive, whatever `Content-Length` announces:
/// an announcement costs nothing to make.
const FIRST_CAPACITY: usize = 16 * 1024;

/// The whole body, at most `limit` bytes, in one buffer. A body that announces more is refused
/// before any of it is read.
pub async fn read(mut body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let hint = body.size_hint();
    if hint.lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut buffer = Vec::with_capacity((hint.lower() as usize).min(FIRST_CAPACITY));
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(buffer),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if buffer.len() + data.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                buffer.extend_from_slice(&data);
            }
            Some(Err(e)) => {
                let slow = e
                    .into_inner()
                    .downcast_ref::<BodyError>()
                    .is_some_and(|e| *e == BodyError::TooSlow);
                return Err(if slow {
                    BodyError::TooSlow
                } else {
                    BodyError::Broken
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_falls_behind_only_after_the_grace_and_its_earned_time() {
        let pace = Pace {
            grace: Duration::from_secs(2),
            min_rate: 1000,
        };
        let t0 = Instant::now();
        assert_eq!(pace.due(t0, 0), t0 + Duration::from_secs(2));
        assert_eq!(pace.due(t0, 3000), t0 + Duration::from_secs(5));
        let stalled = Pace {
            min_rate: 0,
            ..pace
        };
        assert_eq!(
            stalled.due(t0, 5),
            t0 + Duration::from_secs(2) + Duration::from_millis(5000)
        );
    }

    fn chunks(parts: &[&'static [u8]]) -> Body {
        let stream = futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        );
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn frames_are_copied_into_one_buffer_within_the_limit() {
        let body = chunks(&[b"a", b"bc", b"", b"def"]);
        assert_eq!(read(body, 6).await.unwrap(), b"abcdef");
        assert_eq!(
            read(chunks(&[b"abc", b"defg"]), 6).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            read(Body::from("x".repeat(7)), 6).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(read(Body::empty(), 0).await.unwrap(), b"");
        let broken = Body::from_stream(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"a")),
            Err(std::io::Error::other("reset")),
        ]));
        assert_eq!(read(broken, 10).await, Err(BodyError::Broken));
    }
}
