//! The body of a stream response: frames as they come, never ending.

use super::hub::{Hub, Subscriber};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::Stream;

/// What a subscriber is sent when an interval has nothing to report, as
/// Hystrix's servlet does.
const PING: &[u8] = b"ping: \n\n";

/// A never-ending `text/event-stream` body: one frame of events per
/// interval (or a `ping:` when there is nothing to report).
///
/// Dropping it frees the subscriber's place at once.
pub struct EventStream {
    hub: Arc<Hub>,
    subscriber: Arc<Subscriber>,
    frames: WatchStream<Bytes>,
    last_sent: Option<Instant>,
}

impl EventStream {
    pub(crate) fn new(
        hub: Arc<Hub>,
        subscriber: Arc<Subscriber>,
        frames: tokio::sync::watch::Receiver<Bytes>,
    ) -> Self {
        EventStream {
            hub,
            subscriber,
            // Only frames produced from now on: an old one could name
            // components that are gone.
            frames: WatchStream::from_changes(frames),
            last_sent: None,
        }
    }
}

/// A subscriber took nothing for longer than the stream's bound (its
/// reader stopped reading): its response ends with this error, so hyper
/// closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowSubscriber;

impl fmt::Display for SlowSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stream subscriber dropped: it read nothing for too long")
    }
}

impl std::error::Error for SlowSubscriber {}

impl Body for EventStream {
    type Data = Bytes;
    type Error = SlowSubscriber;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SlowSubscriber>>> {
        loop {
            if self.subscriber.is_gone() {
                return Poll::Ready(Some(Err(SlowSubscriber)));
            }
            let Some(frame) = ready!(Pin::new(&mut self.frames).poll_next(cx)) else {
                // The hub is gone: nothing more will come.
                return Poll::Ready(None);
            };
            let now = Instant::now();
            let delay = self.subscriber.delay;
            // Frames come every (shortest delay) or a little later; take
            // one once this subscriber's own delay has about passed.
            let slack = (delay / 4).min(Duration::from_millis(50));
            if self
                .last_sent
                .is_some_and(|last| now.duration_since(last) + slack < delay)
            {
                continue;
            }
            self.last_sent = Some(now);
            self.subscriber.took(&self.hub);
            let data = if frame.is_empty() {
                Bytes::from_static(PING)
            } else {
                frame
            };
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.subscriber.leave();
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("delay", &self.subscriber.delay)
            .finish_non_exhaustive()
    }
}
