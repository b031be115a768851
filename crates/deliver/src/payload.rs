//! What a webhook receives: one notice, or a digest of several for one recipient, each item telling
//! the officer on one screen who (household, members concerned with masked ID numbers and names,
//! address, category), why (the reasons in plain words, with amounts and dates), how urgent (level,
//! deadline) and what to do (suggested relief), with a link to the warning in the web service.
//!
//! The body is a function of the notices alone (no send time in it), so a retried request carries
//! the very same bytes; the send time is in the signed `X-Doudi-Timestamp` header.

use doudi_model::{mask_id_str, mask_name};
use doudi_store::PendingNotice;
use doudi_warnings::escalation::NoticeNote;
use doudi_warnings::explain::{explain, Ask};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One request body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// `notice` (one item) or `digest` (several, the recipient being over their quota).
    #[serde(rename = "type")]
    pub kind: String,
    pub recipient: String,
    /// The same as the `Idempotency-Key` header. Each item also has its own key: a receiver that
    /// applies each item once by its key is safe against every retry, digests included.
    pub idempotency_key: String,
    pub count: usize,
    pub items: Vec<Item>,
}

/// One notice as the officer reads it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// `doudi-notice-<notice_id>`.
    pub idempotency_key: String,
    pub notice_id: i64,
    /// opened, raised, escalated, overdue, reminder.
    pub notice: String,
    pub due_at: String,
    /// Why the notice was made (an escalation, an overdue warning, a reminder), as stored.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// The note in Chinese and in English (`超过 2 小时无人签收` / `not acknowledged within 2 h`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note_zh: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note_en: String,
    pub warning: WarningRef,
    pub household: HouseholdRef,
    /// The members concerned (those whose records made the rules fire; every member when none is
    /// known), masked.
    pub members: Vec<MemberRef>,
    /// What the warning asks: `act`, or `verify_and_close` when the findings that raised it no
    /// longer count (the risk cleared with evidence, or its signals expired while nobody acted).
    /// Absent when the household's assessment cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<Ask>,
    /// Why the warning is at its level (the urgency class, or that the level was reached earlier,
    /// and for `verify_and_close` what changed since), Chinese and English line by line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why_zh: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why_en: Vec<String>,
    /// Why, in plain words, strongest first as the assessment lists them. For a warning that asks
    /// to verify and close, the original reasons (the findings that raised it, as they stood), each
    /// followed by what changed since: never an empty list for a warning raised by findings.
    pub reasons: Vec<Reason>,
    /// The suggested relief (amount, months, kind, approver, why), if any.
    pub relief: Option<Value>,
    /// Reviews to open (低保渐退, asset checks, stopping a benefit on death): never cuts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review_needed: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarningRef {
    pub warning_id: i64,
    /// The warning in the web service.
    pub link: String,
    pub level: String,
    pub score: i64,
    pub status: String,
    pub opened_at: String,
    /// The deadline to act.
    pub deadline: String,
    /// When the hardship happened: the event time of the record that set the level (absent for a
    /// warning opened before it was kept).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// The record that set the level arrived long after it happened (补录, a catch-up case): the
    /// deadline is a catch-up window from its receipt.
    #[serde(default)]
    pub late: bool,
    pub rule_set_version: Option<String>,
}

/// The household as a notice names it (no person's name or ID number: those are in
/// [`MemberRef`], masked).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HouseholdRef {
    pub household_id: String,
    pub region_code: String,
    /// The village's name (`东河口镇大塘村`, from `doudi regions import`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
    pub address: Option<String>,
    pub category: Option<String>,
    pub area: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRef {
    pub member_id: String,
    /// Masked: `陈**`.
    pub name: String,
    /// Masked: `342401********046X`.
    pub id_number: String,
    pub relation: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub rule_id: String,
    pub points: i64,
    pub reason_zh: String,
    pub reason_en: String,
    /// The source records behind it.
    pub event_ids: Vec<String>,
}

