//! The plan of one delivery pass over the pending notices (in notice order): which go to the inbox
//! only, which are sent now, one by one or as a digest, and which wait.
//!
//! - A recipient without a delivery channel (webhook, WeCom or DingTalk robot) reads notices in
//!   the inbox: they are marked inbox-only, never failed.
//! - Per household, order is kept: once a household's notice is waiting (in backoff after a failed
//!   attempt, or held back by its recipient's quota), its later notices wait too. Within a pass a
//!   household's notices go to one recipient only (sends to one recipient are sequential, so their
//!   order is the notice order); a later notice to another recipient waits for the next pass.
//! - Per recipient, quota (governor): if the recipient may receive all its ready notices now they go
//!   one by one; otherwise, if it may receive one more delivery, they go as ONE digest (at most
//!   `max_digest_items`; the rest in the next digest); otherwise they wait. Nothing is dropped.

use std::collections::{HashMap, HashSet};

use doudi_store::PendingNotice;

use crate::channel::Channel;
use crate::limits::Allow;

/// What to send to one recipient this pass, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientPlan {
    pub recipient: String,
    pub channel: Channel,
    /// Each delivery: indices into the pending list, in notice order.
    pub deliveries: Vec<Vec<usize>>,
    /// The deliveries are one digest (the recipient is over quota).
    pub digest: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Notices whose recipient has no delivery channel.
    pub inbox_only: Vec<i64>,
    /// Per recipient, in the order of their first notice.
    pub recipients: Vec<RecipientPlan>,
    /// Notices in backoff (not due yet).
    pub not_due: usize,
    /// Notices behind an earlier notice of the same household.
    pub held: usize,
    /// Notices held back by their recipient's quota (or past the digest size).
    pub over_quota: usize,
}

