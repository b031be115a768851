//! The sending loop: read pending notices, plan the pass, send (recipients in parallel, each
//! recipient's deliveries in order), log every attempt and move the notices on, in one transaction
//! per pass.
//!
//! Each officer is reached by their directory channel: the signed webhook (a JSON [`Payload`]), a
//! WeCom group robot or a DingTalk custom robot (one markdown message: [`crate::robot`]). All
//! three share the retries with backoff, the per-household order, the per-recipient quota (a
//! robot's at most [`ROBOT_MESSAGES_PER_MINUTE`]) and the digests.
//!
//! [`Payload`]: crate::Payload

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use doudi_store::{AttemptOutcome, DeliveryAttempt, PendingNotice, Store};
use doudi_warnings::routing::Officer;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::backoff::Backoff;
use crate::channel::{Channel, Target};
use crate::limits::{Allow, RecipientLimits};
use crate::payload::{item, payload, Item};
use crate::plan::plan;
use crate::robot::{self, Flavor, Outcome, MAX_MESSAGE_BYTES, ROBOT_MESSAGES_PER_MINUTE};
use crate::sign::{
    sign, HEADER_IDEMPOTENCY_KEY, HEADER_KEY_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use crate::DeliverError;
use crate::{dingtalk, wecom};

/// How to deliver.
#[derive(Clone)]
pub struct Settings {
    /// The HMAC key shared with receivers (never logged).
    pub secret: Vec<u8>,
    /// Its id, sent in `X-Doudi-Key-Id` (receivers pick the key by it during a change).
    pub key_id: String,
    /// Deliveries per recipient per minute (also the burst).
    pub quota_per_minute: NonZeroU32,
    /// Most notices in one digest.
    pub max_digest_items: usize,
    pub backoff: Backoff,
    /// Attempts per notice before it is marked failed.
    pub max_attempts: u32,
    /// Per request.
    pub timeout: Duration,
    /// The web service, for the link to each warning.
    pub web_base_url: String,
    /// The locality's time zone: robot messages give the deadline in it, to the minute.
    pub time_zone: Tz,
    /// Pending notices read per pass.
    pub batch_size: i64,
    /// Recipients served at once.
    pub concurrency: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("secret", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("quota_per_minute", &self.quota_per_minute)
            .field("max_digest_items", &self.max_digest_items)
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .field("web_base_url", &self.web_base_url)
            .field("time_zone", &self.time_zone)
            .field("batch_size", &self.batch_size)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// What one pass (or a run of passes) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Notices delivered.
    pub delivered: u64,
    /// Requests made (each a notice or a digest).
    pub attempts: u64,
    /// Digests delivered.
    pub digests: u64,
    /// Notices whose attempt failed and that will be retried.
    pub retrying: u64,
    /// Notices given up on (still listed).
    pub failed: u64,
    /// Notices whose recipient has no delivery channel: inbox only.
    pub inbox_only: u64,
    /// Notices waiting: in backoff, behind an earlier notice of their household, over quota, or
    /// beyond what one robot message holds.
    pub waiting: u64,
}

impl PassReport {
    fn add(&mut self, o: &PassReport) {
        doudi_telemetry::add_counts!(self, o;
            delivered, attempts, digests, retrying, failed, inbox_only);
        self.waiting = o.waiting;
    }

    /// Did the pass move anything?
    pub fn moved(&self) -> bool {
        self.attempts > 0 || self.inbox_only > 0
    }
}

/// The deliverer: settings, an HTTP client, the per-recipient limits and the jitter's RNG.
pub struct Deliverer {
    settings: Settings,
    secret: Arc<[u8]>,
    key_id: Arc<str>,
    client: reqwest::Client,
    limits: RecipientLimits,
    /// Chat robots, by robot: at most [`ROBOT_MESSAGES_PER_MINUTE`] each.
    robot_limits: RecipientLimits,
    rng: ChaCha8Rng,
}

/// The quota of each recipient by their channel: a webhook's per recipient; a robot's, the
/// smaller, per robot (officers who share a group's robot share its quota).
struct ByChannel<'a> {
    webhook: &'a mut RecipientLimits,
    robot: &'a mut RecipientLimits,
    /// Recipient → their robot.
    robots: &'a HashMap<&'a str, &'a str>,
}

impl Allow for ByChannel<'_> {
    fn allow(&mut self, recipient: &str, n: u32) -> bool {
        match self.robots.get(recipient) {
            Some(robot) => self.robot.allow(robot, n),
            None => self.webhook.allow(recipient, n),
        }
    }
}

