//! How a request carries its deadline.

use super::Deadline;
use std::time::Duration;
use tokio::time::Instant;

/// rampart's own header for the time left to answer, in whole
/// milliseconds (the time left, not a wall-clock moment, so clock skew
/// between hosts does not matter; Envoy's `x-envoy-expected-rq-timeout-ms`
/// works the same way).
pub const TIMEOUT_HEADER: &str = "rampart-timeout-ms";

/// A request that can carry a [`Deadline`]: implemented for
/// `http::Request` (in its extensions and headers); implement it for your
/// own request types.
///
/// ```
/// use rampart::deadline::{Deadline, WithDeadline};
/// use tokio::time::Instant;
///
/// struct Lookup { id: u64, deadline: Option<Deadline> }
///
/// impl WithDeadline for Lookup {
///     fn deadline(&self, _now: Instant) -> Option<Deadline> {
///         self.deadline
///     }
///     fn set_deadline(&mut self, deadline: Deadline, _now: Instant) {
///         self.deadline = Some(deadline);
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry a deadline",
    label = "a `DeadlineLayer` needs a request that implements `WithDeadline`",
    note = "`WithDeadline` is implemented for `http::Request<B>` (with the `http` feature); implement it for your own request type"
)]
pub trait WithDeadline {
    /// The deadline the request carries, if any; `now` is the time of the
    /// call, for deadlines carried as a time left.
    fn deadline(&self, now: Instant) -> Option<Deadline>;

    /// Carries `deadline` with the request from here on (and to the
    /// dependency, if the request's form allows).
    fn set_deadline(&mut self, deadline: Deadline, now: Instant);
}

#[cfg(feature = "http")]
impl<B> WithDeadline for http::Request<B> {
    /// The [`Deadline`] in the extensions (set by a layer on this side);
    /// else the time left in [`TIMEOUT_HEADER`] or in `grpc-timeout` (the
    /// shorter, if both), from `now`, at most about 30 years off. An
    /// unreadable header is ignored.
    fn deadline(&self, now: Instant) -> Option<Deadline> {
        if let Some(deadline) = self.extensions().get::<Deadline>() {
            return Some(*deadline);
        }
        let headers = self.headers();
        let ours = headers
            .get(TIMEOUT_HEADER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        let grpc = headers
            .get("grpc-timeout")
            .and_then(|v| grpc_timeout(v.to_str().ok()?));
        // Both present: the earlier (a proxy may have shortened either).
        let left = match (ours, grpc) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        // However far off, at most about 30 years: no overflow.
        now.checked_add(left.min(super::FAR)).map(Deadline)
    }

    /// Puts the deadline in the extensions, and the time left in
    /// [`TIMEOUT_HEADER`] (and in `grpc-timeout` for a gRPC request), so a
    /// rampart server downstream holds to it too.
    fn set_deadline(&mut self, deadline: Deadline, now: Instant) {
        let left = deadline.0.saturating_duration_since(now);
        // Rounded up, as grpc-go does: 0.9 ms left is 1, not a "0" that
        // the server downstream would refuse at once; the caller's own
        // deadline still cuts the call at its time.
        let ms = u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        let grpc = self
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let headers = self.headers_mut();
        headers.insert(TIMEOUT_HEADER, http::HeaderValue::from(ms));
        if grpc {
            // At most 8 digits (gRPC's HTTP/2 protocol spec).
            let value = format!("{}m", ms.min(99_999_999));
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert("grpc-timeout", value);
            }
        }
        self.extensions_mut().insert(deadline);
    }
}

/// gRPC's `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
#[cfg_attr(not(feature = "http"), allow(dead_code))]
fn grpc_timeout(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_nonsense_does_not() {
        assert_eq!(grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("5M"), Some(Duration::from_secs(300)));
        assert_eq!(grpc_timeout("250u"), Some(Duration::from_micros(250)));
        assert_eq!(
            grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "100", "100x", "123456789m", "-1m", "1.5S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[cfg(feature = "http")]
    #[test]
    fn an_http_request_carries_its_deadline_out_and_reads_it_back_in() {
        let now = Instant::now();
        let deadline = Deadline(now + Duration::from_millis(250));
        let mut outgoing = http::Request::builder()
            .header(http::header::CONTENT_TYPE, "application/grpc+proto")
            .body(())
            .unwrap();
        outgoing.set_deadline(deadline, now);
        assert_eq!(outgoing.headers()[TIMEOUT_HEADER], "250");
        assert_eq!(outgoing.headers()["grpc-timeout"], "250m");
        assert_eq!(outgoing.deadline(now), Some(deadline));

        // On the far side: only the headers arrive.
        let (parts, ()) = outgoing.into_parts();
        let mut incoming = http::Request::new(());
        *incoming.headers_mut() = parts.headers;
        let later = now + Duration::from_millis(5);
        assert_eq!(
            incoming.deadline(later),
            Some(Deadline(later + Duration::from_millis(250)))
        );
        incoming.headers_mut().remove(TIMEOUT_HEADER);
        assert_eq!(
            incoming.deadline(later),
            Some(Deadline(later + Duration::from_millis(250))),
            "grpc-timeout"
        );
        incoming.headers_mut().remove("grpc-timeout");
        assert_eq!(incoming.deadline(later), None);

        // A part of a millisecond left is a millisecond, not a "0" that
        // the server downstream would refuse at once.
        let mut nearly = http::Request::new(());
        nearly.set_deadline(Deadline(now + Duration::from_micros(900)), now);
        assert_eq!(nearly.headers()[TIMEOUT_HEADER], "1");
        let mut passed = http::Request::new(());
        passed.set_deadline(Deadline(now), now + Duration::from_millis(1));
        assert_eq!(passed.headers()[TIMEOUT_HEADER], "0");

        // Both headers: the shorter. One far off: capped, not overflowing.
        let mut both = http::Request::new(());
        both.headers_mut()
            .insert(TIMEOUT_HEADER, http::HeaderValue::from(1000u64));
        both.headers_mut()
            .insert("grpc-timeout", http::HeaderValue::from_static("100m"));
        assert_eq!(
            both.deadline(now),
            Some(Deadline(now + Duration::from_millis(100)))
        );
        let mut far = http::Request::new(());
        far.headers_mut()
            .insert(TIMEOUT_HEADER, http::HeaderValue::from(u64::MAX));
        assert_eq!(far.deadline(now), Some(Deadline(now + super::super::FAR)));
    }
}
