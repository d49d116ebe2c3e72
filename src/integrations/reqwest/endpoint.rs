//! One instance of a dependency, called through a shared `reqwest::Client`.

use super::future::ResponseFuture;
use crate::deadline::{Deadline, WithDeadline};
use crate::error::{ConfigError, Validator};
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Sends `http::Request`s to one instance of a dependency through a shared
/// [`reqwest::Client`](::reqwest::Client): a balancer endpoint in one line.
///
/// The instance's scheme, host and port come from the base URL given to
/// [`new`](Self::new) (`"http://10.0.0.7:8080"`); the path and query come
/// from each request. So one request can go to any instance, and the
/// balancer can send it again to another one.
///
/// # Requests and responses
///
/// It is a `tower::Service<http::Request<Bytes>>` answering with an
/// `http::Response<Bytes>`:
///
/// - **`http::Request`, not `reqwest::Request`**: a balancer needs to clone
///   a request to retry it, and a `reqwest::Request` is not `Clone` (its
///   body may be a stream). An `http::Request<Bytes>` is, and cloning it
///   copies a pointer, not the body. It is also the type
///   [`HttpPolicy`](crate::balance::HttpPolicy) reads (a retry needs an
///   idempotent method), and the one hyper, axum and tower-http speak.
///   Build one with `http::Request::get("/items?page=2").body(Bytes::new())`;
///   a `String` or a `Vec<u8>` body becomes `Bytes` with `Bytes::from`,
///   without a copy.
/// - **one body type, `Bytes`**, not any body reqwest takes: with a generic
///   body, `service.ready()` could not tell which request type it is
///   readied for, and every call would need a type annotation.
/// - **the whole body is read** before the future resolves, so a read
///   error is the attempt's error (and may be retried), a timeout above
///   the balancer covers the body too, and the balancer's latency estimate
///   measures the whole answer. For streaming downloads, call the
///   `reqwest::Client` yourself.
/// - the status, headers and extensions of reqwest's response are kept, so
///   [`HttpPolicy`](crate::balance::HttpPolicy) classifies by status, and a
///   [`RetryBudgetExhaustedMarker`](crate::retry::RetryBudgetExhaustedMarker)
///   it inserts reaches the caller in the response's extensions.
///
/// The request's own scheme and authority, if it has any, are ignored: the
/// endpoint decides where the request goes. Its method, headers, version
/// and extensions are sent as they are; reqwest sets `Host` from the
/// instance's address unless the request carries one.
///
/// # Errors
///
/// A call fails with reqwest's own [`reqwest::Error`](::reqwest::Error):
/// the connection was refused, the answer was cut off, a timeout set on
/// the client ran out. [`ErrorKind::of`](crate::ErrorKind::of) reads a
/// reqwest timeout as [`ErrorKind::Timeout`](crate::ErrorKind::Timeout).
/// A status such as 503 is not an error: it is a response, for the policy
/// or the breaker's classifier to judge.
///
/// # The client
///
/// Every endpoint holds a clone of one `reqwest::Client`, which shares one
/// connection pool, so building an endpoint per instance costs nothing on
/// the network. rampart asks reqwest for no TLS: for `https://` instances,
/// enable a TLS feature of reqwest in your own crate (`rustls-tls` or
/// `native-tls`). A client built with `no_proxy()` sends to the instance
/// itself even when the environment names a proxy.
///
/// # Example
///
/// ```no_run
/// use bytes::Bytes;
/// use rampart::balance::{Balance, HttpPolicy};
/// use tower::{Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rampart::BoxError> {
/// let client = reqwest::Client::new();
/// let mut catalog = Balance::builder("catalog")
///     .policy(HttpPolicy)
///     .build(rampart::reqwest::endpoints(
///         &client,
///         ["http://10.0.0.1:8080", "http://10.0.0.2:8080"],
///     )?)?;
///
/// let request = http::Request::get("/items?page=2").body(Bytes::new())?;
/// let response = catalog.ready().await?.call(request).await?;
/// println!("{}: {} bytes", response.status(), response.body().len());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReqwestEndpoint {
    client: ::reqwest::Client,
    scheme: Scheme,
    authority: Authority,
    /// `scheme://authority`, as the key and for `Debug`.
    base: Arc<str>,
}