/// One request to make.
struct Job {
    /// The idempotency key (a webhook's header; for a robot, the delivery log's key).
    key: String,
    /// JSON: the webhook's payload, or the robot's markdown message.
    body: Vec<u8>,
    /// (notice id, this attempt's number for it).
    notices: Vec<(i64, i64)>,
    households: Vec<String>,
    digest: bool,
}

enum Sent {
    /// Not attempted: an earlier delivery of one of its households failed in this pass.
    Skipped,
    Done {
        at: DateTime<Utc>,
        status: Option<u16>,
        /// Taken by the receiver (a 2xx; from a robot, also `errcode` 0).
        ok: bool,
        error: Option<String>,
        elapsed_ms: i64,
        /// A retry may help (no answer, 408, 425, 429, 5xx; a robot's non-zero `errcode`).
        retryable: bool,
    },
}

fn stamp(t: DateTime<Utc>) -> String {
    doudi_store::ts(&t)
}

/// An error's text with its causes, without the URL (it may carry a token).
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Deliverer {
    /// An empty secret is allowed for a directory of robots only: a pass refuses to run while an
    /// officer is reached by a webhook (an unsigned webhook could be forged by anyone).
    pub fn new(settings: Settings) -> Result<Deliverer, DeliverError> {
        if settings.max_attempts == 0 {
            return Err(DeliverError::Setting(
                "max_attempts must be at least 1".into(),
            ));
        }
        if settings.batch_size <= 0 {
            return Err(DeliverError::Setting(
                "batch_size must be at least 1".into(),
            ));
        }
        let robot_quota = settings
            .quota_per_minute
            .min(NonZeroU32::new(ROBOT_MESSAGES_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("doudi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DeliverError::Client(e.to_string()))?;
        Ok(Deliverer {
            secret: Arc::from(settings.secret.as_slice()),
            key_id: Arc::from(settings.key_id.as_str()),
            limits: RecipientLimits::per_minute(settings.quota_per_minute),
            robot_limits: RecipientLimits::per_minute(robot_quota),
            settings,
            client,
            rng: ChaCha8Rng::from_entropy(),
        })
    }

    /// Seed the jitter (tests, benchmarks).
    pub fn with_seed(mut self, seed: u64) -> Deliverer {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self
    }

    /// Recipient → delivery channel, from the stored officer directory.
    async fn channels(store: &Store) -> Result<HashMap<String, Channel>, DeliverError> {
        let mut out = HashMap::new();
        for r in store.load_officers().await? {
            let o: Officer =
                serde_json::from_str(&r.record).map_err(|e| DeliverError::Officer {
                    officer: r.officer_id.clone(),
                    message: e.to_string(),
                })?;
            if let Some(c) = Channel::of(&o.channels) {
                out.insert(o.officer_id, c);
            }
        }
        Ok(out)
    }

    /// One pass: deliver what is due now.
    pub async fn pass(&mut self, store: &Store) -> Result<PassReport, DeliverError> {
        let channels = Self::channels(store).await?;
        if self.secret.is_empty() {
            let mut hooks: Vec<&str> = channels
                .iter()
                .filter(|(_, c)| !c.is_robot())
                .map(|(r, _)| r.as_str())
                .collect();
            if !hooks.is_empty() {
                hooks.sort_unstable();
                let more = hooks.len().saturating_sub(3);
                hooks.truncate(3);
                let mut named = hooks.join(", ");
                if more > 0 {
                    named.push_str(&format!(" and {more} more"));
                }
                return Err(DeliverError::NoSecret(named));
            }
        }
        let pending = store.pending_notices(self.settings.batch_size).await?;
        let mut report = PassReport::default();
        if pending.is_empty() {
            return Ok(report);
        }
        let now = stamp(Utc::now());
        let robots: HashMap<&str, &str> = channels
            .iter()
            .filter_map(|(r, c)| c.robot_key().map(|k| (r.as_str(), k)))
            .collect();
        let p = plan(
            &pending,
            &channels,
            &now,
            &mut ByChannel {
                webhook: &mut self.limits,
                robot: &mut self.robot_limits,
                robots: &robots,
            },
            self.settings.max_digest_items,
        );
        store.mark_inbox_only(&p.inbox_only).await?;
        report.inbox_only = p.inbox_only.len() as u64;
        report.waiting = (p.not_due + p.held + p.over_quota) as u64;
        // The villages' names, for the notices sent this pass.
        let mut codes: Vec<String> = p
            .recipients
            .iter()
            .flat_map(|rp| rp.deliveries.iter().flatten())
            .map(|&i| pending[i].region_code.clone())
            .collect();
        codes.sort();
        codes.dedup();
        let places = store.region_names(&codes).await?;

        let mut tasks = tokio::task::JoinSet::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.settings.concurrency.max(1),
        ));
        for (r, rp) in p.recipients.iter().enumerate() {
            let target = Target::resolve(&rp.channel);
            let mut jobs: Vec<Job> = Vec::with_capacity(rp.deliveries.len());
            for d in &rp.deliveries {
                let notices: Vec<&PendingNotice> = d.iter().map(|&i| &pending[i]).collect();
                let job = self.job(&rp.recipient, &rp.channel, &notices, &places, rp.digest);
                report.waiting += (notices.len() - job.notices.len()) as u64;
                jobs.push(job);
            }
            let client = self.client.clone();
            let secret = Arc::clone(&self.secret);
            let key_id = Arc::clone(&self.key_id);
            let permits = Arc::clone(&permits);
            let timeout = self.settings.timeout;
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let sent = send_all(&client, (&key_id, &secret), &target, &jobs, timeout).await;
                (r, jobs, sent)
            });
        }
        let mut results = Vec::with_capacity(p.recipients.len());
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(r) => results.push(r),
                Err(e) => tracing::error!(error = %e, "a delivery task failed"),
            }
        }
        // In plan order, so that the jitter drawn is deterministic under a seed.
        results.sort_by_key(|(r, _, _)| *r);
        let mut attempts = Vec::new();
        for (r, jobs, sent) in results {
            let recipient = &p.recipients[r].recipient;
            let channel = p.recipients[r].channel.code();
            for (job, s) in jobs.into_iter().zip(sent) {
                let Sent::Done {
                    at,
                    status,
                    ok,
                    error,
                    elapsed_ms,
                    retryable,
                } = s
                else {
                    report.waiting += job.notices.len() as u64;
                    continue;
                };
                report.attempts += 1;
                let attempt = job.notices.iter().map(|(_, n)| *n).max().unwrap_or(1);
                // A failed attempt in the log, with the same fields whether it is retried (warn)
                // or given up (error): `tracing` fixes an event's level where it is written.
                macro_rules! failed_attempt {
                    ($level:ident, $($rest:tt)+) => {
                        tracing::$level!(
                            recipient = %recipient,
                            channel,
                            notices = job.notices.len(),
                            attempt,
                            status = status.map(i64::from),
                            $($rest)+
                        )
                    };
                }
                let outcome = if ok {
                    report.delivered += job.notices.len() as u64;
                    if job.digest {
                        report.digests += 1;
                    }
                    AttemptOutcome::Delivered
                } else if retryable && attempt < i64::from(self.settings.max_attempts) {
                    report.retrying += job.notices.len() as u64;
                    let delay = self
                        .settings
                        .backoff
                        .delay(u32::try_from(attempt).unwrap_or(u32::MAX), &mut self.rng);
                    let next = at + chrono::Duration::from_std(delay).unwrap_or_default();
                    failed_attempt!(
                        warn,
                        retry_in_ms = delay.as_millis() as u64,
                        "delivery failed; will retry"
                    );
                    AttemptOutcome::Retry {
                        next_attempt_at: stamp(next),
                    }
                } else {
                    report.failed += job.notices.len() as u64;
                    failed_attempt!(
                        error,
                        "delivery given up: notices marked failed (still in the inbox)"
                    );
                    AttemptOutcome::Failed
                };
                attempts.push(DeliveryAttempt {
                    recipient: recipient.clone(),
                    channel: channel.into(),
                    idempotency_key: job.key,
                    notices: job.notices,
                    digest: job.digest,
                    at: stamp(at),
                    http_status: status.map(i64::from),
                    error: if ok {
                        None
                    } else {
                        error.or_else(|| status.map(|s| format!("HTTP {s}")))
                    },
                    elapsed_ms,
                    outcome,
                });
            }
        }
        store.record_deliveries(&attempts).await?;
        if report.moved() {
            doudi_telemetry::info_counts!(report, "delivery pass";
                delivered, digests, retrying, failed, inbox_only, waiting);
        }
        Ok(report)
    }

    /// The request for `notices` (one, or a digest) to `recipient` over `channel`. A robot
    /// message carries as many of them as fit ([`robot::message`]); the job lists those only, the
    /// rest stay pending for a later message.
    fn job(
        &self,
        recipient: &str,
        channel: &Channel,
        notices: &[&PendingNotice],
        places: &HashMap<String, String>,
        digest: bool,
    ) -> Job {
        let mut items: Vec<Item> = notices
            .iter()
            .map(|n| {
                let mut i = item(n, &self.settings.web_base_url);
                i.household.region_name = places.get(&n.region_code).cloned();
                i
            })
            .collect();
        let flavor = match channel {
            Channel::Webhook(_) => None,
            Channel::Wecom(_) => Some(Flavor::Wecom),
            Channel::Dingtalk(_) => Some(Flavor::Dingtalk),
        };
        let (key, body, carried) = match flavor {
            None => {
                let body = payload(recipient, items);
                // A payload of strings and numbers always serialises.
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                (body.idempotency_key, bytes, notices)
            }
            Some(flavor) => {
                let m = robot::message(&items, self.settings.time_zone, flavor, MAX_MESSAGE_BYTES);
                let n = m.carried.clamp(1, notices.len().max(1));
                items.truncate(n);
                let key = payload(recipient, items).idempotency_key;
                let body = match flavor {
                    Flavor::Wecom => wecom::body(&m.text),
                    Flavor::Dingtalk => dingtalk::body(&m.title, &m.text),
                };
                (key, body, &notices[..n.min(notices.len())])
            }
        };
        let mut households: Vec<String> = carried.iter().map(|n| n.household_id.clone()).collect();
        households.sort();
        households.dedup();
        Job {
            key,
            body,
            notices: carried
                .iter()
                .map(|n| (n.notice_id, n.attempts + 1))
                .collect(),
            households,
            digest: digest && carried.len() > 1,
        }
    }

    /// Passes until `shutdown` resolves: straight on while there is work, else every `poll`.
    pub async fn run(
        &mut self,
        store: &Store,
        poll: Duration,
        shutdown: impl Future<Output = ()>,
    ) -> Result<PassReport, DeliverError> {
        let mut total = PassReport::default();
        tokio::pin!(shutdown);
        loop {
            let r = self.pass(store).await?;
            total.add(&r);
            if !r.moved() {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(poll) => {}
                }
            } else if futures_ready(&mut shutdown).await {
                break;
            }
        }
        Ok(total)
    }
}