/// The idempotency key of one notice.
pub fn notice_key(notice_id: i64) -> String {
    format!("doudi-notice-{notice_id}")
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The item for a pending notice. A stored record that cannot be read gives empty fields, never a
/// failure: the officer still gets the notice and the link.
pub fn item(n: &PendingNotice, web_base_url: &str) -> Item {
    let summary = n.summary.as_ref().ok();
    let household: Value = serde_json::from_str(&n.household).unwrap_or(Value::Null);
    let all: Vec<&Value> = household
        .get("members")
        .and_then(Value::as_array)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    let concerned: Vec<&Value> = all
        .iter()
        .copied()
        .filter(|m| text(m, "member_id").is_some_and(|id| n.members_concerned.contains(&id)))
        .collect();
    let members = if concerned.is_empty() { all } else { concerned }
        .into_iter()
        .map(|m| MemberRef {
            member_id: text(m, "member_id").unwrap_or_default(),
            name: mask_name(&text(m, "name").unwrap_or_default()),
            id_number: mask_id_str(&text(m, "id_number").unwrap_or_default()),
            relation: text(m, "relation"),
        })
        .collect();
    let explanation = summary.map(|a| explain(n.level, a));
    let reason = |c: &doudi_model::Contribution| Reason {
        rule_id: c.rule_id.clone(),
        points: c.points,
        reason_zh: c.reason_zh.clone(),
        reason_en: c.reason_en.clone(),
        event_ids: c.event_ids.clone(),
    };
    let mut reasons: Vec<Reason> = summary
        .into_iter()
        .flat_map(|a| &a.contributions)
        .map(reason)
        .collect();
    if explanation.as_ref().map(|e| e.ask) == Some(Ask::VerifyAndClose) {
        // The latest assessment no longer holds what raised the warning: tell the officer what
        // did, and what changed since.
        let lapsed = summary
            .and_then(|a| a.risk.as_ref())
            .map(|r| r.lapsed.as_slice())
            .unwrap_or_default();
        reasons.extend(lapsed.iter().map(|l| {
            let mut r = reason(&l.finding);
            r.reason_zh = format!("{}（{}）", r.reason_zh, l.change_zh);
            r.reason_en = format!("{} ({})", r.reason_en, l.change_en);
            r
        }));
    }
    Item {
        idempotency_key: notice_key(n.notice_id),
        notice_id: n.notice_id,
        notice: n.kind.clone(),
        due_at: n.due_at.clone(),
        note: n.note.clone(),
        note_zh: NoticeNote::zh_of(&n.note),
        note_en: NoticeNote::en_of(&n.note),
        warning: WarningRef {
            warning_id: n.warning_id,
            link: format!(
                "{}/warnings/{}",
                web_base_url.trim_end_matches('/'),
                n.warning_id
            ),
            level: n.level.code().to_string(),
            score: n.score,
            status: n.warning_status.code().to_string(),
            opened_at: n.opened_at.clone(),
            deadline: n.deadline.clone(),
            occurred_at: n.occurred_at.clone(),
            late: n.late,
            rule_set_version: summary.map(|a| a.rule_set_version.clone()),
        },
        household: HouseholdRef {
            household_id: n.household_id.clone(),
            region_code: n.region_code.clone(),
            region_name: None,
            address: text(&household, "address"),
            category: text(&household, "category"),
            area: text(&household, "area"),
        },
        members,
        ask: explanation.as_ref().map(|e| e.ask),
        why_zh: explanation
            .as_ref()
            .map(|e| e.why_zh.clone())
            .unwrap_or_default(),
        why_en: explanation.map(|e| e.why_en).unwrap_or_default(),
        reasons,
        relief: summary
            .and_then(|a| a.relief.as_ref())
            .and_then(|r| serde_json::to_value(r).ok()),
        review_needed: summary.map(|a| a.review_needed.clone()).unwrap_or_default(),
    }
}

/// The body for `items` (in notice order) to `recipient`: a notice if one, else a digest whose key
/// is derived from the notice ids it carries (the same set retried gives the same key).
pub fn payload(recipient: &str, items: Vec<Item>) -> Payload {
    let (kind, key) = match items.as_slice() {
        [one] => ("notice", one.idempotency_key.clone()),
        many => {
            let ids: Vec<String> = many.iter().map(|i| i.notice_id.to_string()).collect();
            let hash = Sha256::digest(ids.join(",").as_bytes());
            (
                "digest",
                format!("doudi-digest-{}", &hex::encode(hash)[..24]),
            )
        }
    };
    Payload {
        kind: kind.to_string(),
        recipient: recipient.to_string(),
        idempotency_key: key,
        count: items.len(),
        items,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use doudi_model::{Assessment, Contribution, Level, Money, ReliefSuggestion, WarningStatus};
    use doudi_store::Unreadable;

    pub(crate) fn pending(notice_id: i64, household: &str, recipient: &str) -> PendingNotice {
        PendingNotice {
            notice_id,
            warning_id: 40 + notice_id,
            kind: "opened".into(),
            recipient: recipient.into(),
            due_at: "2026-02-12T02:05:00.000000Z".into(),
            created_at: "2026-02-12T02:05:00.000000Z".into(),
            note: String::new(),
            attempts: 0,
            next_attempt_at: None,
            household_id: household.into(),
            region_code: "341502001003".into(),
            level: Level::Red,
            score: 85,
            warning_status: WarningStatus::Open,
            deadline: "2026-02-14T02:05:00.000000Z".into(),
            opened_at: "2026-02-12T02:05:00.000000Z".into(),
            occurred_at: Some("2026-02-12T01:00:00.000000Z".into()),
            late: false,
            summary: Ok(Assessment {
                rule_set_version: "2026.1".into(),
                household_id: household.into(),
                score: 85,
                level: Level::Red,
                contributions: vec![Contribution {
                    rule_id: "serious_illness".into(),
                    points: 60,
                    reason_zh: "2026-02-12 确诊重病（肺恶性肿瘤）".into(),
                    reason_en: "serious illness diagnosed on 2026-02-12".into(),
                    event_ids: vec!["YB-1".into()],
                    urgency: None,
                    cause: None,
                }],
                relief: Some(ReliefSuggestion {
                    amount: Money::from_fen(219_600),
                    months: 3,
                    kind: "emergency".into(),
                    within_township_limit: true,
                    approver: "township".into(),
                    reason_zh: String::new(),
                    reason_en: String::new(),
                    enrolment: Vec::new(),
                }),
                act_within_hours: Some(24),
                review_needed: Vec::new(),
                basis: None,
                risk: None,
            }),
            household: serde_json::json!({
                "household_id": household, "address": "大塘村1号", "category": "tekun", "area": "rural",
                "members": [
                    {"member_id": format!("{household}-1"), "id_number": "34240119490127046X", "name": "陈桂兰", "relation": "head"},
                    {"member_id": format!("{household}-2"), "id_number": "342401197501010012", "name": "李强", "relation": "child"}
                ]
            })
            .to_string(),
            members_concerned: vec![format!("{household}-1")],
        }
    }

    #[test]
    fn an_item_names_the_members_concerned_masked_with_reasons_relief_and_link() {
        let i = item(&pending(7, "HA", "li"), "https://doudi.example/");
        assert_eq!(i.idempotency_key, "doudi-notice-7");
        assert_eq!(i.warning.link, "https://doudi.example/warnings/47");
        assert_eq!(i.members.len(), 1, "only the member concerned");
        assert_eq!(i.members[0].id_number, "342401********046X");
        assert_eq!(i.members[0].name, "陈**");
        assert_eq!(i.household.address.as_deref(), Some("大塘村1号"));
        assert_eq!(i.reasons[0].reason_zh, "2026-02-12 确诊重病（肺恶性肿瘤）");
        assert_eq!(i.relief.as_ref().unwrap()["amount"], 219_600);
        let body = serde_json::to_string(&payload("li", vec![i])).unwrap();
        assert!(!body.contains("34240119490127046X") && !body.contains("陈桂兰"));
    }

    #[test]
    fn an_open_red_whose_risk_expired_asks_to_verify_and_close_with_its_original_reasons() {
        use doudi_model::{Lapsed, RiskState, RiskStatus};
        let mut n = pending(8, "HB", "li");
        let a = n.summary.as_mut().unwrap();
        let finding = a.contributions.remove(0);
        a.score = 0;
        a.level = Level::None;
        a.relief = None;
        a.risk = Some(RiskState {
            status: RiskStatus::Expired,
            lapsed_on: None,
            lapsed: vec![Lapsed {
                finding,
                change_zh: "已超过6个月无新的风险因素".into(),
                change_en: "no new risk signal for more than 6 months".into(),
            }],
        });
        let i = item(&n, "http://x");
        assert_eq!(i.ask, Some(Ask::VerifyAndClose));
        assert_eq!(i.reasons.len(), 1, "the original reason, not an empty red");
        assert_eq!(i.reasons[0].rule_id, "serious_illness");
        assert_eq!(
            i.reasons[0].reason_en,
            "serious illness diagnosed on 2026-02-12 (no new risk signal for more than 6 months)"
        );
        assert!(
            i.why_en.iter().any(|l| l.ends_with("verify and close")),
            "{:?}",
            i.why_en
        );
        let body = serde_json::to_value(&i).unwrap();
        assert_eq!(body["ask"], "verify_and_close");

        // A red whose findings still count asks to act, with its reasons as they are.
        let i = item(&pending(9, "HC", "li"), "http://x");
        assert_eq!(i.ask, Some(Ask::Act));
        assert_eq!(i.reasons.len(), 1);
    }

    #[test]
    fn with_no_member_known_every_member_is_listed_masked() {
        let mut n = pending(7, "HA", "li");
        n.members_concerned.clear();
        let i = item(&n, "http://x");
        assert_eq!(i.members.len(), 2);
        assert_eq!(i.members[1].id_number, "342401********0012");
    }

    #[test]
    fn a_record_that_is_not_json_still_gives_a_notice_with_its_link() {
        let mut n = pending(7, "HA", "li");
        n.summary = Err(Unreadable {
            column: "warnings.summary",
            message: "not json".into(),
        });
        n.household = "{".into();
        let i = item(&n, "http://x");
        assert!(i.members.is_empty() && i.reasons.is_empty());
        assert_eq!(i.warning.link, "http://x/warnings/47");
    }

    #[test]
    fn one_item_is_a_notice_with_its_key_and_several_a_digest_keyed_by_the_set() {
        let one = payload("li", vec![item(&pending(1, "HA", "li"), "")]);
        assert_eq!(
            (one.kind.as_str(), one.idempotency_key.as_str()),
            ("notice", "doudi-notice-1")
        );
        let d = |ids: &[i64]| {
            payload(
                "li",
                ids.iter()
                    .map(|&i| item(&pending(i, "HA", "li"), ""))
                    .collect(),
            )
        };
        let a = d(&[1, 2, 3]);
        assert_eq!((a.kind.as_str(), a.count), ("digest", 3));
        assert!(a.idempotency_key.starts_with("doudi-digest-"));
        assert_eq!(a.idempotency_key, d(&[1, 2, 3]).idempotency_key);
        assert_ne!(a.idempotency_key, d(&[1, 2]).idempotency_key);
    }
}