impl ReqwestEndpoint {
    /// The instance at `base`, an absolute URL with only a scheme, a host
    /// and an optional port: `"http://10.0.0.7:8080"`, `"https://ratings"`
    /// (a trailing `/` is allowed).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] (field `base`) when `base` is not such a URL: no
    /// scheme or host, a scheme other than `http` and `https`, a path other
    /// than `/`, a query, or user information (give credentials in a
    /// header).
    ///
    /// ```
    /// use rampart::reqwest::ReqwestEndpoint;
    ///
    /// let client = reqwest::Client::new();
    /// let instance = ReqwestEndpoint::new(client.clone(), "http://10.0.0.7:8080")?;
    /// assert_eq!(instance.base(), "http://10.0.0.7:8080");
    ///
    /// let error = ReqwestEndpoint::new(client, "10.0.0.7:8080/api").unwrap_err();
    /// assert!(error.names("base"));
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    pub fn new(client: ::reqwest::Client, base: &str) -> Result<Self, ConfigError> {
        let mut v = Validator::new(format!("reqwest endpoint {base:?}"));
        let parts = check_base(base, &mut v);
        v.finish()?;
        let (scheme, authority) = parts.expect("checked above");
        Ok(Self::from_parts(client, scheme, authority))
    }

    /// The instance at `addr`, over plain `http`. Cannot fail, so it suits
    /// endpoints made as they appear in a feed of addresses.
    ///
    /// ```
    /// use rampart::balance::{Balance, Endpoint, Endpoints, HttpPolicy};
    /// use rampart::reqwest::ReqwestEndpoint;
    /// use std::net::SocketAddr;
    ///
    /// let addr: SocketAddr = "10.0.0.7:8080".parse().unwrap();
    /// let client = reqwest::Client::new();
    /// assert_eq!(ReqwestEndpoint::http(client.clone(), addr).base(), "http://10.0.0.7:8080");
    ///
    /// // The instances a registry lists, as the list changes.
    /// let (registry, feed) = tokio::sync::watch::channel(vec![addr]);
    /// let catalog = Balance::builder("catalog").policy(HttpPolicy).build(Endpoints::watch(
    ///     feed,
    ///     move |addr: &SocketAddr| Endpoint::new(*addr, ReqwestEndpoint::http(client.clone(), *addr)),
    /// ))?;
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    pub fn http(client: ::reqwest::Client, addr: SocketAddr) -> Self {
        let authority = addr
            .to_string()
            .parse()
            .expect("a socket address is a valid authority");
        Self::from_parts(client, Scheme::HTTP, authority)
    }

    fn from_parts(client: ::reqwest::Client, scheme: Scheme, authority: Authority) -> Self {
        ReqwestEndpoint {
            base: format!("{scheme}://{authority}").into(),
            client,
            scheme,
            authority,
        }
    }

    /// `scheme://host:port` of the instance, as given (less a trailing `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The shared client.
    pub fn client(&self) -> &::reqwest::Client {
        &self.client
    }

    /// This instance as a balancer [`Endpoint`](crate::balance::Endpoint),
    /// keyed by its [`base`](Self::base) URL.
    #[cfg(feature = "balance")]
    pub fn into_endpoint(self) -> crate::balance::Endpoint<String, Self> {
        crate::balance::Endpoint::new(self.base.to_string(), self)
    }

    /// The URL of `uri`'s path and query on this instance.
    fn url(&self, uri: &Uri) -> Uri {
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        Uri::from_parts(parts).expect("a scheme, an authority and a path make a URI")
    }
}