/// Has `f` completed (polled once, without waiting)?
async fn futures_ready<F: Future<Output = ()> + Unpin>(f: &mut F) -> bool {
    tokio::select! {
        biased;
        _ = f => true,
        _ = std::future::ready(()) => false,
    }
}

/// How one request ended.
struct Answered {
    status: Option<u16>,
    ok: bool,
    error: Option<String>,
    retryable: bool,
}

impl Answered {
    /// No answer, or no request could be made: retried.
    fn none(error: String) -> Answered {
        Answered {
            status: None,
            ok: false,
            error: Some(error),
            retryable: true,
        }
    }

    /// A webhook's answer: a 2xx is delivered.
    fn http(status: u16) -> Answered {
        Answered {
            status: Some(status),
            ok: (200..300).contains(&status),
            error: None,
            retryable: status == 408 || status == 425 || status == 429 || status >= 500,
        }
    }

    /// A robot's answer: HTTP 200 with `errcode` 0 is delivered.
    fn robot(status: u16, body: &[u8]) -> Answered {
        match robot::outcome(status, body) {
            Outcome::Delivered => Answered {
                status: Some(status),
                ok: true,
                error: None,
                retryable: false,
            },
            Outcome::Refused { error, retryable } => Answered {
                status: Some(status),
                ok: false,
                error: Some(error),
                retryable,
            },
        }
    }
}