/// Plan a pass at `now` (RFC 3339 UTC as the store writes it: text order is time order).
pub fn plan(
    pending: &[PendingNotice],
    channels: &HashMap<String, Channel>,
    now: &str,
    quota: &mut impl Allow,
    max_digest_items: usize,
) -> Plan {
    let mut out = Plan::default();
    // Household → the recipient its notices go to this pass; blocked households wait.
    let mut bound: HashMap<&str, &str> = HashMap::new();
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut ready: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut ready_index: HashMap<&str, usize> = HashMap::new();
    for (i, n) in pending.iter().enumerate() {
        if !channels.contains_key(&n.recipient) {
            out.inbox_only.push(n.notice_id);
            continue;
        }
        let h = n.household_id.as_str();
        if blocked.contains(h) {
            out.held += 1;
            continue;
        }
        if n.next_attempt_at.as_deref().is_some_and(|t| t > now) {
            out.not_due += 1;
            blocked.insert(h);
            continue;
        }
        match bound.get(h) {
            Some(r) if *r != n.recipient.as_str() => {
                out.held += 1;
                blocked.insert(h);
                continue;
            }
            _ => {
                bound.insert(h, n.recipient.as_str());
            }
        }
        let k = *ready_index.entry(n.recipient.as_str()).or_insert_with(|| {
            ready.push((n.recipient.as_str(), Vec::new()));
            ready.len() - 1
        });
        ready[k].1.push(i);
    }
    for (recipient, items) in ready {
        let Some(channel) = channels.get(recipient).cloned() else {
            continue;
        };
        let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
        if quota.allow(recipient, n) {
            out.recipients.push(RecipientPlan {
                recipient: recipient.to_string(),
                channel,
                deliveries: items.into_iter().map(|i| vec![i]).collect(),
                digest: false,
            });
        } else if quota.allow(recipient, 1) {
            let max = max_digest_items.max(1);
            out.over_quota += items.len().saturating_sub(max);
            let digest: Vec<usize> = items.into_iter().take(max).collect();
            out.recipients.push(RecipientPlan {
                recipient: recipient.to_string(),
                channel,
                digest: digest.len() > 1,
                deliveries: vec![digest],
            });
        } else {
            out.over_quota += items.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::tests::pending;

    /// A quota of `left` deliveries per recipient.
    struct Left(HashMap<String, u32>, u32);
    impl Allow for Left {
        fn allow(&mut self, recipient: &str, n: u32) -> bool {
            let left = self.0.entry(recipient.to_string()).or_insert(self.1);
            if *left >= n {
                *left -= n;
                true
            } else {
                false
            }
        }
    }

    fn hooks(ids: &[&str]) -> HashMap<String, Channel> {
        ids.iter()
            .map(|i| {
                (
                    i.to_string(),
                    Channel::Webhook(format!("http://127.0.0.1:1/{i}")),
                )
            })
            .collect()
    }

    const NOW: &str = "2026-02-12T03:00:00.000000Z";

    fn ids(p: &[PendingNotice], d: &[usize]) -> Vec<i64> {
        d.iter().map(|&i| p[i].notice_id).collect()
    }

    #[test]
    fn notices_of_an_officer_without_a_webhook_stay_in_the_inbox_only() {
        let p = vec![pending(1, "HA", "li"), pending(2, "HB", "chen")];
        let plan = plan(&p, &hooks(&["li"]), NOW, &mut Left(HashMap::new(), 10), 100);
        assert_eq!(plan.inbox_only, vec![2]);
        assert_eq!(plan.recipients.len(), 1);
        assert_eq!(ids(&p, &plan.recipients[0].deliveries[0]), vec![1]);
    }

    #[test]
    fn a_household_in_retry_holds_its_later_notices_and_others_go_on() {
        let mut p = vec![
            pending(1, "HA", "li"),
            pending(2, "HB", "li"),
            pending(3, "HA", "li"),
        ];
        p[0].next_attempt_at = Some("2026-02-12T03:00:05.000000Z".into());
        let plan = plan(&p, &hooks(&["li"]), NOW, &mut Left(HashMap::new(), 10), 100);
        assert_eq!((plan.not_due, plan.held), (1, 1));
        let sent: Vec<Vec<i64>> = plan.recipients[0]
            .deliveries
            .iter()
            .map(|d| ids(&p, d))
            .collect();
        assert_eq!(sent, vec![vec![2]], "HA's notice 3 waits behind notice 1");
        // Once due, both go, in order.
        p[0].next_attempt_at = Some("2026-02-12T02:59:00.000000Z".into());
        let plan = super::plan(&p, &hooks(&["li"]), NOW, &mut Left(HashMap::new(), 10), 100);
        let sent: Vec<i64> = plan.recipients[0]
            .deliveries
            .iter()
            .flat_map(|d| ids(&p, d))
            .collect();
        assert_eq!(sent, vec![1, 2, 3]);
    }

    #[test]
    fn a_households_notices_go_to_one_recipient_a_pass_so_order_holds_across_recipients() {
        let p = vec![
            pending(1, "HA", "li"),
            pending(2, "HA", "chen"),
            pending(3, "HA", "li"),
        ];
        let plan = plan(
            &p,
            &hooks(&["li", "chen"]),
            NOW,
            &mut Left(HashMap::new(), 10),
            100,
        );
        assert_eq!(plan.recipients.len(), 1);
        assert_eq!(ids(&p, &plan.recipients[0].deliveries[0]), vec![1]);
        assert_eq!(plan.recipients[0].deliveries.len(), 1);
        assert_eq!(plan.held, 2);
    }

    #[test]
    fn a_recipient_over_quota_gets_one_digest_of_everything_pending_and_none_is_dropped() {
        let p: Vec<PendingNotice> = (1..=20)
            .map(|i| pending(i, &format!("H{i}"), "li"))
            .collect();
        let mut quota = Left(HashMap::new(), 5);
        let plan = plan(&p, &hooks(&["li"]), NOW, &mut quota, 100);
        let r = &plan.recipients[0];
        assert!(r.digest);
        assert_eq!(r.deliveries.len(), 1);
        assert_eq!(ids(&p, &r.deliveries[0]), (1..=20).collect::<Vec<_>>());
        assert_eq!(plan.over_quota, 0);
        // A digest is capped; the rest waits for the next one.
        let plan = super::plan(&p, &hooks(&["li"]), NOW, &mut Left(HashMap::new(), 5), 8);
        assert_eq!(plan.recipients[0].deliveries[0].len(), 8);
        assert_eq!(plan.over_quota, 12);
        // No quota at all: everything waits.
        let plan = super::plan(&p, &hooks(&["li"]), NOW, &mut Left(HashMap::new(), 0), 100);
        assert!(plan.recipients.is_empty());
        assert_eq!(plan.over_quota, 20);
    }

    #[test]
    fn within_quota_notices_go_one_by_one() {
        let p: Vec<PendingNotice> = (1..=3).map(|i| pending(i, "HA", "li")).collect();
        let plan = plan(&p, &hooks(&["li"]), NOW, &mut Left(HashMap::new(), 5), 100);
        assert!(!plan.recipients[0].digest);
        assert_eq!(
            plan.recipients[0].deliveries,
            vec![vec![0], vec![1], vec![2]]
        );
    }
}