/// Endpoints for a balancer: one [`ReqwestEndpoint`] per base URL, all
/// sharing `client`, keyed by their base URLs.
///
/// # Errors
///
/// A [`ConfigError`] naming every base URL that
/// [`ReqwestEndpoint::new`] refuses (field `base`). An empty list and a
/// URL named twice are reported by the balancer's
/// [`build`](crate::balance::Builder::build).
///
/// ```
/// use rampart::balance::{Balance, HttpPolicy};
///
/// let client = reqwest::Client::new();
/// let catalog = Balance::builder("catalog")
///     .policy(HttpPolicy)
///     .build(rampart::reqwest::endpoints(&client, ["http://10.0.0.1:8080", "http://10.0.0.2:8080"])?)?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[cfg(feature = "balance")]
pub fn endpoints<I>(
    client: &::reqwest::Client,
    bases: I,
) -> Result<crate::balance::Endpoints<String, ReqwestEndpoint>, ConfigError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut v = Validator::new("reqwest endpoints".into());
    let endpoints: Vec<_> = bases
        .into_iter()
        .filter_map(|base| {
            let (scheme, authority) = check_base(base.as_ref(), &mut v)?;
            Some(ReqwestEndpoint::from_parts(client.clone(), scheme, authority).into_endpoint())
        })
        .collect();
    v.finish()?;
    Ok(crate::balance::Endpoints::fixed(endpoints))
}

/// The scheme and authority of `base`, or a violation of field `base`.
fn check_base(base: &str, v: &mut Validator) -> Option<(Scheme, Authority)> {
    let uri = match base.parse::<Uri>() {
        Ok(uri) => uri,
        Err(e) => {
            v.check(false, "base", || {
                format!("must be a URL, got {base:?} ({e})")
            });
            return None;
        }
    };
    let scheme = uri
        .scheme()
        .filter(|s| matches!(s.as_str(), "http" | "https"));
    let authority = uri.authority().filter(|a| !a.host().is_empty());
    let path_ok = matches!(uri.path(), "" | "/");
    let ok = scheme.is_some()
        && authority.is_some_and(|a| !a.as_str().contains('@'))
        && path_ok
        && uri.query().is_none();
    v.check(ok, "base", || {
        format!(
            "must be an http or https URL with a host, an optional port and \
             no path, query or user information (the request gives the path), \
             got {base:?}"
        )
    });
    match (scheme, authority) {
        (Some(scheme), Some(authority)) if ok => Some((scheme.clone(), authority.clone())),
        _ => None,
    }
}

impl fmt::Debug for ReqwestEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestEndpoint")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Service<http::Request<Bytes>> for ReqwestEndpoint {
    type Response = http::Response<Bytes>;
    type Error = ::reqwest::Error;
    type Future = ResponseFuture;

    /// Always ready: reqwest's pool has no readiness of its own.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        parts.uri = self.url(&parts.uri);
        let mut request = http::Request::from_parts(parts, body);
        // A deadline goes out as the time left now, when this attempt (a
        // retry, a hedge) is sent, not when the call began.
        if let Some(deadline) = request.extensions().get::<Deadline>().copied() {
            request.set_deadline(deadline, tokio::time::Instant::now());
        }
        match ::reqwest::Request::try_from(request) {
            Ok(request) => ResponseFuture::sending(self.client.call(request)),
            Err(error) => ResponseFuture::failed(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_gives_scheme_host_and_port_the_request_path_and_query() {
        let instance =
            ReqwestEndpoint::new(::reqwest::Client::new(), "https://10.0.0.1:8443/").unwrap();
        for (request, sent) in [
            ("/items?page=2", "https://10.0.0.1:8443/items?page=2"),
            // The request's own scheme and authority are not where it goes.
            ("http://elsewhere:9/items", "https://10.0.0.1:8443/items"),
            ("http://elsewhere", "https://10.0.0.1:8443/"),
            // Percent-encoding is kept as it is.
            ("/a%20b?q=%2F", "https://10.0.0.1:8443/a%20b?q=%2F"),
        ] {
            let uri: Uri = request.parse().unwrap();
            assert_eq!(instance.url(&uri).to_string(), sent, "{request}");
        }
    }
}
