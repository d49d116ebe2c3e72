//! The stream as a tower service: answers `GET …/hystrix.stream`, and
//! serves the dashboard page next to it.

use super::body::{EventStream, SlowSubscriber};
use super::hub::{Full, Hub, Limits};
use super::hystrix::Snapshots;
use crate::error::Validator;
use crate::registry::Registry;
use crate::ConfigError;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

/// Default interval between frames (Hystrix's 500 ms).
pub const DEFAULT_DELAY: Duration = Duration::from_millis(500);
/// Default cap on concurrent subscribers (Hystrix's 5).
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 5;
/// Default time a subscriber may read nothing before it is dropped.
pub const DEFAULT_SLOW_SUBSCRIBER_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest `delay` a subscriber may ask for: a snapshot of every
/// component is taken at the shortest delay asked.
pub const MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest `delay` a subscriber may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// A Hystrix metrics stream over a [`Registry`]: a tower service to mount
/// in an axum or hyper app, or to run on its own with
/// [`Server`](super::Server).
///
/// It answers `GET` requests whose path ends in `/hystrix.stream` with a
/// never-ending `text/event-stream` in the Hystrix servlet's format; see
/// the [module](super) for the format, the query parameters and the
/// status codes. A path ending in `/`, `/dashboard` or `/index.html` gets
/// rampart's [dashboard page](super#the-dashboard-page), which reads the
/// stream next to it. Clones share one publisher: each interval's frame is
/// taken and serialised once for every subscriber.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use rampart::stream::{HystrixStream, Server};
///
/// // Every command, breaker, pool and balancer of the process, on
/// // http://127.0.0.1:9000/hystrix.stream
/// let serving = Server::new(HystrixStream::new()).port(9000).start().await?;
/// println!("{}", serving.url("/hystrix.stream"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HystrixStream {
    hub: Arc<Hub>,
    delay: Duration,
}

impl HystrixStream {
    /// A stream of the global registry with Hystrix's defaults: frames
    /// every 500 ms, at most 5 subscribers.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the defaults are valid options")
    }

    /// Starts a stream with options.
    pub fn builder() -> Builder {
        Builder {
            registry: None,
            limits: Limits::default(),
        }
    }
}

impl Default for HystrixStream {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HystrixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HystrixStream")
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

/// Options of a [`HystrixStream`], checked by [`build`](Builder::build).
#[derive(Debug, Clone)]
pub struct Builder {
    registry: Option<Registry>,
    limits: Limits,
}

impl Builder {
    /// The registry whose components are streamed. Default:
    /// [`Registry::global`].
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Interval between frames for subscribers that do not pass `?delay=`.
    /// Default 500 ms; valid from 100 ms to 10 minutes.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.limits.delay = delay;
        self
    }

    /// Most subscribers at once; the next is answered `503`. Default 5
    /// (Hystrix's); valid from 1 to 10 000.
    pub fn max_subscribers(mut self, max: usize) -> Self {
        self.limits.max_subscribers = max;
        self
    }

    /// How long a subscriber may take nothing beyond its own delay (its
    /// reader stopped reading) before it is dropped and its place freed.
    /// Default 10 s; valid from 1 s to an hour.
    pub fn slow_subscriber_timeout(mut self, timeout: Duration) -> Self {
        self.limits.slow_after = timeout;
        self
    }

    /// Checks the options and builds the stream. Building starts nothing:
    /// the publisher runs only while somebody subscribes.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming each option out of its range.
    pub fn build(self) -> Result<HystrixStream, ConfigError> {
        let mut v = Validator::new("hystrix stream".to_owned());
        self.limits.check(&mut v);
        v.finish()?;
        let registry = self.registry.unwrap_or_else(Registry::global);
        let snapshots = Mutex::new(Snapshots::new(registry));
        let produce = Box::new(move || {
            let mut snapshots = snapshots.lock().unwrap_or_else(PoisonError::into_inner);
            Bytes::from(snapshots.take())
        });
        Ok(HystrixStream {
            hub: Hub::new(produce, self.limits),
            delay: self.limits.delay,
        })
    }
}

impl<B> Service<Request<B>> for HystrixStream {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<ResponseBody>, Infallible>>;

    /// Always ready: a subscriber over the limit is answered `503`.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = match last_segment(request.uri().path()) {
            "hystrix.stream" => check_get(request.method())
                .unwrap_or_else(|| subscribe(&self.hub, request.uri().query(), self.delay)),
            "" | "dashboard" | "index.html" => {
                check_get(request.method()).unwrap_or_else(dashboard)
            }
            _ => not_found(
                request.uri().path(),
                "hystrix.stream, and the dashboard page at …/ or …/dashboard",
            ),
        };
        ready(Ok(response))
    }
}

pub(crate) fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// The dashboard page: one self-contained file (no CDN, no fonts to
/// fetch), the same bytes for every request.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Answers a request for the dashboard page.
pub(crate) fn dashboard() -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody(Inner::Full(Some(Bytes::from_static(
        DASHBOARD.as_bytes(),
    )))));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=UTF-8"),
    );
    // A new rampart may bring a new page: let the browser ask again.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `None` for a method the stream answers, else the `405` to send.
pub(crate) fn check_get(method: &Method) -> Option<Response<ResponseBody>> {
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed: the stream answers GET"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(response)
}

/// Answers a subscription: the stream, or why not.
pub(crate) fn subscribe(
    hub: &Arc<Hub>,
    query: Option<&str>,
    default_delay: Duration,
) -> Response<ResponseBody> {
    let delay = match delay_of(query) {
        Ok(delay) => delay.unwrap_or(default_delay),
        Err(message) => return plain(StatusCode::BAD_REQUEST, message),
    };
    match hub.subscribe(delay) {
        Ok((subscriber, frames)) => {
            let body = EventStream::new(hub.clone(), subscriber, frames);
            let mut response = Response::new(ResponseBody(Inner::Events(body)));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream;charset=UTF-8"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
            );
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(Full(max)) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("MaxConcurrentConnections reached: {max}"),
        ),
    }
}

/// The `delay` query parameter, if given: whole milliseconds in range.
fn delay_of(query: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("delay="))
    else {
        return Ok(None);
    };
    let range = MIN_DELAY.as_millis()..=MAX_DELAY.as_millis();
    match value.parse::<u128>() {
        Ok(ms) if range.contains(&ms) => Ok(Some(Duration::from_millis(ms as u64))),
        _ => Err(format!(
            "bad query parameter `delay`: {value:?} is not whole milliseconds from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

pub(crate) fn not_found(path: &str, served: &str) -> Response<ResponseBody> {
    plain(
        StatusCode::NOT_FOUND,
        format!("nothing at {path}: this server answers …/{served}"),
    )
}

pub(crate) fn plain(status: StatusCode, message: String) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody(Inner::Full(Some(Bytes::from(message)))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    response
}

/// The body of the stream's responses: the events, or a short message.
pub struct ResponseBody(Inner);

enum Inner {
    Events(EventStream),
    Full(Option<Bytes>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = SlowSubscriber;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SlowSubscriber>>> {
        match &mut self.0 {
            Inner::Events(events) => Pin::new(events).poll_frame(cx),
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Inner::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Events(events) => events.size_hint(),
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Events(events) => events.fmt(f),
            Inner::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
        }
    }
}
