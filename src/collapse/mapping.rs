//! How a batch's response is split among the callers in the batch.

use std::collections::HashMap;
use std::hash::Hash;

/// Splits a batch response among the requests of the batch: Hystrix's
/// `mapResponseToRequests`.
///
/// rampart ships two: [`InOrder`] (the default: item `i` of a `Vec`
/// answers request `i`) and [`ByKey`] (items matched to requests by a key
/// each carries). A request no item answers fails alone, with
/// [`MissingItem`](super::MissingItem).
///
/// A panic in a mapping fails the requests of its batch with
/// [`Panicked`](crate::catch_panic::Panicked); the collapser goes on.
pub trait Mapping<Req, Batch> {
    /// What each caller gets.
    type Response;
    /// What a request is matched by, taken before the batch is sent.
    type Key;

    /// The key of `request` (`()` when matching by position).
    fn key(&self, request: &Req) -> Self::Key;

    /// Hands each item of `batch` to the request it answers: `answer(i,
    /// item)` answers the `i`-th request, whose key is `keys[i]`. Indexes
    /// out of range and second answers to one request are ignored.
    fn split(
        &self,
        keys: &[Self::Key],
        batch: Batch,
        answer: &mut dyn FnMut(usize, Self::Response),
    );
}

/// Item `i` of the batch's `Vec` answers request `i`; a response shorter
/// than the batch leaves the last requests unanswered (each gets
/// [`MissingItem`](super::MissingItem)), extra items are ignored. The
/// default.
#[derive(Debug, Clone, Copy, Default)]
pub struct InOrder;

impl<Req, Res> Mapping<Req, Vec<Res>> for InOrder {
    type Response = Res;
    type Key = ();

    fn key(&self, _: &Req) {}

    fn split(&self, _: &[()], batch: Vec<Res>, answer: &mut dyn FnMut(usize, Res)) {
        for (i, item) in batch.into_iter().enumerate() {
            answer(i, item);
        }
    }
}

/// Items matched to requests by key, in any order: `request_key` of each
/// request, `response_key` of each item. Requests with the same key in
/// one batch each get a clone of its item (so `Res: Clone`); a request
/// whose key no item has gets [`MissingItem`](super::MissingItem); an
/// item whose key no request has is ignored, as is a second item with a
/// key already answered. Made by [`Builder::match_by`](super::Builder::match_by).
#[derive(Clone, Copy)]
pub struct ByKey<FQ, FS> {
    request_key: FQ,
    response_key: FS,
}

impl<FQ, FS> ByKey<FQ, FS> {
    pub(crate) fn new(request_key: FQ, response_key: FS) -> Self {
        ByKey {
            request_key,
            response_key,
        }
    }
}

impl<FQ, FS> std::fmt::Debug for ByKey<FQ, FS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByKey")
    }
}

/// Ends a chain of requests sharing a key.
const END: usize = usize::MAX;

impl<Req, Res, K, FQ, FS> Mapping<Req, Vec<Res>> for ByKey<FQ, FS>
where
    FQ: Fn(&Req) -> K,
    FS: Fn(&Res) -> K,
    K: Hash + Eq,
    Res: Clone,
{
    type Response = Res;
    type Key = K;

    fn key(&self, request: &Req) -> K {
        (self.request_key)(request)
    }

    fn split(&self, keys: &[K], batch: Vec<Res>, answer: &mut dyn FnMut(usize, Res)) {
        // The first request with each key, and a chain through the others
        // with the same key: two allocations per batch, not one per key.
        let mut first: HashMap<&K, usize> = HashMap::with_capacity(keys.len());
        let mut next = vec![END; keys.len()];
        for (i, key) in keys.iter().enumerate().rev() {
            if let Some(later) = first.insert(key, i) {
                next[i] = later;
            }
        }
        for item in batch {
            let key = (self.response_key)(&item);
            // Removed: a second item with this key finds nothing.
            let Some(mut i) = first.remove(&key) else {
                continue;
            };
            while next[i] != END {
                answer(i, item.clone());
                i = next[i];
            }
            answer(i, item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers<M: Mapping<u32, Vec<(u32, &'static str)>, Response = (u32, &'static str)>>(
        mapping: &M,
        requests: &[u32],
        batch: Vec<(u32, &'static str)>,
    ) -> Vec<Option<&'static str>> {
        let keys: Vec<M::Key> = requests.iter().map(|r| mapping.key(r)).collect();
        let mut got = vec![None; requests.len()];
        mapping.split(&keys, batch, &mut |i, (_, s)| {
            if i < got.len() && got[i].is_none() {
                got[i] = Some(s);
            }
        });
        got
    }

    #[test]
    fn in_order_answers_by_position_and_leaves_the_tail_unanswered() {
        let got = answers(&InOrder, &[7, 8, 9], vec![(7, "a"), (8, "b")]);
        assert_eq!(got, [Some("a"), Some("b"), None]);
    }

    #[test]
    fn by_key_matches_in_any_order_shares_duplicates_and_ignores_strays() {
        let by_key = ByKey::new(|r: &u32| *r, |item: &(u32, &str)| item.0);
        let got = answers(
            &by_key,
            &[1, 2, 1, 3],
            vec![(2, "two"), (9, "stray"), (1, "one"), (1, "second one")],
        );
        assert_eq!(got, [Some("one"), Some("two"), Some("one"), None]);
    }
}
