//! A fast per-thread random number generator for choices on the call path
//! (picking endpoints, jitter): no lock, no allocation, not cryptographic.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// A uniformly distributed `u64` (xorshift64*, seeded per thread).
#[inline]
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            x = seed();
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A thread's first state: out of line, so that a draw stays small
/// enough to be inlined where it is made.
#[cold]
#[inline(never)]
fn seed() -> u64 {
    rand::random::<u64>() | 1
}

/// A number in `0..n` (`n > 0`).
#[inline]
pub(crate) fn below(n: usize) -> usize {
    // Lemire's multiply-shift: no division, bias below 2^-32 for any real n.
    ((u128::from(next_u64()) * n as u128) >> 64) as usize
}

/// A number in `[0, 1)`.
#[inline]
pub(crate) fn unit() -> f64 {
    (next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_covers_the_range_evenly() {
        let mut seen = [0u32; 5];
        for _ in 0..50_000 {
            seen[below(5)] += 1;
        }
        for count in seen {
            assert!((9_000..11_000).contains(&count), "{seen:?}");
        }
        assert!((0..1000).all(|_| (0.0..1.0).contains(&unit())));
    }
}
