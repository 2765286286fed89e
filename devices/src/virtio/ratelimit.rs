//! Log lines a guest can trigger at will (a register write the transport ignores, a ring it
//! broke, a request that failed), rate-limited so that a guest cannot flood the host's log:
//! each call site of [`limited!`] logs its first [`FIRST`] occurrences, then one in
//! [`EVERY`], saying how many there were (as `vfio::region` does for trapped accesses).

use std::sync::atomic::{AtomicU64, Ordering};

/// Occurrences logged before a call site goes quiet.
pub const FIRST: u64 = 5;
/// Then one occurrence in this many is logged.
pub const EVERY: u64 = 10_000;

/// The occurrences of one log line.
#[derive(Debug, Default)]
pub struct RateLimit(AtomicU64);

impl RateLimit {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Counts one occurrence: its number (from 1) if it is to be logged.
    pub fn admit(&self) -> Option<u64> {
        let n = self.0.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        (n <= FIRST || n % EVERY == 0).then_some(n)
    }
}

/// `limited!(warn, "format", args...)`: `log::warn!` (or `info!`, `error!`...) through a
/// [`RateLimit`] of its own (one per call site, shared by every device). Past [`FIRST`], the
/// line says how many times it happened.
macro_rules! limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: $crate::virtio::ratelimit::RateLimit =
            $crate::virtio::ratelimit::RateLimit::new();
        if let Some(n) = LIMIT.admit() {
            if n <= $crate::virtio::ratelimit::FIRST {
                log::$level!($($arg)+);
            } else {
                log::$level!("{} ({n} times so far; rate-limited)", format_args!($($arg)+));
            }
        }
    }};
}
pub(crate) use limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_few_then_one_in_every() {
        let l = RateLimit::new();
        let logged: Vec<u64> = (0..3 * EVERY).filter_map(|_| l.admit()).collect();
        let mut want: Vec<u64> = (1..=FIRST).collect();
        want.extend([EVERY, 2 * EVERY, 3 * EVERY]);
        assert_eq!(logged, want);
    }
}
