//! Per-recipient rate limits (governor): each recipient may receive `per_minute` deliveries a
//! minute, in bursts up to the same number.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Decides whether a recipient may receive `n` more deliveries now (and takes them if so).
pub trait Allow {
    fn allow(&mut self, recipient: &str, n: u32) -> bool;
}

/// The governor-backed limits, one bucket per recipient.
pub struct RecipientLimits<C: Clock = DefaultClock> {
    limiter: RateLimiter<String, DefaultKeyedStateStore<String>, C, NoOpMiddleware<C::Instant>>,
}

impl RecipientLimits<DefaultClock> {
    pub fn per_minute(n: NonZeroU32) -> Self {
        RecipientLimits {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }
}

impl<C: Clock> RecipientLimits<C> {
    /// With another clock (tests: governor's fake clock).
    pub fn per_minute_with_clock(n: NonZeroU32, clock: C) -> Self {
        RecipientLimits {
            limiter: RateLimiter::new(
                Quota::per_minute(n),
                DefaultKeyedStateStore::default(),
                clock,
            ),
        }
    }
}

impl<C: Clock> Allow for RecipientLimits<C> {
    fn allow(&mut self, recipient: &str, n: u32) -> bool {
        let Some(n) = NonZeroU32::new(n) else {
            return true;
        };
        matches!(
            self.limiter.check_key_n(&recipient.to_string(), n),
            Ok(Ok(()))
        )
    }
}

impl<C: Clock> std::fmt::Debug for RecipientLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecipientLimits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::time::Duration;

    #[test]
    fn a_recipient_gets_its_quota_a_minute_and_others_are_not_affected() {
        let clock = FakeRelativeClock::default();
        let mut l =
            RecipientLimits::per_minute_with_clock(NonZeroU32::new(5).unwrap(), clock.clone());
        assert!(!l.allow("li", 6), "more than the burst at once");
        assert!(l.allow("li", 5));
        assert!(!l.allow("li", 1));
        assert!(l.allow("wang", 5), "another recipient has its own bucket");
        clock.advance(Duration::from_secs(12));
        assert!(l.allow("li", 1), "one cell back every 12 s");
        assert!(!l.allow("li", 1));
    }
}
