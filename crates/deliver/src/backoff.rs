//! The retry schedule: exponential backoff, capped, with full jitter (the delay before attempt
//! `n + 1` is uniform in `[0, min(cap, base · 2^(n-1))]`), so that receivers coming back up are not
//! hit by every sender at the same instant. Deterministic under a seeded RNG.

use std::time::Duration;

use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The longest delay after the `attempt`-th failed attempt (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay after the `attempt`-th failed attempt: full jitter below [`Backoff::ceiling`].
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(rng.gen_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let b = backoff();
        let secs: Vec<u64> = (1..=9).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.ceiling(1000), Duration::from_secs(60), "no overflow");
    }

    #[test]
    fn delays_are_jittered_below_the_ceiling_and_repeat_under_the_same_seed() {
        let b = backoff();
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (1..=20).map(|n| b.delay(n, &mut rng)).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        for (i, d) in a.iter().enumerate() {
            assert!(*d <= b.ceiling(i as u32 + 1), "attempt {}: {d:?}", i + 1);
        }
        // Full jitter spreads the delays: not all at the ceiling.
        assert!(a.iter().skip(6).any(|d| *d < Duration::from_secs(50)));
    }
}