/// POST `body` as JSON to `url` and read the answer.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    timeout: Duration,
    headers: &[(&str, String)],
    robot: bool,
) -> Answered {
    let mut req = client.post(url).header(
        reqwest::header::CONTENT_TYPE,
        "application/json; charset=utf-8",
    );
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    match req.body(body.to_vec()).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read the (small) answer: a robot's says whether the message was taken, and a read
            // answer lets the connection be reused.
            let answer = resp.bytes().await.unwrap_or_default();
            if robot {
                Answered::robot(status, &answer)
            } else {
                Answered::http(status)
            }
        }
        Err(e) => Answered::none(describe(e, timeout)),
    }
}

/// Send one job to `target`.
async fn send_one(
    client: &reqwest::Client,
    (key_id, secret): (&str, &[u8]),
    target: &Target,
    job: &Job,
    timeout: Duration,
) -> Answered {
    match target {
        Target::Unusable(e) => Answered::none(e.clone()),
        Target::Webhook { url } => {
            let ts = Utc::now().timestamp();
            let headers = [
                (HEADER_TIMESTAMP, ts.to_string()),
                (HEADER_SIGNATURE, sign(secret, ts, &job.body)),
                (HEADER_KEY_ID, key_id.to_string()),
                (HEADER_IDEMPOTENCY_KEY, job.key.clone()),
            ];
            post(client, url, &job.body, timeout, &headers, false).await
        }
        Target::Wecom { url } => post(client, url, &job.body, timeout, &[], true).await,
        Target::Dingtalk { url, secret } => {
            // Signed anew at each attempt: DingTalk refuses a timestamp an hour old.
            match dingtalk::signed_url(url, secret, Utc::now().timestamp_millis()) {
                Ok(signed) => post(client, &signed, &job.body, timeout, &[], true).await,
                Err(e) => Answered::none(e.to_string()),
            }
        }
    }
}

