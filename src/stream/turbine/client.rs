//! Following one instance's stream: connect, read its events into the
//! cluster's merge, and when it stops answering, take its share out and
//! try again after a backoff.

use super::merge::{Host, Merger};
use super::sse::SseReader;
use crate::retry::Backoff;
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::{timeout, Instant};

/// The HTTP client every follower of a turbine shares.
pub(crate) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn http_client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        // A stream is read until it fails: its connection never goes back
        // to the pool, so there is nothing to keep idle.
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// What a follower needs: where to read, where to write, and how
/// patiently.
pub(crate) struct Follower {
    pub(crate) host: Host,
    pub(crate) uri: Uri,
    pub(crate) merger: Arc<Mutex<Merger>>,
    pub(crate) client: HttpClient,
    /// Longest silence (no bytes at all, not even a ping) before the
    /// instance counts as down.
    pub(crate) silence: Duration,
    pub(crate) backoff: Backoff,
    /// Set by the turbine when it stops following this instance: no
    /// update may land after its share was taken out.
    pub(crate) stopped: Arc<AtomicBool>,
}

/// Why one connection to an instance ended.
enum Ended {
    Refused(String),
    Status(StatusCode),
    Silent,
    Closed,
    Failed(String),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Refused(e) => write!(f, "could not connect: {e}"),
            Ended::Status(status) => write!(f, "answered {status}"),
            Ended::Silent => f.write_str("sent nothing for too long"),
            Ended::Closed => f.write_str("ended the stream"),
            Ended::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

impl Follower {
    /// Follows the instance until the task is aborted.
    pub(crate) async fn run(self) {
        let mut failures = 0u32;
        loop {
            let mut delivered = false;
            let ended = self.follow_once(&mut delivered).await;
            self.merger().remove_host(&self.host);
            if delivered {
                tracing::info!(instance = %self.host, why = %ended, "turbine: instance went down");
                failures = 0;
            } else {
                tracing::debug!(instance = %self.host, why = %ended, "turbine: instance not answering");
            }
            failures = failures.saturating_add(1);
            tokio::time::sleep(self.backoff.delay(failures, Duration::ZERO)).await;
        }
    }

    fn merger(&self) -> std::sync::MutexGuard<'_, Merger> {
        self.merger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn follow_once(&self, delivered: &mut bool) -> Ended {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.uri.clone();
        request.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        let response = match timeout(self.silence, self.client.request(request)).await {
            Err(_) => return Ended::Silent,
            Ok(Err(e)) => return Ended::Refused(error_chain(&e)),
            Ok(Ok(response)) => response,
        };
        if response.status() != StatusCode::OK {
            return Ended::Status(response.status());
        }
        let mut body = response.into_body();
        let mut reader = SseReader::new();
        let mut objects = Vec::new();
        loop {
            let frame = match timeout(self.silence, body.frame()).await {
                Err(_) => return Ended::Silent,
                Ok(None) => return Ended::Closed,
                Ok(Some(Err(e))) => return Ended::Failed(error_chain(&e)),
                Ok(Some(Ok(frame))) => frame,
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            // Parsed outside the lock: the merge's lock is held only to
            // file the objects.
            reader.feed(data, |event| match serde_json::from_slice::<Value>(event) {
                Ok(object) => objects.push(object),
                Err(e) => {
                    tracing::debug!(instance = %self.host, error = %e, "turbine: skipped an event that is not JSON");
                }
            });
            if objects.is_empty() {
                continue;
            }
            let now = Instant::now();
            let mut merger = self.merger();
            if self.stopped.load(Ordering::Acquire) {
                return Ended::Closed;
            }
            for object in objects.drain(..) {
                if let Err(why) = merger.update(&self.host, object, now) {
                    tracing::debug!(instance = %self.host, why = why.as_str(), "turbine: skipped an object");
                }
            }
            *delivered = true;
        }
    }
}

/// An error and its sources, on one line: hyper's errors say little
/// without their causes ("client error (Connect)").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}
