//! The cache's response future: a hit at once, or the inner call that
//! fills the cache.

use super::store::Store;
use crate::error::SharedError;
use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

pin_project! {
    /// Response future of [`Cache`](super::Cache).
    ///
    /// # Cancel safety
    ///
    /// Dropping a miss drops the inner call; nothing is cached for it.
    pub struct ResponseFuture<F, K, Res> {
        #[pin]
        state: State<F, K, Res>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, K, Res> {
        Hit {
            value: Option<Result<Res, SharedError>>,
        },
        Miss {
            #[pin]
            response: F,
            fill: Option<(K, Arc<Store<K, Res>>)>,
        },
    }
}

impl<F, K, Res> ResponseFuture<F, K, Res> {
    pub(super) fn hit(value: Result<Res, SharedError>) -> Self {
        ResponseFuture {
            state: State::Hit { value: Some(value) },
        }
    }

    pub(super) fn miss(response: F, key: K, store: Arc<Store<K, Res>>) -> Self {
        ResponseFuture {
            state: State::Miss {
                response,
                fill: Some((key, store)),
            },
        }
    }
}

impl<F, K, Res, E> Future for ResponseFuture<F, K, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    K: Hash + Eq + Send + Sync + 'static,
    Res: Clone + Send + Sync + 'static,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Hit { value } => {
                let value = value.take().expect("polled after completion");
                Poll::Ready(value.map_err(Into::into))
            }
            StateProj::Miss { response, fill } => {
                let result = ready!(response.poll(cx));
                let (key, store) = fill.take().expect("polled after completion");
                Poll::Ready(match result {
                    Ok(response) => {
                        store.insert(key, Ok(response.clone()));
                        Ok(response)
                    }
                    Err(e) if store.cache_errors => {
                        let shared = SharedError::new(e.into());
                        store.insert(key, Err(shared.clone()));
                        Err(shared.into())
                    }
                    Err(e) => Err(e.into()),
                })
            }
        }
    }
}

impl<F, K, Res> fmt::Debug for ResponseFuture<F, K, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
