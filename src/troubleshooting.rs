//! Compile errors new users meet, what each means, and the fix.
//!
//! # "the method `ready` exists ... but its trait bounds were not satisfied"
//!
//! The stack does not implement `Service` for the request you call it
//! with, because one layer's bound failed. rustc names the stack, not the
//! bound; these are the usual causes.
//!
//! **A classifier over the wrong result type inside a `Command`.** Every
//! layer beneath the breaker boxes the dependency's error, so a command's
//! classifier sees `&Result<Response, rampart::BoxError>`, not the
//! dependency's own error type:
//!
//! ```compile_fail
//! # use rampart::{circuit_breaker::Outcome, Command};
//! # use tower::{service_fn, Layer, Service, ServiceExt};
//! # async fn f() -> Result<(), rampart::BoxError> {
//! let command = Command::builder("ratings")
//!     .breaker(|b| b.classify(|r: &Result<String, std::io::Error>| {
//!         if r.is_ok() { Outcome::Success } else { Outcome::Failure }
//!     }))
//!     .build()?;
//! let mut svc = command.layer(service_fn(|_: ()| async { Ok::<_, std::io::Error>(String::new()) }));
//! svc.ready().await?.call(()).await?; // error[E0599] here, far from the cause
//! # Ok(()) }
//! ```
//!
//! Fix: use [`CommandBuilder::classify`](crate::command::CommandBuilder::classify),
//! which names the expected closure signature at the call (and says so in
//! its error if it is wrong), with `BoxError` as the error type:
//!
//! ```
//! # use rampart::{circuit_breaker::Outcome, BoxError, Command};
//! # use tower::{service_fn, Layer, Service, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let command = Command::builder("ratings")
//!     .classify(|r: &Result<String, BoxError>| {
//!         if r.is_ok() { Outcome::Success } else { Outcome::Failure }
//!     })
//!     .build()?;
//! let mut svc = command.layer(service_fn(|_: ()| async { Ok::<_, std::io::Error>(String::new()) }));
//! svc.ready().await?.call(()).await?;
//! # Ok(()) }
//! ```
//!
//! **A fallback returning another type than the service.** A fallback
//! answers in the service's place, so it returns the service's response
//! type (`Result<Response, BoxError>`):
//!
//! ```compile_fail,E0599
//! # use rampart::Command;
//! # use tower::{service_fn, Layer, Service, ServiceExt};
//! # async fn f() -> Result<(), rampart::BoxError> {
//! let command = Command::builder("titles")
//!     .fallback_sync(|_cause| Ok("popular titles")) // a &str
//!     .build()?;
//! let mut svc = command.layer(service_fn(|_: ()| async {
//!     Ok::<_, rampart::BoxError>(vec!["personal".to_string()]) // a Vec<String>
//! }));
//! svc.ready().await?.call(()).await?;
//! # Ok(()) }
//! ```
//!
//! Fix: `fallback_sync(|_cause| Ok(vec!["popular titles".to_string()]))`.
//! To have rustc say so itself, name the request type where the service
//! is first used (see [below](#make-rustc-name-the-mistake)).
//!
//! **A request or a service that is not `Clone`, under a retry layer, a
//! hedge layer, a deadline layer or a balancer.** A retry or a hedge
//! sends a copy of the request through a clone of the service:
//!
//! ```compile_fail,E0599
//! # use rampart::retry::RetryLayer;
//! # use tower::{service_fn, Layer, Service, ServiceExt};
//! # async fn f() -> Result<(), rampart::BoxError> {
//! struct Upload(std::fs::File); // not Clone
//! let mut svc = RetryLayer::builder("upload").build()?
//!     .layer(service_fn(|_: Upload| async { Ok::<_, rampart::BoxError>(()) }));
//! svc.ready().await?.call(Upload(std::fs::File::open("x")?)).await?;
//! # Ok(()) }
//! ```
//!
//! Fix: make the request cheap to clone: for HTTP, collect a streaming
//! body into `Bytes` first (`http::Request<Full<Bytes>>` or
//! `http::Request<Bytes>` clone in O(1) for the body); box services with
//! `tower::util::BoxCloneService` (or `BoxCloneSyncService`), not
//! `BoxService`.
//!
//! # Make rustc name the mistake
//!
//! At `svc.ready()` the request type is not known yet: rustc infers it
//! from the `call` that comes after, so its error says `Service<_>` and
//! cannot check, let alone name, the bound that failed beneath (no
//! attribute on rampart's traits can change that). Name the request type
//! at the first use, `ServiceExt::<Request>::ready(&mut svc)`, and the
//! same mistakes are reported as themselves. A fallback of the wrong type,
//! at the fallback closure (`expected closure to return
//! Result<Vec<String>, ..>, but it returns Result<&str, ..>`):
//!
//! ```compile_fail,E0271
//! # use rampart::Command;
//! # use tower::{service_fn, Layer, Service, ServiceExt};
//! # async fn f() -> Result<(), rampart::BoxError> {
//! let command = Command::builder("titles")
//!     .fallback_sync(|_cause| Ok("popular titles")) // a &str
//!     .build()?;
//! let mut svc = command.layer(service_fn(|_: ()| async {
//!     Ok::<_, rampart::BoxError>(vec!["personal".to_string()]) // a Vec<String>
//! }));
//! ServiceExt::<()>::ready(&mut svc).await?.call(()).await?;
//! # Ok(()) }
//! ```
//!
//! A request a balancer cannot copy (``the trait bound `Upload: Clone` is
//! not satisfied``):
//!
//! ```compile_fail,E0277
//! # use rampart::balance::{Balance, Endpoint, Endpoints};
//! # use tower::{service_fn, Service, ServiceExt};
//! # async fn f() -> Result<(), rampart::BoxError> {
//! struct Upload(std::fs::File); // not Clone
//! let instance = service_fn(|_: Upload| async { Ok::<_, rampart::BoxError>(()) });
//! let mut svc = Balance::builder("uploads").build(Endpoints::fixed([Endpoint::new(1, instance)]))?;
//! ServiceExt::<Upload>::ready(&mut svc).await?.call(Upload(std::fs::File::open("x")?)).await?;
//! # Ok(()) }
//! ```
//!
//! (`svc.oneshot(request)` does not help: rustc looks the method up before
//! it reads the argument.)
//!
//! # "implementation of `FnOnce` is not general enough"
//!
//! A closure classifier whose argument type is left to inference, used by
//! a breaker inside a spawned task: rustc infers one lifetime for the
//! reference where the breaker needs the closure for every lifetime.
//! Annotate the argument (`|result: &Result<Response, BoxError>| ...`),
//! pass it through [`CommandBuilder::classify`](crate::command::CommandBuilder::classify)
//! (its bound asks for every lifetime), or use a named `fn`.
//!
//! # "implementation of `From` is not general enough" (in a spawned task)
//!
//! An `async move` block that awaits a call through a rampart layer, over a
//! service failing with [`BoxError`](crate::BoxError), handed to
//! `tokio::spawn`: to prove the block `Send`, rustc must prove a bound for
//! every lifetime of the error's trait object, and gives up (a rustc
//! limitation with higher-ranked bounds in async blocks, not a missing
//! impl; tower's own `Timeout` meets it too). With a `Command`, rustc may
//! add "one type is more general than the other".
//!
//! ```compile_fail
//! # use rampart::retry::RetryLayer;
//! # use tower::{service_fn, ServiceBuilder, ServiceExt};
//! # async fn f() -> Result<(), rampart::BoxError> {
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::builder("profiles").build()?)
//!     .service(service_fn(|user: String| async move { Ok::<_, rampart::BoxError>(user) }));
//! let task = tokio::spawn(async move { svc.oneshot("ada".to_string()).await });
//! # Ok(()) }
//! ```
//!
//! Fix: spawn the call's future itself, which names its type, rather than
//! a block that awaits it (or give the service a concrete error type, such
//! as `std::io::Error`):
//!
//! ```
//! # use rampart::retry::RetryLayer;
//! # use tower::{service_fn, ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::builder("profiles").build()?)
//!     .service(service_fn(|user: String| async move { Ok::<_, rampart::BoxError>(user) }));
//! let task = tokio::spawn(svc.oneshot("ada".to_string()));
//! assert_eq!(task.await??, "ada");
//! # Ok(()) }
//! ```
//!
//! # "`Infallible: From<Box<dyn Error + Send + Sync>>` is not satisfied" (axum)
//!
//! axum serves only services that cannot fail; rampart's layers fail with
//! [`BoxError`](crate::BoxError). Put `HandleErrorLayer::new(rampart::axum::error_response)`
//! above them (feature `axum`), which answers each rampart error with its
//! HTTP status (503, 504, ...). See `examples/axum_server.rs`.
//!
//! # "`X` cannot carry a deadline"
//!
//! A [`DeadlineLayer`](crate::deadline::DeadlineLayer) over a request type
//! without [`WithDeadline`](crate::deadline::WithDeadline): implement it
//! (a field holding an `Option<Deadline>` will do), or use `http::Request`.
