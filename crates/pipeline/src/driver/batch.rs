//! The one batcher of every driver: records released by the merger are gathered into batches of
//! at most `size` (`limits.batch_size`: one transaction each), handed over when full or, where
//! the source can go quiet (Kafka), once the first of them has waited `linger`
//! (`kafka.linger_ms`), so a trickle is not held back behind a batch that never fills.

use std::time::{Duration, Instant};

/// Records being gathered into the next batch.
#[derive(Debug)]
pub struct Batcher<T> {
    items: Vec<T>,
    size: usize,
    linger: Option<Duration>,
    first_at: Option<Instant>,
}

impl<T> Batcher<T> {
    /// Batches of at most `size` (at least 1); with `linger`, a batch is also due once its first
    /// record has waited that long.
    pub fn new(size: usize, linger: Option<Duration>) -> Self {
        let size = size.max(1);
        Batcher {
            items: Vec::with_capacity(size.min(1 << 16)),
            size,
            linger,
            first_at: None,
        }
    }

    /// Add a record gathered at `now`; returns the batch when this one filled it.
    pub fn push(&mut self, item: T, now: Instant) -> Option<Vec<T>> {
        self.first_at.get_or_insert(now);
        self.items.push(item);
        self.is_full().then(|| self.take())
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= self.size
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch should go now although it is not full: its first record has lingered.
    pub fn due(&self, now: Instant) -> bool {
        match (self.linger, self.first_at) {
            (Some(linger), Some(first)) => now.saturating_duration_since(first) >= linger,
            _ => false,
        }
    }

    /// What is gathered, as a batch (empty when nothing is); the next one starts afresh.
    pub fn take(&mut self) -> Vec<T> {
        self.first_at = None;
        std::mem::replace(&mut self.items, Vec::with_capacity(self.size.min(1 << 16)))
    }

    /// Forget what is gathered (it was never handed over: it is read again).
    pub fn clear(&mut self) {
        self.first_at = None;
        self.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_when_full_and_keeps_the_order_records_came_in() {
        let now = Instant::now();
        let mut b = Batcher::new(3, None);
        assert_eq!(b.push(1, now), None);
        assert_eq!(b.push(2, now), None);
        assert_eq!(b.push(3, now), Some(vec![1, 2, 3]));
        assert!(b.is_empty());
        assert_eq!(b.push(4, now), None);
        assert_eq!(b.len(), 1);
        // Without a linger nothing is ever due: the rest goes when the reader ends (`take`).
        assert!(!b.due(now + Duration::from_secs(3600)));
        assert_eq!(b.take(), vec![4]);
        assert!(b.take().is_empty());
    }

    #[test]
    fn a_partial_batch_is_due_once_its_first_record_has_lingered() {
        let t = Instant::now();
        let mut b = Batcher::new(100, Some(Duration::from_millis(20)));
        assert!(!b.due(t), "an empty batch is never due");
        b.push("a", t);
        b.push("b", t + Duration::from_millis(15));
        assert!(!b.due(t + Duration::from_millis(19)));
        // The first record's wait counts, not the last one's.
        assert!(b.due(t + Duration::from_millis(20)));
        assert_eq!(b.take(), ["a", "b"]);
        // The next batch's clock starts with its own first record.
        b.push("c", t + Duration::from_millis(30));
        assert!(!b.due(t + Duration::from_millis(40)));
        assert!(b.due(t + Duration::from_millis(50)));
    }

    #[test]
    fn a_size_of_zero_is_one_and_cleared_records_are_forgotten() {
        let now = Instant::now();
        let mut b = Batcher::new(0, Some(Duration::ZERO));
        assert_eq!(b.push('x', now), Some(vec!['x']));
        let mut b = Batcher::new(5, Some(Duration::ZERO));
        b.push('y', now);
        b.clear();
        assert!(b.is_empty());
        assert!(!b.due(now));
    }
}
