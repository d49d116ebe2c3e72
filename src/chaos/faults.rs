//! What to inject: a delay, an abort, and which requests they apply to.

use crate::error::Validator;
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long an injected delay lasts.
///
/// ```
/// use rampart::chaos::Delay;
/// use std::time::Duration;
///
/// let fixed = Delay::fixed(Duration::from_millis(200));
/// let spread = Delay::uniform(Duration::from_millis(50), Duration::from_millis(400));
/// // Most calls a little slow, a few very slow, as real slowness is.
/// let heavy_tail = Delay::log_normal(Duration::from_millis(80), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay(pub(crate) DelayKind);

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum DelayKind {
    Fixed(Duration),
    Uniform(Duration, Duration),
    /// Log-normal, given by its median and 99th percentile.
    LogNormal {
        p50: Duration,
        p99: Duration,
    },
}

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

impl Delay {
    /// Always `delay`.
    pub fn fixed(delay: Duration) -> Self {
        Delay(DelayKind::Fixed(delay))
    }

    /// Uniformly from `low` to `high` (valid: `low <= high`).
    pub fn uniform(low: Duration, high: Duration) -> Self {
        Delay(DelayKind::Uniform(low, high))
    }

    /// Log-normally distributed with median `p50` and 99th percentile
    /// `p99` (valid: `0 < p50 <= p99`), the shape of real latency: most
    /// calls near the median, a long tail.
    pub fn log_normal(p50: Duration, p99: Duration) -> Self {
        Delay(DelayKind::LogNormal { p50, p99 })
    }

    /// The delay for two uniform draws in `[0, 1)`.
    pub(crate) fn sample(&self, u1: f64, u2: f64) -> Duration {
        match self.0 {
            DelayKind::Fixed(d) => d,
            DelayKind::Uniform(low, high) => low + (high - low).mul_f64(u1),
            DelayKind::LogNormal { p50, p99 } => {
                let mu = p50.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64().ln() - mu) / Z99;
                // Box-Muller: a standard normal from two uniforms (1 - u1
                // is in (0, 1], so its log is finite).
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                // Capped at an hour: the tail must not overflow a Duration.
                Duration::from_secs_f64((mu + sigma * z).exp().min(3600.0))
            }
        }
    }

    fn check(&self, v: &mut Validator) {
        let hour = Duration::from_secs(3600);
        match self.0 {
            DelayKind::Fixed(d) => v.check(d <= hour, "delay", || {
                format!("must be at most an hour, got {d:?}")
            }),
            DelayKind::Uniform(low, high) => v.check(low <= high && high <= hour, "delay", || {
                format!("a uniform delay needs low <= high <= 1 h, got {low:?} and {high:?}")
            }),
            DelayKind::LogNormal { p50, p99 } => {
                v.check(!p50.is_zero() && p50 <= p99 && p99 <= hour, "delay", || {
                    format!(
                        "a log-normal delay needs 0 < p50 <= p99 <= 1 h, got {p50:?} and {p99:?}"
                    )
                })
            }
        }
    }
}

/// What an injected abort does instead of calling the dependency.
pub struct Abort<Res>(pub(crate) AbortKind<Res>);

pub(crate) enum AbortKind<Res> {
    Error(Arc<dyn Fn() -> BoxError + Send + Sync>),
    Response(Arc<dyn Fn() -> Res + Send + Sync>),
    Hang,
    Cut(Cut<Res>),
}

/// Cuts a real response's body short.
pub(crate) type Cut<Res> = Arc<dyn Fn(Res) -> Res + Send + Sync>;

