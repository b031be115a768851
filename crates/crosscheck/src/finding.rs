//! Findings and their life across nights: a finding is identified by its key (check + subject);
//! [`reconcile`] turns tonight's findings and the open ones into new / still open / closed, so that
//! re-running a night, or a later night with the same facts, never duplicates anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use doudi_model::{Category, Money, RegionCode};

use crate::snapshot::Kind;

/// Routing category of every finding (the officer's queue they land in).
pub const CATEGORY: &str = "eligibility_review";

/// The checks, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// A member registered dead is still in a paid household.
    DeceasedStillPaid,
    /// Every member of the household is registered dead.
    NoLivingMember,
    /// A member owns a disqualifying vehicle.
    DisqualifyingVehicle,
    /// The household owns more homes than allowed, or a non-residential property.
    DisqualifyingProperty,
    /// A member is legal representative of, or holds a role in a large, active company.
    DisqualifyingCompany,
    /// Per-capita wage income above the line for N months in a row: a 渐退 review.
    IncomeAboveLine,
    /// The same person is enrolled in two households or two localities.
    DuplicateEnrolment,
    /// The member's ID number is not on the hukou roll.
    IdUnknownToHukou,
    /// The hukou roll's name or birth date disagrees with the register.
    HukouMismatch,
}

impl Check {
    pub const ALL: [Check; 9] = [
        Check::DeceasedStillPaid,
        Check::NoLivingMember,
        Check::DisqualifyingVehicle,
        Check::DisqualifyingProperty,
        Check::DisqualifyingCompany,
        Check::IncomeAboveLine,
        Check::DuplicateEnrolment,
        Check::IdUnknownToHukou,
        Check::HukouMismatch,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Check::DeceasedStillPaid => "deceased_still_paid",
            Check::NoLivingMember => "no_living_member",
            Check::DisqualifyingVehicle => "disqualifying_vehicle",
            Check::DisqualifyingProperty => "disqualifying_property",
            Check::DisqualifyingCompany => "disqualifying_company",
            Check::IncomeAboveLine => "income_above_line",
            Check::DuplicateEnrolment => "duplicate_enrolment",
            Check::IdUnknownToHukou => "id_unknown_to_hukou",
            Check::HukouMismatch => "hukou_mismatch",
        }
    }

    pub fn from_code(code: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.code() == code)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Check::DeceasedStillPaid => "死亡人员仍在保",
            Check::NoLivingMember => "家庭成员均已死亡",
            Check::DisqualifyingVehicle => "名下有超标车辆",
            Check::DisqualifyingProperty => "名下有超标房产",
            Check::DisqualifyingCompany => "名下有工商登记",
            Check::IncomeAboveLine => "收入超标（渐退复核）",
            Check::DuplicateEnrolment => "重复享受",
            Check::IdUnknownToHukou => "身份证号户籍查无",
            Check::HukouMismatch => "户籍信息不一致",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Check::DeceasedStillPaid => "Deceased member still paid",
            Check::NoLivingMember => "No living member",
            Check::DisqualifyingVehicle => "Disqualifying vehicle",
            Check::DisqualifyingProperty => "Disqualifying property",
            Check::DisqualifyingCompany => "Company registration",
            Check::IncomeAboveLine => "Income above the line (phase-out review)",
            Check::DuplicateEnrolment => "Enrolled twice",
            Check::IdUnknownToHukou => "ID unknown to hukou roll",
            Check::HukouMismatch => "Hukou name or birth date differs",
        }
    }

    /// Whether the finding is about one member (else about the household).
    pub fn about_member(self) -> bool {
        matches!(
            self,
            Check::DeceasedStillPaid
                | Check::DuplicateEnrolment
                | Check::IdUnknownToHukou
                | Check::HukouMismatch
        )
    }

    /// The snapshot kinds the check needs: it runs only when all of them were read completely.
    pub fn needs(self) -> &'static [Kind] {
        match self {
            Check::DeceasedStillPaid | Check::NoLivingMember => &[Kind::Deaths],
            Check::DisqualifyingVehicle => &[Kind::Vehicles],
            Check::DisqualifyingProperty => &[Kind::Properties],
            Check::DisqualifyingCompany => &[Kind::Companies],
            Check::IncomeAboveLine => &[Kind::Wages],
            Check::DuplicateEnrolment => &[Kind::Payments],
            Check::IdUnknownToHukou | Check::HukouMismatch => &[Kind::Hukou],
        }
    }

    /// The stable key of a finding of this check about a household (and member).
    pub fn key(self, household_id: &str, member_id: Option<&str>) -> String {
        match member_id {
            Some(m) => format!("{}:{household_id}:{m}", self.code()),
            None => format!("{}:{household_id}", self.code()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One thing found tonight that an officer must review. Holds masked personal data only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across nights: `<check>:<household_id>[:<member_id>]`.
    pub key: String,
    pub check: Check,
    pub household_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// The household's village: routes the finding to its officer.
    pub region_code: RegionCode,
    /// Always [`CATEGORY`].
    pub category: String,
    pub household_category: Category,
    /// Money at stake, in fen: for `deceased_still_paid`, what was paid for the member after the
    /// month of death; `no_living_member`, what was paid after the last death;
    /// `duplicate_enrolment`, what the other enrolments paid; `disqualifying_*`, a year of the
    /// household's benefit; `income_above_line`, the benefit over the grace period; the hukou
    /// checks, a year of the member's per-capita share of the benefit.
    #[serde(rename = "amount_at_stake_fen")]
    pub amount_at_stake: Money,
    /// The facts, with masked ID numbers and names only.
    pub evidence: serde_json::Value,
    pub summary_zh: String,
    pub summary_en: String,
    /// The night the finding was made.
    pub as_of: NaiveDate,
    /// The review is due by this date.
    pub deadline: NaiveDate,
}

impl Finding {
    /// The township (9 digits) of the household, for totals.
    pub fn township(&self) -> String {
        self.region_code
            .township()
            .map(|t| t.to_string())
            .unwrap_or_else(|| self.region_code.to_string())
    }
}

/// A finding as kept between nights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    pub finding: Finding,
    pub first_seen: NaiveDate,
    pub last_seen: NaiveDate,
}

/// A finding no longer true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedFinding {
    pub finding: StoredFinding,
    pub closed_on: NaiveDate,
    pub note_zh: String,
    pub note_en: String,
}

