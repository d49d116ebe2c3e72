//! Options for a collapser, and the builder that validates them.

use super::layer::CollapseLayer;
use super::mapping::{ByKey, InOrder};
use super::stats::Stats;
use crate::error::{ConfigError, Validator};
use crate::registry::Registry;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Default collection window: Hystrix's `timerDelayInMilliseconds`, 10 ms.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(10);

/// Default bound on requests per batch: 100.
///
/// Hystrix's `maxRequestsInBatch` is unbounded by default; rampart bounds
/// it, since a batch too large for the dependency fails all of its
/// callers at once. 100 is the limit of many bulk APIs (DynamoDB's
/// `BatchGetItem`, Google's batch endpoints); set yours.
pub const DEFAULT_MAX_BATCH: usize = 100;

const MIN_WINDOW: Duration = Duration::from_millis(1);
const MAX_WINDOW: Duration = Duration::from_secs(60);
const MAX_MAX_BATCH: usize = 1 << 20;

/// Builds a [`CollapseLayer`]; start with [`CollapseLayer::builder`].
pub struct Builder<Req, M = InOrder> {
    name: String,
    window: Duration,
    max_batch: usize,
    mapping: M,
    command: Option<String>,
    registry: Option<Registry>,
    _request: PhantomData<fn(Req)>,
}

impl<Req> Builder<Req, InOrder> {
    pub(super) fn new(name: String) -> Self {
        Builder {
            name,
            window: DEFAULT_WINDOW,
            max_batch: DEFAULT_MAX_BATCH,
            mapping: InOrder,
            command: None,
            registry: None,
            _request: PhantomData,
        }
    }
}

impl<Req, M> Builder<Req, M> {
    /// How long a batch collects requests, from its first: Hystrix's
    /// `timerDelayInMilliseconds`. Default 10 ms; from 1 ms (tokio's
    /// timer resolution) to 60 s. A request waits at most this long before
    /// its batch is sent (less when the batch fills first).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The most requests in one batch: a full batch is sent at once,
    /// before its window ends. Default 100 ([`DEFAULT_MAX_BATCH`]); from 1
    /// to 2^20.
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max;
        self
    }

    /// Matches the items of the batch response to requests by key, in any
    /// order, instead of by position: `request_key` of each request,
    /// `response_key` of each item (see [`ByKey`]). The response is a
    /// `Vec` of items that are `Clone` (requests with one key in one batch
    /// each get a clone).
    pub fn match_by<K, Res, FQ, FS>(
        self,
        request_key: FQ,
        response_key: FS,
    ) -> Builder<Req, ByKey<FQ, FS>>
    where
        FQ: Fn(&Req) -> K,
        FS: Fn(&Res) -> K,
    {
        self.mapping(ByKey::new(request_key, response_key))
    }

    /// Splits batch responses with a [`Mapping`](super::Mapping) of your
    /// own (Hystrix's `mapResponseToRequests`), for a batch response that
    /// is not a `Vec` of items.
    pub fn mapping<M2>(self, mapping: M2) -> Builder<Req, M2> {
        Builder {
            name: self.name,
            window: self.window,
            max_batch: self.max_batch,
            mapping,
            command: self.command,
            registry: self.registry,
            _request: PhantomData,
        }
    }

    /// The [`Command`](crate::Command) the batches are calls of (the
    /// command beneath this collapser): the stream counts the requests
    /// batched into its calls as its `rollingCountCollapsedRequests`, as
    /// Hystrix counts them on the batch command. Default: none.
    #[cfg(feature = "command")]
    pub fn command<FB, L, C, R, FO, K>(
        mut self,
        command: &crate::CommandLayer<FB, L, C, R, FO, K>,
    ) -> Self {
        self.command = Some(command.name().to_owned());
        self
    }

    /// The [`Registry`] to list this collapser in (where the stream finds
    /// it). Default: [`Registry::global`].
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Checks every option and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range.
    pub fn build(self) -> Result<CollapseLayer<Req, M>, ConfigError> {
        let mut v = Validator::new(format!("collapser {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        let window = self.window;
        v.check(
            (MIN_WINDOW..=MAX_WINDOW).contains(&window),
            "window",
            || format!("must be from 1 ms to 60 s, got {window:?}"),
        );
        let max = self.max_batch;
        v.check((1..=MAX_MAX_BATCH).contains(&max), "max_batch", || {
            format!("must be from 1 to {MAX_MAX_BATCH}, got {max}")
        });
        v.finish()?;
        let stats = Arc::new(Stats::new(
            self.name.into(),
            self.command.map(Into::into),
            window,
            max,
        ));
        self.registry
            .unwrap_or_else(Registry::global)
            .register(&stats);
        Ok(CollapseLayer::new(stats, Arc::new(self.mapping)))
    }
}

impl<Req, M> fmt::Debug for Builder<Req, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("window", &self.window)
            .field("max_batch", &self.max_batch)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}
