//! Panics in a dependency turned into errors, so a breaker counts them and
//! a fallback serves them.
//!
//! Hystrix counts every exception a command throws as a failure and hands
//! it to the fallback. A Rust dependency that panics instead unwinds
//! through every layer to the caller. Put [`CatchPanicLayer`] right above
//! the dependency and a panic in its `call` or in its response future
//! becomes a [`Panicked`] error ([`ErrorKind::Panicked`](crate::ErrorKind)),
//! which the layers above treat like any other failure.
//!
//! Without it, rampart's layers still count a panic as a failure and give
//! back every slot and place the call held, and the panic goes on unwinding.
//!
//! [`Command`](crate::Command) adds this layer with
//! [`contain_panics`](crate::command::CommandBuilder::contain_panics), and
//! also contains panics in the fallback.
//!
//! # Example
//!
//! ```
//! use rampart::catch_panic::CatchPanicLayer;
//! use rampart::ErrorKind;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let mut svc = ServiceBuilder::new()
//!     .layer(CatchPanicLayer::new())
//!     .service(service_fn(|id: u32| async move {
//!         if id == 0 {
//!             panic!("index out of bounds");
//!         }
//!         Ok::<_, rampart::BoxError>(id)
//!     }));
//! let err = svc.ready().await?.call(0).await.unwrap_err();
//! assert_eq!(ErrorKind::of(&err), ErrorKind::Panicked);
//! assert_eq!(err.to_string(), "the dependency panicked: index out of bounds");
//! # Ok(())
//! # }
//! ```
//!
//! # Cost
//!
//! `catch_unwind` costs nothing while nothing panics: no allocation, no
//! extra branch beyond the landing pad. A panic costs what unwinding costs,
//! plus the message copied into the error.

mod error;
mod future;
mod layer;
mod service;

pub use error::Panicked;
pub use future::ResponseFuture;
pub use layer::CatchPanicLayer;
pub use service::CatchPanic;
