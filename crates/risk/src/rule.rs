//! What a rule is: a table of parameters (`[rules.<id>]` in the rules file) that validates itself,
//! says which of the household's facts are risk signals (for 风险消除), and evaluates to one
//! [`Contribution`] (points with the reasons and the events that caused them) or nothing. Every
//! rule sees the same [`Ctx`]; the helpers here word the reasons alike.
//!
//! Weights and thresholds come from the rule's table, never from code.

use chrono::NaiveDate;
use doudi_model::{Contribution, Household, Relation};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::check::{RuleSetError, Section};
use crate::clearance::{Clearance, Signals};
use crate::policy::{Deductions, General, ReviewParams, Standard};
use crate::state::HouseholdState;

/// One risk rule, owning its parameters (`Self`, the `[rules.<ID>]` table).
pub trait Rule: Clone + std::fmt::Debug + PartialEq + Eq + Serialize + DeserializeOwned {
    /// The rule's id: its table's name in the rules file and the `rule_id` of its contribution.
    const ID: &'static str;

    /// Check the table's values (ranges, order), naming the key that is wrong under `at`
    /// (`rules.<ID>`).
    fn validate(&self, at: Section) -> Result<(), RuleSetError>;

    /// The household's facts this rule treats as risk signals, up to the day of the assessment,
    /// for clearing the risk (风险消除). None by default.
    fn signals(&self, _state: &HouseholdState, _standard: &Standard, _out: &mut Signals) {}

    /// The rule's contribution to the household's score, if it fires.
    fn eval(&self, cx: &Ctx) -> Option<Contribution>;
}

/// What every rule sees: the shared parts of the rule set, the household, its state, and what is
/// worked out once per assessment (the local standard, the pupils, the risk-clearing position).
pub struct Ctx<'s, 'a> {
    pub general: &'s General,
    pub deductions: &'s Deductions,
    pub review: &'s ReviewParams,
    pub household: &'s Household,
    pub state: &'s HouseholdState<'a>,
    pub standard: Standard,
    pub pupils: i64,
    pub clearance: Clearance,
}

impl Ctx<'_, '_> {
    /// Whether a signal that happened `on` still counts (its risk is not cleared).
    pub fn counts(&self, on: NaiveDate) -> bool {
        on <= self.state.as_of_date() && self.clearance.counts(on)
    }

    /// A living member able to work.
    pub fn able(&self, m: &crate::state::MemberState) -> bool {
        self.general.able(m)
    }
}

pub(crate) fn relation_zh(r: Option<Relation>) -> &'static str {
    match r {
        Some(Relation::Head) => "户主",
        Some(Relation::Spouse) => "配偶",
        Some(Relation::Child) => "子女",
        Some(Relation::Parent) => "父母",
        Some(Relation::Grandchild) => "孙子女",
        Some(Relation::Grandparent) => "祖父母",
        Some(Relation::Sibling) => "兄弟姐妹",
        Some(Relation::Other) => "其他亲属",
        None => "未在册成员",
    }
}

pub(crate) fn relation_en(r: Option<Relation>) -> &'static str {
    match r {
        Some(Relation::Head) => "head of household",
        Some(Relation::Spouse) => "spouse",
        Some(Relation::Child) => "child",
        Some(Relation::Parent) => "parent",
        Some(Relation::Grandchild) => "grandchild",
        Some(Relation::Grandparent) => "grandparent",
        Some(Relation::Sibling) => "sibling",
        Some(Relation::Other) => "other relative",
        None => "not on the register",
    }
}

/// The relation of a member of the state, `None` if unknown.
pub(crate) fn relation_of(state: &HouseholdState, member_id: &str) -> Option<Relation> {
    state.member(member_id).map(|m| m.relation)
}

/// The reasons for several records, each worded in Chinese and English, joined as an officer
/// reads them.
pub(crate) fn reasons<T>(records: &[T], each: impl Fn(&T) -> (String, String)) -> (String, String) {
    let (zh, en): (Vec<String>, Vec<String>) = records.iter().map(each).unzip();
    (zh.join("；"), en.join("; "))
}

/// A permille as a percentage for reasons: 500 → "50", 1250 → "125".
pub(crate) fn percent(permille: i64) -> String {
    if permille % 10 == 0 {
        format!("{}", permille / 10)
    } else {
        format!("{}.{}", permille / 10, (permille % 10).abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_words_a_permille() {
        assert_eq!(percent(500), "50");
        assert_eq!(percent(1255), "125.5");
    }
}
