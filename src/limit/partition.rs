//! Which partition a request belongs to.

/// Tells a request's partition: [`Unpartitioned`], or the closure given to
/// [`Builder::partition_by`](super::Builder::partition_by).
///
/// Sealed: rampart's two are all there is.
pub trait Partitioner<Req>: sealed::Sealed {
    /// Whether the limiter has partitions at all.
    #[doc(hidden)]
    const PARTITIONED: bool;

    /// The request's partition name, if any.
    #[doc(hidden)]
    fn key<'a>(&self, request: &'a Req) -> Option<&'a str>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Unpartitioned {}
    impl<F> Sealed for super::PartitionBy<F> {}
}

/// No partitions: one limit shared by every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unpartitioned;

impl<Req> Partitioner<Req> for Unpartitioned {
    const PARTITIONED: bool = false;

    #[inline]
    fn key<'a>(&self, _: &'a Req) -> Option<&'a str> {
        None
    }
}

/// Partitions told by a closure from the request to a partition name
/// (see [`Builder::partition_by`](super::Builder::partition_by)).
#[derive(Clone, Copy)]
pub struct PartitionBy<F> {
    pub(crate) key: F,
}

impl<F> std::fmt::Debug for PartitionBy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartitionBy")
    }
}

impl<F, Req> Partitioner<Req> for PartitionBy<F>
where
    F: for<'a> Fn(&'a Req) -> Option<&'a str>,
{
    const PARTITIONED: bool = true;

    #[inline]
    fn key<'a>(&self, request: &'a Req) -> Option<&'a str> {
        (self.key)(request)
    }
}
