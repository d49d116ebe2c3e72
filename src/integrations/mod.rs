//! Glue for other crates' types, each behind a cargo feature of the same
//! name; re-exported at the crate root (`rampart::axum`, `rampart::reqwest`,
//! `rampart::tonic`, `rampart::tower_http`).

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tonic")]
pub mod tonic;
#[cfg(feature = "tower-http")]
pub mod tower_http;

/// [`ErrorKind::of`](crate::ErrorKind::of), except that a rejected fallback
/// is described by the call's own error, which is what failed the request
/// (a failed fallback already is: its source is that error): what an HTTP
/// response or a gRPC status says.
#[cfg(any(feature = "axum", feature = "tonic"))]
fn kind_of(error: &(dyn std::error::Error + 'static)) -> crate::ErrorKind {
    let kind = crate::ErrorKind::of(error);
    #[cfg(feature = "fallback")]
    if kind == crate::ErrorKind::FallbackRejected {
        let rejected = crate::error::chain(error)
            .find_map(|e| e.downcast_ref::<crate::fallback::FallbackRejected>());
        if let Some(rejected) = rejected {
            return kind_of(&**rejected.cause());
        }
    }
    kind
}

/// Whether `error` (a limit's rejection) is a partition's, over its share.
#[cfg(any(feature = "axum", feature = "tonic"))]
fn is_over_share(error: &(dyn std::error::Error + 'static)) -> bool {
    #[cfg(feature = "limit")]
    return crate::error::chain(error).any(|e| e.is::<crate::limit::PartitionLimitExceeded>());
    #[cfg(not(feature = "limit"))]
    {
        let _ = error;
        false
    }
}
