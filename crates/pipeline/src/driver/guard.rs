//! The invalid-ratio guard of every record source: the share of invalid records among the last N
//! of a stream. A broken upstream stops the driver instead of filling the dead letters with a whole
//! feed; scattered poison never trips it.

use std::collections::VecDeque;

/// The invalid-ratio guard's settings: more than `max_ratio` of the last `window` records of one
/// stream invalid stops the driver. The default (ratio 1.0) never stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvalidGuard {
    pub max_ratio: f64,
    pub window: usize,
}

impl Default for InvalidGuard {
    fn default() -> Self {
        InvalidGuard {
            max_ratio: 1.0,
            window: 1000,
        }
    }
}

/// The last `size` outcomes of one stream (true: invalid).
#[derive(Debug)]
pub struct InvalidWindow {
    outcomes: VecDeque<bool>,
    invalid: usize,
    size: usize,
}

impl InvalidWindow {
    pub fn new(size: usize) -> Self {
        InvalidWindow {
            outcomes: VecDeque::with_capacity(size.min(1 << 16)),
            invalid: 0,
            size: size.max(1),
        }
    }

    /// Record one outcome; returns the invalid count when the window is full and over `ratio`.
    pub fn record(&mut self, invalid: bool, ratio: f64) -> Option<usize> {
        if self.outcomes.len() == self.size && self.outcomes.pop_front() == Some(true) {
            self.invalid -= 1;
        }
        self.outcomes.push_back(invalid);
        if invalid {
            self.invalid += 1;
        }
        (self.outcomes.len() == self.size && self.invalid as f64 > ratio * self.size as f64)
            .then_some(self.invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_of_mostly_invalid_records_trips_and_scattered_poison_does_not() {
        let mut w = InvalidWindow::new(1000);
        // One bad record in ten, for a long time: never trips.
        for i in 0..10_000 {
            assert_eq!(w.record(i % 10 == 0, 0.9), None);
        }
        // A burst of 899 invalid among the last 1000 does not trip; the 901st invalid does.
        let mut w = InvalidWindow::new(1000);
        for _ in 0..100 {
            w.record(false, 0.9);
        }
        let mut tripped = None;
        for i in 0..1000 {
            if let Some(n) = w.record(true, 0.9) {
                tripped = Some((i, n));
                break;
            }
        }
        assert_eq!(tripped, Some((900, 901)));
    }

    #[test]
    fn the_default_guard_never_trips_even_on_a_wholly_invalid_stream() {
        let g = InvalidGuard::default();
        let mut w = InvalidWindow::new(g.window);
        for _ in 0..5000 {
            assert_eq!(w.record(true, g.max_ratio), None);
        }
    }

    #[test]
    fn an_unfilled_window_never_trips() {
        let mut w = InvalidWindow::new(1000);
        for _ in 0..999 {
            assert_eq!(w.record(true, 0.9), None);
        }
        assert_eq!(w.record(true, 0.9), Some(1000));
    }
}