impl<Res> Abort<Res> {
    /// Fails the call with the error `make` builds, as the dependency
    /// would: classifiers, policies and fallbacks see that error itself
    /// (it is not wrapped), so inject the error your dependency really
    /// returns (a connection refused, a timeout).
    pub fn error<E>(make: impl Fn() -> E + Send + Sync + 'static) -> Self
    where
        E: Into<BoxError>,
    {
        Abort(AbortKind::Error(Arc::new(move || make().into())))
    }

    /// Answers with the response `make` builds (e.g. an HTTP 503) without
    /// calling the dependency.
    pub fn response(make: impl Fn() -> Res + Send + Sync + 'static) -> Self {
        Abort(AbortKind::Response(Arc::new(make)))
    }

    /// The call never completes: a dependency that accepts and never
    /// answers. Only a timeout (or the caller giving up) ends it.
    pub fn hang() -> Self {
        Abort(AbortKind::Hang)
    }

    /// Calls the dependency, then cuts its response's body after at most
    /// `after_bytes` bytes, as a connection closed mid-response would: the
    /// head (status, headers) arrives, the body fails with a
    /// [`ConnectionCut`](super::ConnectionCut) and never ends cleanly.
    ///
    /// Layers above the chaos layer see a successful call (a breaker
    /// counts it on the head, as it would a real cut); whoever reads the
    /// body sees the failure. A dependency's error passes through uncut.
    /// Only for response types that can carry a cut body (see
    /// [`CutMidResponse`](super::CutMidResponse)).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{combinators::BoxBody, BodyExt, Full};
    /// use rampart::chaos::{Abort, ChaosLayer, ConnectionCut};
    /// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
    ///
    /// type Response = http::Response<BoxBody<Bytes, rampart::BoxError>>;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rampart::BoxError> {
    /// let chaos = ChaosLayer::<(), Response>::builder("catalog")
    ///     .abort(Abort::cut_mid_response(1024), 100.0)
    ///     .enabled(true)
    ///     .build()?;
    /// let mut svc = ServiceBuilder::new().layer(chaos).service(service_fn(|()| async {
    ///     let body = Full::new(Bytes::from(vec![b'x'; 64 * 1024])).map_err(Into::into).boxed();
    ///     Ok::<_, rampart::BoxError>(http::Response::new(body))
    /// }));
    ///
    /// let response = svc.ready().await?.call(()).await?; // the head arrives
    /// let err = response.into_body().collect().await.unwrap_err(); // the body does not
    /// assert_eq!(err.downcast_ref::<ConnectionCut>().unwrap().after_bytes(), 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cut_mid_response(after_bytes: u64) -> Self
    where
        Res: super::CutMidResponse + 'static,
    {
        Abort(AbortKind::Cut(Arc::new(move |response: Res| {
            response.cut_after(after_bytes)
        })))
    }

    /// What the tracing event names this abort.
    pub(crate) fn name(&self) -> &'static str {
        match self.0 {
            AbortKind::Error(_) => "error",
            AbortKind::Response(_) => "response",
            AbortKind::Hang => "hang",
            AbortKind::Cut(_) => "cut_mid_response",
        }
    }
}

impl<Res> Clone for Abort<Res> {
    fn clone(&self) -> Self {
        Abort(match &self.0 {
            AbortKind::Error(make) => AbortKind::Error(make.clone()),
            AbortKind::Response(make) => AbortKind::Response(make.clone()),
            AbortKind::Hang => AbortKind::Hang,
            AbortKind::Cut(cut) => AbortKind::Cut(cut.clone()),
        })
    }
}

impl<Res> fmt::Debug for Abort<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Abort::{}", self.name())
    }
}

type Predicate<Req> = Arc<dyn Fn(&Req) -> bool + Send + Sync>;

