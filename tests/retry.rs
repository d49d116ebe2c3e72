//! The retry layer on a paused clock: what it retries, how many times,
//! how long it waits, what the budget and `Retry-After` do, how it stands
//! with a breaker, a fallback and readiness, and what a dropped call does.

use rampart::circuit_breaker::{CircuitBreakerLayer, CircuitOpen};
use rampart::retry::{
    Backoff, HttpPolicy, Policy, RetryBudget, RetryBudgetExhaustedMarker, RetryLayer,
};
use rampart::{BoxError, Command, ErrorKind};
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::limit::ConcurrencyLimit;
use tower::{service_fn, Layer, Service, ServiceExt};

type Answer = Result<http::Response<()>, BoxError>;

/// A dependency answering from a script (then 200s), recording when each
/// attempt arrived and with which method.
#[derive(Clone, Default)]
struct Dependency {
    script: Arc<Mutex<VecDeque<Answer>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Dependency {
    fn scripted(answers: impl IntoIterator<Item = Answer>) -> Self {
        let dependency = Dependency::default();
        dependency.script.lock().unwrap().extend(answers);
        dependency
    }

    fn attempts(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Time between consecutive attempts.
    fn gaps(&self) -> Vec<Duration> {
        let arrivals = self.arrivals.lock().unwrap();
        arrivals.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn service(
        &self,
    ) -> impl Service<http::Request<()>, Response = http::Response<()>, Error = BoxError, Future: Send>
           + Clone {
        let this = self.clone();
        service_fn(move |_: http::Request<()>| {
            this.arrivals.lock().unwrap().push(Instant::now());
            let answer = this.script.lock().unwrap().pop_front();
            async move { answer.unwrap_or_else(|| Ok(status(200))) }
        })
    }
}

fn status(code: u16) -> http::Response<()> {
    http::Response::builder().status(code).body(()).unwrap()
}

fn with_retry_after(code: u16, value: &str) -> Answer {
    Ok(http::Response::builder()
        .status(code)
        .header(http::header::RETRY_AFTER, value)
        .body(())
        .unwrap())
}

fn refused() -> Answer {
    Err(io::Error::from(io::ErrorKind::ConnectionRefused).into())
}

fn get() -> http::Request<()> {
    http::Request::get("/titles").body(()).unwrap()
}

/// A fixed wait: decorrelated jitter between `d` and `d` is `d`.
fn fixed(d: Duration) -> Backoff {
    Backoff::decorrelated(d, d).unwrap()
}

fn ample() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(10), 1000, 1.0).unwrap()
}

async fn send<S>(svc: &mut S, request: http::Request<()>) -> Answer
where
    S: Service<http::Request<()>, Response = http::Response<()>, Error = BoxError>,
{
    svc.ready().await?.call(request).await
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_is_retried_up_to_max_attempts_after_each_backoff() {
    let dependency = Dependency::scripted([Ok(status(503)), Ok(status(502)), Ok(status(504))]);
    let layer = RetryLayer::builder("max")
        .policy(HttpPolicy)
        .max_attempts(3)
        .backoff(fixed(MS(50)))
        .budget(ample())
        .build()
        .unwrap();
    let mut svc = layer.layer(dependency.service());
    let response = send(&mut svc, get()).await.unwrap();
    assert_eq!(
        response.status(),
        504,
        "the last attempt's answer comes back"
    );
    assert_eq!(dependency.attempts(), 3);
    assert_eq!(dependency.gaps(), [MS(50), MS(50)]);
    assert_eq!(layer.handle().retries(), 2);

    // One that recovers stops the retries.
    let dependency = Dependency::scripted([Ok(status(503))]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap().status(), 200);
    assert_eq!(dependency.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn what_the_policy_does_not_allow_is_not_retried() {
    let layer = RetryLayer::builder("policy")
        .policy(HttpPolicy)
        .budget(ample())
        .build()
        .unwrap();
    // Not idempotent.
    let dependency = Dependency::scripted([Ok(status(503))]);
    let post = http::Request::post("/orders").body(()).unwrap();
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, post).await.unwrap().status(), 503);
    assert_eq!(dependency.attempts(), 1);
    // Not a failure worth retrying.
    let dependency = Dependency::scripted([Ok(status(404)), Ok(status(500))]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap().status(), 404);
    // A 429 that does not say when to come back.
    let dependency = Dependency::scripted([Ok(status(429))]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap().status(), 429);
    assert_eq!(dependency.attempts(), 1);

    // The default policy retries only what never reached the dependency.
    let layer = RetryLayer::builder("default")
        .budget(ample())
        .build()
        .unwrap();
    let dependency = Dependency::scripted([refused(), Err("reset mid-answer".into())]);
    let mut svc = layer.layer(dependency.service());
    let err = send(&mut svc, get()).await.unwrap_err();
    assert_eq!(err.to_string(), "reset mid-answer");
    assert_eq!(dependency.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_sets_the_wait_and_too_long_a_wait_means_no_retry() {
    let layer = RetryLayer::builder("retry-after")
        .policy(HttpPolicy)
        .backoff(fixed(MS(10)))
        .max_retry_after(Duration::from_secs(5))
        .budget(ample())
        .build()
        .unwrap();
    let dependency = Dependency::scripted([with_retry_after(429, "2")]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap().status(), 200);
    assert_eq!(dependency.gaps(), [Duration::from_secs(2)]);

    // Longer than allowed: returned at once, as Envoy does.
    let dependency = Dependency::scripted([with_retry_after(503, "60")]);
    let mut svc = layer.layer(dependency.service());
    let started = Instant::now();
    assert_eq!(send(&mut svc, get()).await.unwrap().status(), 503);
    assert_eq!(dependency.attempts(), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_ends_the_call_and_says_so() {
    // No floor, 50 %: two requests earn one retry.
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
    let layer = RetryLayer::builder("budget")
        .policy(HttpPolicy)
        .max_attempts(5)
        .backoff(Backoff::none())
        .budget(budget.clone())
        .build()
        .unwrap();
    // The same budget, shared with a second layer.
    let other = RetryLayer::builder("budget-2")
        .policy(HttpPolicy)
        .budget(budget.clone())
        .build()
        .unwrap();
    let dependency = Dependency::scripted([]);
    let mut svc = other.layer(dependency.service());
    send(&mut svc, get()).await.unwrap(); // one deposit, no retry

    let dependency = Dependency::scripted(std::iter::repeat_with(|| Ok(status(503))).take(10));
    let mut svc = layer.layer(dependency.service());
    let response = send(&mut svc, get()).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response
        .extensions()
        .get::<RetryBudgetExhaustedMarker>()
        .is_some());
    assert_eq!(dependency.attempts(), 2, "one retry: 50 % of two requests");
    assert_eq!(layer.handle().budget_exhausted(), 1);

    // An error comes back wrapped, with its own error as the source.
    let dependency = Dependency::scripted([refused(), refused()]);
    let mut svc = layer.layer(dependency.service());
    let err = send(&mut svc, get()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::RetryBudgetExhausted);
    assert_eq!(dependency.attempts(), 1);
}

/// Found by a user trial: a rate limit's rejection was retried at the
/// backoff's pace, each retry sure to be refused again, spending the
/// budget; its `retry_after` is now the retry's `Retry-After`.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_call_is_retried_when_its_permit_comes() {
    use rampart::rate_limit::{RateLimitLayer, RateLimited};
    use rampart::registry::Registry;

    // Attempts that reached the dependency, beneath the rate limit.
    for (max_retry_after, attempts, waited) in [(MS(5000), 2, MS(1000)), (MS(500), 1, MS(0))] {
        let limit = RateLimitLayer::builder("retry-rate")
            .rate(1, Duration::from_secs(1))
            .registry(&Registry::new())
            .build()
            .unwrap();
        let layer = RetryLayer::builder("retry-rate")
            .policy(HttpPolicy)
            .backoff(fixed(MS(1)))
            .max_retry_after(max_retry_after)
            .budget(ample())
            .build()
            .unwrap();
        let dependency = Dependency::default();
        let mut svc = layer.layer(limit.layer(dependency.service()));
        send(&mut svc, get()).await.unwrap();
        let started = Instant::now();
        let answer = send(&mut svc, get()).await;
        assert_eq!(started.elapsed(), waited);
        assert_eq!(dependency.attempts(), attempts);
        if attempts == 2 {
            assert_eq!(answer.unwrap().status(), 200, "retried once, at its permit");
            assert_eq!(layer.handle().retries(), 1);
        } else {
            // Longer than `max_retry_after`: returned at once, as a
            // dependency's `Retry-After` would be.
            let err = answer.unwrap_err();
            assert_eq!(
                err.downcast_ref::<RateLimited>()
                    .map(RateLimited::retry_after),
                Some(Duration::from_secs(1))
            );
            assert_eq!(layer.handle().retries(), 0);
        }
    }
}

/// Found by a user trial: `HttpPolicy` retries any error, and a retry
/// layer above a deadline layer that reads the caller's deadline from the
/// request's header gave each attempt the whole of it again: a 100 ms
/// deadline became 300. A passed deadline is never retried.
#[tokio::test(start_paused = true)]
async fn a_passed_deadline_is_never_retried_whatever_the_policy() {
    use rampart::deadline::{DeadlineLayer, TIMEOUT_HEADER};

    let deadline = DeadlineLayer::builder("retry-deadline").build().unwrap();
    let layer = RetryLayer::builder("retry-deadline")
        .policy(HttpPolicy)
        .backoff(fixed(MS(1)))
        .budget(ample())
        .build()
        .unwrap();
    let arrivals = Arc::new(Mutex::new(0));
    let counted = arrivals.clone();
    let slow = service_fn(move |_: http::Request<()>| {
        *counted.lock().unwrap() += 1;
        async {
            tokio::time::sleep(MS(200)).await;
            Ok::<_, BoxError>(status(200))
        }
    });
    let mut svc = layer.layer(deadline.layer(slow));
    let request = http::Request::get("/titles")
        .header(TIMEOUT_HEADER, "100")
        .body(())
        .unwrap();
    let started = Instant::now();
    let err = send(&mut svc, request).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::DeadlineExceeded);
    assert_eq!(started.elapsed(), MS(100));
    assert_eq!(*arrivals.lock().unwrap(), 1);
    assert_eq!(layer.handle().retries(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_short_circuit_is_not_retried_unless_asked() {
    let breaker = CircuitBreakerLayer::builder("retry-breaker")
        .build()
        .unwrap();
    breaker.handle().force_open();
    for (retry_circuit_open, attempts) in [(false, 1), (true, 3)] {
        let layer = RetryLayer::builder("short-circuit")
            .backoff(fixed(MS(1)))
            .budget(ample())
            .retry_circuit_open(retry_circuit_open)
            .build()
            .unwrap();
        let tries = Arc::new(Mutex::new(0));
        let counted = tries.clone();
        let inner = breaker.layer(Dependency::default().service());
        let counting = service_fn(move |request| {
            *counted.lock().unwrap() += 1;
            let mut inner = inner.clone();
            async move { inner.ready().await?.call(request).await }
        });
        let mut svc = layer.layer(counting);
        let err = send(&mut svc, get()).await.unwrap_err();
        assert!(err.is::<CircuitOpen>(), "{err}");
        assert_eq!(*tries.lock().unwrap(), attempts);
    }
}

#[tokio::test(start_paused = true)]
async fn in_a_command_the_breaker_counts_every_attempt_and_the_fallback_serves_last() {
    let command = Command::builder("retried")
        .retry(
            RetryLayer::builder("retried")
                .max_attempts(3)
                .backoff(fixed(MS(5)))
                .budget(ample())
                .build()
                .unwrap(),
        )
        .fallback_sync(|_cause| Ok(status(299)))
        .build()
        .unwrap();
    let dependency = Dependency::scripted([refused(), refused(), refused()]);
    let mut svc = command.layer(dependency.service());
    let response = send(&mut svc, get()).await.unwrap();
    assert_eq!(
        response.status(),
        299,
        "the fallback, once retries are spent"
    );
    assert_eq!(dependency.attempts(), 3);
    assert_eq!(
        command.breaker().counts().failures,
        3,
        "every attempt counted"
    );

    // Recovering on a retry: no fallback.
    let dependency = Dependency::scripted([refused()]);
    let mut svc = command.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap().status(), 200);
    assert_eq!(command.fallback().successes(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_for_the_service_to_be_ready() {
    // One slot, shared with a slow call that takes it during the backoff:
    // the retry must wait for it (tower's limit panics on a call that was
    // not readied).
    let limit = Arc::new(tokio::sync::Semaphore::new(1));
    let dependency = Dependency::scripted([refused()]);
    let layer = RetryLayer::builder("ready")
        .backoff(fixed(MS(100)))
        .budget(ample())
        .build()
        .unwrap();
    let mut svc = layer.layer(ConcurrencyLimit::with_semaphore(
        dependency.service(),
        limit.clone(),
    ));
    let call = tokio::spawn(async move { send(&mut svc, get()).await });

    tokio::time::sleep(MS(50)).await; // the first attempt failed; backing off
    assert_eq!(dependency.attempts(), 1);
    let slow = service_fn(|_: http::Request<()>| async {
        tokio::time::sleep(MS(300)).await;
        Ok::<_, BoxError>(status(200))
    });
    let mut holder = ConcurrencyLimit::with_semaphore(slow, limit);
    let holding = tokio::spawn(holder.ready().await.unwrap().call(get()));

    assert_eq!(call.await.unwrap().unwrap().status(), 200);
    assert_eq!(dependency.gaps(), [MS(350)], "sent when the slot came free");
    holding.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_during_a_backoff_sends_nothing_more() {
    let dependency = Dependency::scripted([refused(), refused()]);
    let layer = RetryLayer::builder("drop")
        .backoff(fixed(MS(100)))
        .budget(ample())
        .build()
        .unwrap();
    let mut svc = layer.layer(dependency.service());
    let call = send(&mut svc, get());
    assert!(tokio::time::timeout(MS(50), call).await.is_err());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(dependency.attempts(), 1);
}

#[test]
fn bad_settings_are_config_errors() {
    for (attempts, max_retry_after, field) in [
        (0, Duration::ZERO, "max_attempts"),
        (101, Duration::ZERO, "max_attempts"),
        (3, Duration::from_secs(7200), "max_retry_after"),
    ] {
        let err = RetryLayer::builder("bad")
            .max_attempts(attempts)
            .max_retry_after(max_retry_after)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
    assert!(Backoff::decorrelated(Duration::ZERO, MS(1)).is_err());
}

/// A policy of one's own: retries every error, counts what it saw.
#[derive(Default)]
struct EveryError(Mutex<u32>);

impl Policy<http::Request<()>, http::Response<()>> for EveryError {
    fn is_retryable(&self, _: &http::Request<()>, result: &Answer) -> bool {
        *self.0.lock().unwrap() += 1;
        result.is_err()
    }
}

#[tokio::test(start_paused = true)]
async fn a_policy_of_ones_own_decides() {
    let layer = RetryLayer::builder("own")
        .policy(EveryError::default())
        .max_attempts(4)
        .backoff(Backoff::none())
        .budget(ample())
        .build()
        .unwrap();
    let dependency = Dependency::scripted([
        Err("a".into()),
        Err("b".into()),
        Err("c".into()),
        Err("d".into()),
    ]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap_err().to_string(), "d");
    assert_eq!(dependency.attempts(), 4);
}