/// A recipient's deliveries, in order; after a failure, the rest of that household's wait.
async fn send_all(
    client: &reqwest::Client,
    webhook_key: (&str, &[u8]),
    target: &Target,
    jobs: &[Job],
    timeout: Duration,
) -> Vec<Sent> {
    let mut failed: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.households.iter().any(|h| failed.contains(h.as_str())) {
            out.push(Sent::Skipped);
            continue;
        }
        let at = Utc::now();
        let started = Instant::now();
        let a = send_one(client, webhook_key, target, job, timeout).await;
        let elapsed_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        if !a.ok {
            failed.extend(job.households.iter().map(String::as_str));
        }
        out.push(Sent::Done {
            at,
            status: a.status,
            ok: a.ok,
            error: a.error,
            elapsed_ms,
            retryable: a.retryable,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn officers_who_share_a_robot_share_its_quota_and_webhooks_keep_their_own() {
        let per_minute = |n| RecipientLimits::per_minute(NonZeroU32::new(n).unwrap());
        let (mut webhook, mut robot) = (per_minute(30), per_minute(ROBOT_MESSAGES_PER_MINUTE));
        let robots: HashMap<&str, &str> = [("li", "/robots/a.url"), ("wang", "/robots/a.url")]
            .into_iter()
            .collect();
        let mut q = ByChannel {
            webhook: &mut webhook,
            robot: &mut robot,
            robots: &robots,
        };
        assert!(!q.allow("li", 21), "a robot takes 20 a minute");
        assert!(q.allow("li", 20));
        assert!(!q.allow("wang", 1), "the same robot: its minute is used up");
        assert!(
            q.allow("zhao", 30),
            "a webhook recipient has the configured quota"
        );
    }
}