/// The faults a [chaos layer](super::ChaosLayer) injects, as Envoy's fault
/// filter has them: a delay for some percentage of requests, then an
/// abort for some percentage, among the requests a predicate selects.
///
/// A request the predicate selects is delayed with probability
/// `delay_percent / 100`, then (whether delayed or not) aborted with
/// probability `abort_percent / 100`; one that is not aborted then calls
/// the dependency. So a delay with an abort is latency *instead of* the
/// call, a delay alone latency *before* it. The two draws are independent.
///
/// ```
/// use rampart::chaos::{Abort, Delay, Faults};
/// use std::time::Duration;
///
/// // 10 % of calls 300 ms slower; 5 % fail as if the connection were refused.
/// let faults: Faults<String, String> = Faults::new()
///     .delay(Delay::fixed(Duration::from_millis(300)), 10.0)
///     .abort(Abort::error(|| std::io::Error::from(std::io::ErrorKind::ConnectionRefused)), 5.0)
///     .when(|request: &String| request.starts_with("/ratings"));
/// ```
pub struct Faults<Req, Res> {
    pub(crate) when: Option<Predicate<Req>>,
    pub(crate) delay: Option<(Delay, f64)>,
    pub(crate) abort: Option<(Abort<Res>, f64)>,
}

impl<Req, Res> Faults<Req, Res> {
    /// No faults: every request goes through untouched.
    pub fn new() -> Self {
        Faults {
            when: None,
            delay: None,
            abort: None,
        }
    }

    /// Delays `percent` % of the selected requests (0 to 100).
    pub fn delay(mut self, delay: Delay, percent: f64) -> Self {
        self.delay = Some((delay, percent));
        self
    }

    /// Aborts `percent` % of the selected requests (0 to 100).
    pub fn abort(mut self, abort: Abort<Res>, percent: f64) -> Self {
        self.abort = Some((abort, percent));
        self
    }

    /// Only requests for which `select` is true are candidates (a header, a
    /// tenant, a path); by default, every request.
    pub fn when(mut self, select: impl Fn(&Req) -> bool + Send + Sync + 'static) -> Self {
        self.when = Some(Arc::new(select));
        self
    }

    pub(crate) fn check(&self, v: &mut Validator) {
        let percent_ok = |p: f64| (0.0..=100.0).contains(&p);
        if let Some((delay, percent)) = &self.delay {
            delay.check(v);
            v.check(percent_ok(*percent), "delay_percent", || {
                format!("must be from 0 to 100, got {percent}")
            });
        }
        if let Some((_, percent)) = &self.abort {
            v.check(percent_ok(*percent), "abort_percent", || {
                format!("must be from 0 to 100, got {percent}")
            });
        }
    }
}

impl<Req, Res> Default for Faults<Req, Res> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Req, Res> Clone for Faults<Req, Res> {
    fn clone(&self) -> Self {
        Faults {
            when: self.when.clone(),
            delay: self.delay,
            abort: self.abort.clone(),
        }
    }
}

impl<Req, Res> fmt::Debug for Faults<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("when", &self.when.as_ref().map(|_| "predicate"))
            .field("delay", &self.delay)
            .field("abort", &self.abort)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_normal_has_the_given_median_and_99th_percentile() {
        let delay = Delay::log_normal(Duration::from_millis(100), Duration::from_millis(1000));
        // Draw on an even grid of (u1, u2): a deterministic sample.
        let mut samples: Vec<Duration> = (0..200)
            .flat_map(|i| (0..200).map(move |j| (i, j)))
            .map(|(i, j)| delay.sample((i as f64 + 0.5) / 200.0, (j as f64 + 0.5) / 200.0))
            .collect();
        samples.sort();
        let at = |p: f64| samples[((samples.len() as f64) * p) as usize].as_secs_f64() * 1000.0;
        assert!((90.0..110.0).contains(&at(0.5)), "p50 {}", at(0.5));
        assert!((850.0..1150.0).contains(&at(0.99)), "p99 {}", at(0.99));
    }

    #[test]
    fn uniform_spans_its_range() {
        let delay = Delay::uniform(Duration::from_millis(10), Duration::from_millis(20));
        assert_eq!(delay.sample(0.0, 0.5), Duration::from_millis(10));
        assert_eq!(delay.sample(0.5, 0.5), Duration::from_millis(15));
    }
}
