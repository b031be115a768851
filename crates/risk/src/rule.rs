//! What a rule is: a table of parameters (`[rules.<id>]` in the rules file) that validates itself,
//! says which of the household's facts are risk signals (for 风险消除), and evaluates to one
//! [`Contribution`] (points with the reasons and the events that caused them) or nothing. Every
//! rule sees the same [`Ctx`]; the helpers here word the reasons alike.
//!
//! Weights and thresholds come from the rule's table, never from code.

use chrono::NaiveDate;
use doudi_model::{Contribution, Household, Money, Relation};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::check::{RuleSetError, Section};
use crate::clearance::{Clearance, Episode, Signals};
use crate::evidence::Evidence;
use crate::policy::{Deductions, General, ReviewParams, Standard};
use crate::state::HouseholdState;

/// 急难 cause: the main income is gone and nobody left in the household is able to work.
pub const INCOME_GONE: &str = "income_gone";
/// 急难 cause: the home cannot be lived in and the household has not moved.
pub const HOME_UNINHABITABLE: &str = "home_uninhabitable";
/// 急难 cause: one bill beyond the household's yearly capacity to pay.
pub const BILL_BEYOND_CAPACITY: &str = "bill_beyond_capacity";

/// One risk rule, owning its parameters (`Self`, the `[rules.<ID>]` table).
pub trait Rule: Clone + std::fmt::Debug + PartialEq + Eq + Serialize + DeserializeOwned {
    /// The rule's id: its table's name in the rules file and the `rule_id` of its contribution.
    const ID: &'static str;

    /// What the rule is about, in a few words (`灾害` / `disaster`), for "what changed since".
    const NAME: (&'static str, &'static str);

    /// The policy causes (beside the rule's own id) its findings may report, each to be classed
    /// in the urgency table: `income_gone`, `home_uninhabitable`, `bill_beyond_capacity`.
    const CAUSES: &'static [&'static str] = &[];

    /// Check the table's values (ranges, order), naming the key that is wrong under `at`
    /// (`rules.<ID>`).
    fn validate(&self, at: Section) -> Result<(), RuleSetError>;

    /// The household's facts this rule treats as risk signals, up to the day of the assessment,
    /// for clearing the risk (风险消除). None by default.
    fn signals(&self, _: &Household, _: &HouseholdState, _: &Standard, _: &mut Signals) {}

    /// The rule's contribution to the household's score, if it fires.
    fn eval(&self, cx: &Ctx) -> Option<Contribution>;

    /// What changed since the rule's finding stopped counting (Chinese, English). By default:
    /// the finding is older than the stable period, with no new signal since.
    fn change(&self, lapse: &Lapse, _state: &HouseholdState) -> (String, String) {
        lapse.aged(Self::NAME)
    }
}

/// A finding that stopped counting: the episode it belonged to and the stable period after
/// which a risk is cleared.
#[derive(Clone, Copy, Debug)]
pub struct Lapse {
    pub episode: Episode,
    pub stable_months: i64,
    /// The per-capita line (after deductions) income came back to.
    pub line: Money,
}

impl Lapse {
    /// "the disaster is now more than 6 months old, with no new risk signal since …".
    pub fn aged(&self, (zh, en): (&str, &str)) -> (String, String) {
        let (m, end) = (self.stable_months, self.episode.end);
        (
            format!("{zh}已超过{m}个月，{end}以来无新的风险因素"),
            format!(
                "the {en} is now more than {m} months old, with no new risk signal since {end}"
            ),
        )
    }

    /// For a finding about income: "income back at or above the line since …" when it came
    /// back (evidence of recovery), else [`Lapse::aged`].
    pub fn income_back(&self, name: (&str, &str)) -> (String, String) {
        match self.episode.income_back_on {
            Some(on) => {
                let line = self.line;
                (
                    format!("扣除后人均月收入自{on}起回到{line}元以上，已稳定{}个月以上", self.stable_months),
                    format!(
                        "per-capita income after deductions back at or above {line} yuan a month since {on}, stable for more than {} months",
                        self.stable_months
                    ),
                )
            }
            None => self.aged(name),
        }
    }

    /// For a finding about the home: [`Lapse::aged`], and the day the household moved, if it did.
    pub fn home(&self, name: (&str, &str), state: &HouseholdState) -> (String, String) {
        let (mut zh, mut en) = self.aged(name);
        if let Some(moved) = state.moved_since(self.episode.start) {
            zh.push_str(&format!("；已于{moved}搬迁"));
            en.push_str(&format!("; the household moved on {moved}"));
        }
        (zh, en)
    }
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

impl<'s, 'a> Ctx<'s, 'a> {
    /// Whether a signal that happened `on` still counts (its risk is not cleared).
    pub fn counts(&self, on: NaiveDate) -> bool {
        on <= self.state.as_of_date() && self.clearance.counts(on)
    }

    /// The records that still count, in order.
    pub fn recent<'c, 'r: 'c, T: Evidence>(
        &'c self,
        records: &'r [T],
    ) -> impl Iterator<Item = &'r T> + 'c {
        records.iter().filter(|r| self.counts(r.on()))
    }

    /// A living member able to work.
    pub fn able(&self, m: &crate::state::MemberState) -> bool {
        self.general.able(m)
    }

    /// The same context with another clearing position (to look back at a previous episode).
    pub fn with_clearance(&self, clearance: Clearance) -> Ctx<'s, 'a> {
        Ctx {
            general: self.general,
            deductions: self.deductions,
            review: self.review,
            household: self.household,
            state: self.state,
            standard: self.standard,
            pupils: self.pupils,
            clearance,
        }
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

/// The reasons for several records each about a member, worded by `each` with the member's
/// relation (Chinese, English); `None` when there are no records.
pub(crate) fn member_reasons<T>(
    state: &HouseholdState,
    records: &[&T],
    member_id: impl Fn(&T) -> &str,
    each: impl Fn(&T, &str, &str) -> (String, String),
) -> Option<(String, String)> {
    if records.is_empty() {
        return None;
    }
    Some(reasons(records, |r| {
        let rel = relation_of(state, member_id(r));
        each(r, relation_zh(rel), relation_en(rel))
    }))
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
