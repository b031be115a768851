//! The dead-letter policy of every driver. A record refused at ingest always goes to the
//! dead-letters table, in the same transaction as its batch's effects and positions
//! (`crate::apply`). Where the source has a dead-letter topic of its own (Kafka), each refused
//! record is also sent there *before* its batch commits, and every one is acknowledged — failed
//! sends are retried with backoff — so each reaches the topic at least once and none is lost
//! between the two. A source without a topic (files) has only the table.

use std::future::Future;
use std::pin::Pin;

use crate::driver::retry::Backoff;
use crate::Ingested;

/// A send in flight: resolves to whether the topic acknowledged the record.
pub type Ack<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// A source's dead-letter topic.
pub trait DeadLetterTopic: Send + Sync {
    /// Queue record `n` of the batch (refused at ingest); the returned future says whether the
    /// topic acknowledged it. Queueing happens before the future is polled, so a batch's sends
    /// are in flight together.
    fn send<'a>(&'a self, n: usize, item: &'a Ingested) -> Ack<'a>;
}

/// The indices of a batch's refused records: what goes to the dead letters.
pub fn refused(batch: &[Ingested]) -> Vec<usize> {
    batch
        .iter()
        .enumerate()
        .filter(|(_, i)| i.result.is_err())
        .map(|(n, _)| n)
        .collect()
}

/// Send a batch's refused records to `topic` and wait until every one is acknowledged, retrying
/// those that were not after the backoff's delay. Returns how many sends were made in all.
pub async fn send_until_acknowledged<T: DeadLetterTopic + ?Sized>(
    topic: &T,
    batch: &[Ingested],
    mut backoff: Backoff,
) -> usize {
    let mut todo = refused(batch);
    let mut sends = 0;
    while !todo.is_empty() {
        let waiting: Vec<(usize, Ack<'_>)> = todo
            .iter()
            .map(|&n| (n, topic.send(n, &batch[n])))
            .collect();
        sends += waiting.len();
        let mut failed = Vec::new();
        for (n, ack) in waiting {
            if !ack.await {
                failed.push(n);
            }
        }
        todo = failed;
        if !todo.is_empty() {
            let delay = backoff.next_delay();
            tracing::warn!(
                unacknowledged = todo.len(),
                retry_in_ms = delay.as_millis() as u64,
                "dead letters not acknowledged by the topic; retrying before the batch commits"
            );
            tokio::time::sleep(delay).await;
        }
    }
    sends
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Position;
    use crate::driver::RawRecord;
    use doudi_model::{ParseLimits, Source};
    use std::sync::Mutex;
    use std::time::Duration;

    const SETTLEMENT: &str = r#"{"event_id":"e1","source":"health_insurance","kind":"settlement","occurred_at":"2026-03-01T08:30:00+08:00","subject":{"id_number":"11010519491231002x","name":"王秀英"},"data":{"setting":"inpatient","total_cost_fen":5000000,"fund_paid_fen":3000000,"out_of_pocket_fen":2000000,"diagnoses":["C34.9"],"settled_on":"2026-02-28"}}"#;

    fn item(line: u64, bytes: &[u8]) -> Ingested {
        crate::ingest::ingest_record(
            RawRecord {
                source: Source::HealthInsurance,
                stream: "health_insurance/a.jsonl".into(),
                position: Position::File {
                    line,
                    start: 0,
                    end: 0,
                },
                bytes: bytes.to_vec(),
                full_len: bytes.len() as u64,
            },
            &ParseLimits::default(),
        )
    }

    /// A topic that refuses the first `flaky` sends of each line listed, and records every send.
    struct Topic {
        flaky: Vec<(u64, usize)>,
        sent: Mutex<Vec<u64>>,
    }

    impl DeadLetterTopic for Topic {
        fn send<'a>(&'a self, _n: usize, item: &'a Ingested) -> Ack<'a> {
            let line = item.record.line();
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            let tries = sent.iter().filter(|l| **l == line).count();
            sent.push(line);
            let ok = !self.flaky.iter().any(|(l, n)| *l == line && tries < *n);
            Box::pin(async move { ok })
        }
    }

    #[tokio::test]
    async fn only_refused_records_go_to_the_topic_and_each_is_retried_until_acknowledged() {
        let batch = vec![
            item(1, b"not json"),
            item(2, b"{also not an envelope"),
            item(3, SETTLEMENT.as_bytes()),
            item(4, b"[]"),
        ];
        assert!(batch[2].result.is_ok(), "{:?}", batch[2].result);
        assert_eq!(refused(&batch), [0, 1, 3]);
        let topic = Topic {
            flaky: vec![(2, 2)],
            sent: Mutex::new(Vec::new()),
        };
        let fast = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let sends = send_until_acknowledged(&topic, &batch, fast).await;
        let sent = topic.sent.into_inner().unwrap_or_default();
        // The valid record never goes; line 2 was refused twice by the topic, so it was sent
        // three times, the others once.
        assert_eq!(sends, 5);
        assert_eq!(sent, [1, 2, 4, 2, 2]);
    }

    #[tokio::test]
    async fn a_batch_without_refused_records_sends_nothing() {
        let topic = Topic {
            flaky: Vec::new(),
            sent: Mutex::new(Vec::new()),
        };
        let batch = vec![item(1, SETTLEMENT.as_bytes())];
        assert_eq!(
            send_until_acknowledged(&topic, &batch, Backoff::default()).await,
            0
        );
        assert_eq!(
            send_until_acknowledged(&topic, &[], Backoff::default()).await,
            0
        );
        assert!(topic.sent.into_inner().unwrap_or_default().is_empty());
    }
}