/// Tonight's findings against the open ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Found tonight for the first time (`first_seen` = tonight).
    pub new: Vec<StoredFinding>,
    /// Open before and still true: the finding's facts refreshed, `first_seen` kept.
    pub still_open: Vec<StoredFinding>,
    /// Keys of `still_open` findings whose facts (evidence, amount, summary) changed tonight.
    pub changed: Vec<String>,
    /// Open before, not found tonight by a check that ran: closed with a note.
    pub closed: Vec<ClosedFinding>,
}

impl Reconciliation {
    /// Whether storing this reconciliation changes nothing (a re-run of the same night).
    pub fn is_noop(&self, open: &[StoredFinding]) -> bool {
        self.new.is_empty() && self.closed.is_empty() && self.still_open.as_slice() == open
    }
}

/// Reconcile assuming every check ran tonight.
pub fn reconcile(open: &[StoredFinding], today: &[Finding], night: NaiveDate) -> Reconciliation {
    let all: BTreeSet<Check> = Check::ALL.into_iter().collect();
    reconcile_checks(open, today, night, &all)
}

/// Reconcile when only the checks in `ran` ran tonight: an open finding of a check that did not
/// run (its snapshot was missing or unreadable) stays open untouched, never closed.
///
/// Findings are matched by key. `open` holds the currently open findings (as returned by the
/// previous night's `new` and `still_open`); if it holds a key twice, the earliest `first_seen`
/// wins. Outputs are sorted by key.
pub fn reconcile_checks(
    open: &[StoredFinding],
    today: &[Finding],
    night: NaiveDate,
    ran: &BTreeSet<Check>,
) -> Reconciliation {
    let mut prev: BTreeMap<&str, &StoredFinding> = BTreeMap::new();
    for s in open {
        match prev.get(s.finding.key.as_str()) {
            Some(cur) if cur.first_seen <= s.first_seen => {}
            _ => {
                prev.insert(&s.finding.key, s);
            }
        }
    }
    let mut tonight: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in today {
        tonight.entry(&f.key).or_insert(f);
    }
    let mut r = Reconciliation::default();
    for (key, f) in &tonight {
        match prev.get(key) {
            None => r.new.push(StoredFinding {
                finding: (*f).clone(),
                first_seen: night,
                last_seen: night,
            }),
            Some(p) => {
                // Facts that did not change keep their old `as_of` and deadline: a re-run is a
                // no-op and a deadline never slides because the fact was seen again.
                let same_facts = p.finding.evidence == f.evidence
                    && p.finding.amount_at_stake == f.amount_at_stake
                    && p.finding.summary_zh == f.summary_zh
                    && p.finding.region_code == f.region_code;
                let mut finding = (*f).clone();
                finding.as_of = p.finding.as_of;
                finding.deadline = p.finding.deadline;
                if !same_facts {
                    r.changed.push(key.to_string());
                }
                r.still_open.push(StoredFinding {
                    finding,
                    first_seen: p.first_seen,
                    last_seen: night.max(p.last_seen),
                });
            }
        }
    }
    for (key, p) in prev {
        if tonight.contains_key(key) {
            continue;
        }
        if !ran.contains(&p.finding.check) {
            r.still_open.push(p.clone());
            continue;
        }
        r.closed.push(ClosedFinding {
            finding: p.clone(),
            closed_on: night,
            note_zh: format!("截至 {night} 的核对已不再发现此情况，自动关闭"),
            note_en: format!("no longer true as of {night}: closed automatically"),
        });
    }
    r.still_open
        .sort_by(|a, b| a.finding.key.cmp(&b.finding.key));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(key_hh: &str, amount: i64, night: NaiveDate) -> Finding {
        Finding {
            key: Check::DeceasedStillPaid.key(key_hh, Some("M1")),
            check: Check::DeceasedStillPaid,
            household_id: key_hh.into(),
            member_id: Some("M1".into()),
            region_code: RegionCode::parse("341502001001").unwrap(),
            category: CATEGORY.into(),
            household_category: Category::Dibao,
            amount_at_stake: Money::from_fen(amount),
            evidence: serde_json::json!({"amount_fen": amount}),
            summary_zh: format!("{amount}"),
            summary_en: format!("{amount}"),
            as_of: night,
            deadline: night + chrono::Days::new(15),
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    #[test]
    fn a_check_that_did_not_run_closes_nothing() {
        let n1 = day(1);
        let r1 = reconcile(&[], &[finding("H1", 100, n1)], n1);
        let ran = BTreeSet::from([Check::HukouMismatch]);
        let r2 = reconcile_checks(&r1.new, &[], day(2), &ran);
        assert!(r2.closed.is_empty());
        assert_eq!(r2.still_open, r1.new);
    }

    #[test]
    fn changed_facts_are_refreshed_but_keep_first_seen_and_deadline() {
        let r1 = reconcile(&[], &[finding("H1", 100, day(1))], day(1));
        let r2 = reconcile(&r1.new, &[finding("H1", 200, day(2))], day(2));
        assert!(r2.new.is_empty());
        assert_eq!(r2.changed, vec![r1.new[0].finding.key.clone()]);
        let s = &r2.still_open[0];
        assert_eq!(s.first_seen, day(1));
        assert_eq!(s.last_seen, day(2));
        assert_eq!(s.finding.amount_at_stake, Money::from_fen(200));
        assert_eq!(s.finding.deadline, r1.new[0].finding.deadline);
    }
}
