//! A connection cut mid-response: the head arrives, the body stops part-way.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The error a [cut](super::Abort::cut_mid_response) body ends with, in
/// place of the rest of the body and its end.
///
/// It stands for the connection closing under the response, so code
/// reading the body treats it as it would a reset; its message says it
/// was injected, so a log reader never takes it for a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection cut mid-response after {after_bytes} body bytes (injected by rampart::chaos)")]
pub struct ConnectionCut {
    after_bytes: u64,
}

impl ConnectionCut {
    /// How many body bytes got through before the cut.
    pub fn after_bytes(&self) -> u64 {
        self.after_bytes
    }
}

/// A response whose body can be cut part-way, as a connection closed
/// mid-response would leave it: what [`Abort::cut_mid_response`] needs of
/// a service's response type.
///
/// Implemented for `http::Response<B>` where `B` is one of
/// `http-body-util`'s boxed bodies ([`BoxBody`], [`UnsyncBoxBody`]) with
/// `Bytes` data and an error that a [`ConnectionCut`] converts into (a
/// [`BoxError`](crate::BoxError) does). A hyper client's
/// `Response<Incoming>` cannot be cut as it is, because an `Incoming` can
/// only be made by hyper: map it into a boxed body beneath the chaos
/// layer (`response.map(|body| body.map_err(Into::into).boxed())`), as a
/// fallback serving its own body needs anyway. For a body type of your
/// own, implement this trait with [`CutBody`].
///
/// [`Abort::cut_mid_response`]: super::Abort::cut_mid_response
pub trait CutMidResponse: Sized {
    /// This response with its body ending in a [`ConnectionCut`] error
    /// after at most `after_bytes` bytes.
    fn cut_after(self, after_bytes: u64) -> Self;
}

impl<E> CutMidResponse for http::Response<BoxBody<Bytes, E>>
where
    E: From<ConnectionCut> + 'static,
{
    fn cut_after(self, after_bytes: u64) -> Self {
        self.map(|body| BoxBody::new(CutBody::new(body, after_bytes)))
    }
}

impl<E> CutMidResponse for http::Response<UnsyncBoxBody<Bytes, E>>
where
    E: From<ConnectionCut> + 'static,
{
    fn cut_after(self, after_bytes: u64) -> Self {
        self.map(|body| UnsyncBoxBody::new(CutBody::new(body, after_bytes)))
    }
}

pin_project! {
    /// A body that yields at most `after_bytes` bytes of the body it wraps
    /// and then fails with [`ConnectionCut`], whether or not there was
    /// more: the end of the message is lost with the connection, so even
    /// a shorter body never ends cleanly. A frame that crosses the limit
    /// is truncated; trailers before the limit pass through.
    ///
    /// The wrapped body is not polled after the cut; it is dropped with
    /// this one (for a hyper client body, that closes its connection).
    #[derive(Debug)]
    pub struct CutBody<B> {
        #[pin]
        inner: B,
        left: u64,
        after_bytes: u64,
        done: bool,
    }
}

impl<B> CutBody<B> {
    /// `inner`, cut after `after_bytes` bytes.
    pub fn new(inner: B, after_bytes: u64) -> Self {
        CutBody {
            inner,
            left: after_bytes,
            after_bytes,
            done: false,
        }
    }
}

impl<B> Body for CutBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: From<ConnectionCut>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let cut = |done: &mut bool, after_bytes: u64| {
            *done = true;
            Poll::Ready(Some(Err(ConnectionCut { after_bytes }.into())))
        };
        if *this.left == 0 {
            return cut(this.done, *this.after_bytes);
        }
        match ready!(this.inner.poll_frame(cx)) {
            // The body ended before the cut: its end is what is lost.
            None => cut(this.done, *this.after_bytes - *this.left),
            Some(Err(e)) => {
                *this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    let len = data.len() as u64;
                    if len > *this.left {
                        // Fits: `left` is below a frame's length, a usize.
                        data.truncate(*this.left as usize);
                        *this.left = 0;
                    } else {
                        *this.left -= len;
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        // As a cut connection does, the body promised its full length.
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;
    use http_body_util::{BodyExt, StreamBody};

    type Chunks =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>>;

    fn chunks(sizes: &[usize]) -> Chunks {
        let frames: Vec<_> = sizes
            .iter()
            .map(|&n| Ok(Frame::data(Bytes::from(vec![b'x'; n]))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    /// Reads frames until the body ends or fails: (data bytes, the error).
    async fn read(body: impl Body<Data = Bytes, Error = BoxError>) -> (usize, Option<BoxError>) {
        let mut body = std::pin::pin!(body);
        let mut got = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => got += frame.into_data().map_or(0, |d| d.len()),
                Err(e) => {
                    assert!(body.frame().await.is_none(), "nothing after the cut");
                    return (got, Some(e));
                }
            }
        }
        (got, None)
    }

    fn cut_at(e: Option<BoxError>) -> u64 {
        e.expect("the body must fail")
            .downcast_ref::<ConnectionCut>()
            .expect("with a ConnectionCut")
            .after_bytes()
    }

    #[tokio::test]
    async fn a_frame_crossing_the_limit_is_truncated_then_the_body_fails() {
        let (got, e) = read(CutBody::new(chunks(&[400, 400, 400]), 1000)).await;
        assert_eq!(got, 1000);
        assert_eq!(cut_at(e), 1000);
    }

    #[tokio::test]
    async fn a_body_shorter_than_the_limit_loses_its_end() {
        let (got, e) = read(CutBody::new(chunks(&[100, 100]), 1000)).await;
        assert_eq!(got, 200);
        assert_eq!(cut_at(e), 200);
    }

    #[tokio::test]
    async fn a_cut_at_zero_sends_the_head_and_no_body() {
        let (got, e) = read(CutBody::new(chunks(&[10]), 0)).await;
        assert_eq!(got, 0);
        assert_eq!(cut_at(e), 0);
    }

    #[tokio::test]
    async fn a_boxed_response_is_cut_through_the_trait() {
        let response = http::Response::new(chunks(&[300, 300]).boxed()).cut_after(450);
        assert_eq!(response.status(), http::StatusCode::OK);
        let (got, e) = read(response.into_body()).await;
        assert_eq!(got, 450);
        assert_eq!(cut_at(e), 450);
    }
}
