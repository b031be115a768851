//! A household's state, derived purely from its register record and its timeline of facts.
//!
//! The state holds no names and no ID numbers: members appear by their register `member_id`,
//! relation and age only. It holds no rule parameters either: windows and thresholds are applied
//! by the rules, so one state can be assessed under any rule set.

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, FixedOffset, Months, NaiveDate};
use doudi_model::event::{
    CareSetting, DisasterKind, HouseGrade, PropertyAction, PropertyType, RelocationReason,
};
use doudi_model::{Fact, Household, IdNumber, Money, Payload, RegionCode, Relation, WorkCapacity};
use serde::Serialize;

/// One member as of the state's date (or as of their death).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberState<'a> {
    pub member_id: &'a str,
    pub relation: Relation,
    /// Whole years at `as_of` (for a deceased member: at death).
    pub age: u32,
    pub alive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub died_on: Option<NaiveDate>,
    pub work_capacity: WorkCapacity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disability_grade: Option<u8>,
    pub employed: bool,
    /// The part of the monthly income known to be a wage.
    pub monthly_wage: Money,
    /// All monthly income of the member (wage and other).
    pub monthly_income: Money,
    /// False for a child born after registration.
    pub registered: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeathRecord<'a> {
    pub event_id: &'a str,
    pub member_id: &'a str,
    /// `None` when the member is not on the register.
    pub relation: Option<Relation>,
    pub died_on: NaiveDate,
    pub age: Option<u32>,
    /// Just before the death.
    pub employed: bool,
    pub monthly_income: Money,
    pub work_capacity: Option<WorkCapacity>,
    /// Had the highest income in the household (and some income).
    pub main_earner: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SettlementRecord<'a> {
    pub event_id: &'a str,
    pub member_id: &'a str,
    pub setting: CareSetting,
    pub total_cost: Money,
    pub out_of_pocket: Money,
    pub settled_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IllnessRecord<'a> {
    pub event_id: &'a str,
    pub member_id: &'a str,
    /// ICD-10 code.
    pub diagnosis: &'a str,
    pub diagnosed_on: NaiveDate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentLossKind {
    JobLost,
    UnemploymentRegistered,
    ContributionsStopped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmploymentLoss<'a> {
    pub event_id: &'a str,
    pub member_id: &'a str,
    pub kind: EmploymentLossKind,
    pub on: NaiveDate,
    /// Monthly wage lost (job loss), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_wage_lost: Option<Money>,
    /// Months without contributions (contributions stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months_unpaid: Option<u32>,
    /// Whether any living member was still employed right after this loss.
    pub anyone_employed_after: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncomeRiseKind {
    JobStarted,
    WageUp,
    PropertyAcquired,
}

/// An event that raises income or assets. It never lowers a score: it opens a review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncomeRise<'a> {
    pub event_id: &'a str,
    pub member_id: &'a str,
    pub kind: IncomeRiseKind,
    pub on: NaiveDate,
    /// New monthly wage, or the property's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// Previous monthly wage, for a wage rise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_type: Option<PropertyType>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisabilityRecord<'a> {
    pub event_id: &'a str,
    pub member_id: &'a str,
    pub grade: u8,
    /// The grade held before this certificate, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_grade: Option<u8>,
    pub certified_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DangerousHouseRecord<'a> {
    pub event_id: &'a str,
    pub grade: HouseGrade,
    pub appraised_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisasterRecord<'a> {
    pub event_id: &'a str,
    pub disaster: DisasterKind,
    pub loss: Money,
    pub uninhabitable: bool,
    pub occurred_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RelocationRecord<'a> {
    pub event_id: &'a str,
    pub reason: RelocationReason,
    pub forced: bool,
    pub relocated_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BirthRecord<'a> {
    pub event_id: &'a str,
    /// The parent the record was about.
    pub parent_member_id: &'a str,
    pub born_on: NaiveDate,
    /// Whether the child was added to the household (false if already on the register).
    pub added_member: bool,
}

/// Events kept for the record that no rule of this version scores (marriage, divorce, move, sale).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OtherEvent<'a> {
    pub event_id: &'a str,
    pub member_id: &'a str,
    pub kind: &'static str,
    pub on: NaiveDate,
}

/// The household's income right after a fact that changed income, household size or the
/// medical spending deducted from income. Kept as its parts so that any rule set can apply its
/// own deductions ([`HouseholdState::assessed_per_capita`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncomePoint<'a> {
    pub event_id: &'a str,
    pub on: NaiveDate,
    pub household_size: u32,
    /// All monthly income of the living members.
    pub monthly_income: Money,
    /// The part of it that is earned (wages).
    pub monthly_wages: Money,
    /// Out-of-pocket medical spend of the 12 months up to `on`.
    pub out_of_pocket_12m: Money,
    /// Living children born since registration (counted in `household_size`).
    pub newborns: u32,
    /// Monthly income per person, before any deduction.
    pub per_capita: Money,
}

/// The deductions a rule set applies before comparing income with a line
/// (`[deductions]` in the rules file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncomeParts {
    pub household_size: u32,
    /// Living children born since registration (included in `household_size`).
    pub newborns: u32,
    pub monthly_income: Money,
    pub monthly_wages: Money,
    pub out_of_pocket_12m: Money,
}

/// The household as its timeline says it is at `as_of`.
///
/// It borrows its identifiers from the household and the facts it was derived from, so deriving
/// it allocates no strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HouseholdState<'a> {
    pub household_id: &'a str,
    pub as_of: DateTime<FixedOffset>,
    /// The local date of `as_of`.
    #[serde(skip)]
    pub as_of_day: NaiveDate,
    /// Where the household lives now (a move changes it).
    pub region_code: &'a RegionCode,
    /// Every member: registered ones, then children born since, each with `alive`.
    pub members: Vec<MemberState<'a>>,
    pub size_at_registration: u32,
    pub monthly_income_at_registration: Money,
    pub wages_at_registration: Money,
    pub per_capita_at_registration: Money,
    pub monthly_income_now: Money,
    pub wages_now: Money,
    pub per_capita_now: Money,
    /// Income after each change, oldest first.
    pub income_history: Vec<IncomePoint<'a>>,
    /// Out-of-pocket medical spend of bills settled in the 12 months up to `as_of`.
    pub out_of_pocket_12m: Money,
    pub deaths: Vec<DeathRecord<'a>>,
    pub settlements: Vec<SettlementRecord<'a>>,
    pub serious_illnesses: Vec<IllnessRecord<'a>>,
    pub employment_losses: Vec<EmploymentLoss<'a>>,
    pub income_rises: Vec<IncomeRise<'a>>,
    pub disabilities: Vec<DisabilityRecord<'a>>,
    pub dangerous_house: Vec<DangerousHouseRecord<'a>>,
    pub disasters: Vec<DisasterRecord<'a>>,
    pub relocations: Vec<RelocationRecord<'a>>,
    pub births: Vec<BirthRecord<'a>>,
    pub other_events: Vec<OtherEvent<'a>>,
    /// How many distinct facts were applied.
    pub facts_applied: u32,
    /// The last fact applied (in timeline order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<&'a str>,
}

impl<'a> HouseholdState<'a> {
    pub fn alive_members(&self) -> impl Iterator<Item = &MemberState<'a>> {
        self.members.iter().filter(|m| m.alive)
    }

    pub fn size_now(&self) -> u32 {
        self.alive_members().count() as u32
    }

    pub fn member(&self, member_id: &str) -> Option<&MemberState<'a>> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    /// Whether anyone living is employed.
    pub fn anyone_employed(&self) -> bool {
        self.alive_members().any(|m| m.employed)
    }

    pub fn as_of_date(&self) -> NaiveDate {
        self.as_of_day
    }

    /// Bills settled in the 12 months up to `as_of` (after the same day a year earlier).
    pub fn settlements_12m(&self) -> impl Iterator<Item = &SettlementRecord<'a>> {
        let start = year_before(self.as_of_date());
        self.settlements
            .iter()
            .filter(move |s| s.settled_on > start)
    }

    /// Income parts at registration (no medical spend is known then).
    pub fn parts_at_registration(&self) -> IncomeParts {
        IncomeParts {
            household_size: self.size_at_registration,
            newborns: 0,
            monthly_income: self.monthly_income_at_registration,
            monthly_wages: self.wages_at_registration,
            out_of_pocket_12m: Money::ZERO,
        }
    }

    /// Income parts at `as_of`.
    pub fn parts_now(&self) -> IncomeParts {
        IncomeParts {
            household_size: self.size_now(),
            newborns: self.alive_members().filter(|m| !m.registered).count() as u32,
            monthly_income: self.monthly_income_now,
            monthly_wages: self.wages_now,
            out_of_pocket_12m: self.out_of_pocket_12m,
        }
    }

    /// The first day on or after `d` (up to `as_of`) the household moved, if it has.
    pub fn moved_since(&self, d: NaiveDate) -> Option<NaiveDate> {
        self.relocations
            .iter()
            .filter(|r| r.relocated_on >= d && r.relocated_on <= self.as_of_day)
            .map(|r| r.relocated_on)
            .min()
    }

    /// Since when the home has been unsafe — appraised dangerous (危房 C/D) or made uninhabitable
    /// by a disaster — with no move since; `None` when it is not (or no longer) unsafe.
    pub fn unsafe_home_since(&self) -> Option<NaiveDate> {
        let as_of = self.as_of_day;
        let dangerous = self.dangerous_house.iter().map(|x| x.appraised_on);
        let ruined = self
            .disasters
            .iter()
            .filter(|x| x.uninhabitable)
            .map(|x| x.occurred_on);
        dangerous
            .chain(ruined)
            .filter(|d| *d <= as_of && self.moved_since(*d).is_none())
            .min()
    }

    /// Living members of school age at `as_of` (`min ≤ age < below`), for the schooling deduction.
    pub fn pupils(&self, min_age: i64, below_age: i64) -> i64 {
        self.alive_members()
            .filter(|m| (min_age..below_age).contains(&i64::from(m.age)))
            .count() as i64
    }
}

impl IncomePoint<'_> {
    pub fn parts(&self) -> IncomeParts {
        IncomeParts {
            household_size: self.household_size,
            newborns: self.newborns,
            monthly_income: self.monthly_income,
            monthly_wages: self.monthly_wages,
            out_of_pocket_12m: self.out_of_pocket_12m,
        }
    }
}

/// The same day a year earlier (29 February → 28 February).
fn year_before(d: NaiveDate) -> NaiveDate {
    d.with_year(d.year() - 1)
        .or_else(|| NaiveDate::from_ymd_opt(d.year() - 1, d.month(), 28))
        .unwrap_or(NaiveDate::MIN)
}

/// Working copy of a member with the birth date needed for ages (never leaves this module).
struct Working<'a> {
    m: MemberState<'a>,
    birth_date: NaiveDate,
    id_number: Option<IdNumber>,
}

/// Whole years from `birth` to `on` (0 if `on` is earlier).
fn age_on(birth: NaiveDate, on: NaiveDate) -> u32 {
    let years =
        on.year() - birth.year() - i32::from((on.month(), on.day()) < (birth.month(), birth.day()));
    u32::try_from(years).unwrap_or(0)
}

/// (income, wages, living members).
fn totals(ws: &[Working]) -> (Money, Money, u32) {
    let mut income = Money::ZERO;
    let mut wages = Money::ZERO;
    let mut n = 0;
    for w in ws.iter().filter(|w| w.m.alive) {
        income += w.m.monthly_income;
        wages += w.m.monthly_wage;
        n += 1;
    }
    (income, wages, n)
}

fn anyone_employed(ws: &[Working]) -> bool {
    ws.iter().any(|w| w.m.alive && w.m.employed)
}

/// Order of the timeline: occurred_at, then event_id, then the payload (so that even two
/// conflicting copies of one event id apply in the same order whatever order they arrived in).
fn timeline_order(a: &Fact, b: &Fact) -> Ordering {
    a.occurred_at
        .cmp(&b.occurred_at)
        .then_with(|| a.event_id.cmp(&b.event_id))
        .then_with(|| {
            let ja = serde_json::to_string(&a.payload).unwrap_or_default();
            let jb = serde_json::to_string(&b.payload).unwrap_or_default();
            ja.cmp(&jb)
        })
}

/// Derive the state of `household` from its facts up to `as_of`.
///
/// Pure and deterministic: facts are ordered by `(occurred_at, event_id)` internally, so arrival
/// order does not matter; a repeated `event_id` is applied once; facts about another household or
/// after `as_of` are ignored.
pub fn derive_state<'a>(
    household: &'a Household,
    facts: &'a [Fact],
    as_of: DateTime<FixedOffset>,
) -> HouseholdState<'a> {
    let as_of_date = as_of.date_naive();
    let mut ws: Vec<Working<'a>> = household
        .members
        .iter()
        .map(|m| Working {
            birth_date: m.birth_date,
            id_number: Some(m.id_number),
            m: MemberState {
                member_id: m.member_id.as_str(),
                relation: m.relation,
                age: 0,
                alive: true,
                died_on: None,
                work_capacity: m.work_capacity,
                disability_grade: m.disability_grade,
                employed: m.employed,
                monthly_wage: if m.employed {
                    m.monthly_income
                } else {
                    Money::ZERO
                },
                monthly_income: m.monthly_income,
                registered: true,
            },
        })
        .collect();

    let (income_at_registration, wages_at_registration, size_at_registration) = totals(&ws);
    let per_capita_at_registration = income_at_registration.per(i64::from(size_at_registration));

    let mut timeline: Vec<&'a Fact> = facts
        .iter()
        .filter(|f| f.household_id == household.household_id && f.occurred_at <= as_of)
        .collect();
    // Facts usually arrive in order: check before sorting.
    if !timeline
        .windows(2)
        .all(|w| timeline_order(w[0], w[1]) != Ordering::Greater)
    {
        timeline.sort_by(|a, b| timeline_order(a, b));
    }
    timeline.dedup_by(|b, a| a.event_id == b.event_id);

    let mut st = HouseholdState {
        household_id: household.household_id.as_str(),
        as_of,
        as_of_day: as_of_date,
        region_code: &household.region_code,
        members: Vec::new(),
        size_at_registration,
        monthly_income_at_registration: income_at_registration,
        wages_at_registration,
        per_capita_at_registration,
        monthly_income_now: income_at_registration,
        wages_now: wages_at_registration,
        per_capita_now: per_capita_at_registration,
        income_history: Vec::new(),
        out_of_pocket_12m: Money::ZERO,
        deaths: Vec::new(),
        settlements: Vec::new(),
        serious_illnesses: Vec::new(),
        employment_losses: Vec::new(),
        income_rises: Vec::new(),
        disabilities: Vec::new(),
        dangerous_house: Vec::new(),
        disasters: Vec::new(),
        relocations: Vec::new(),
        births: Vec::new(),
        other_events: Vec::new(),
        facts_applied: 0,
        last_event_id: None,
    };

    let mut before = (
        income_at_registration,
        wages_at_registration,
        size_at_registration,
    );
    for f in timeline {
        let bills = st.settlements.len();
        let on = apply(&mut st, &mut ws, f);
        st.facts_applied = st.facts_applied.saturating_add(1);
        st.last_event_id = Some(f.event_id.as_str());
        let after = totals(&ws);
        let new_bill = st.settlements.len() > bills
            && st
                .settlements
                .last()
                .is_some_and(|s| s.out_of_pocket > Money::ZERO);
        if after != before || new_bill {
            let since = year_before(on);
            let oop: Money = st
                .settlements
                .iter()
                .filter(|s| s.settled_on > since && s.settled_on <= on)
                .map(|s| s.out_of_pocket)
                .sum();
            st.income_history.push(IncomePoint {
                event_id: f.event_id.as_str(),
                on,
                household_size: after.2,
                monthly_income: after.0,
                monthly_wages: after.1,
                out_of_pocket_12m: oop,
                newborns: ws.iter().filter(|w| w.m.alive && !w.m.registered).count() as u32,
                per_capita: after.0.per(i64::from(after.2)),
            });
        }
        before = after;
    }

    for w in &mut ws {
        w.m.age = age_on(w.birth_date, w.m.died_on.unwrap_or(as_of_date));
    }
    let (income, wages, n) = totals(&ws);
    st.monthly_income_now = income;
    st.wages_now = wages;
    st.per_capita_now = income.per(i64::from(n));
    if !st.settlements.is_empty() {
        st.out_of_pocket_12m = st.settlements_12m().map(|s| s.out_of_pocket).sum();
    }
    st.members = ws.into_iter().map(|w| w.m).collect();
    st
}
/// Apply one fact; returns the date it happened (from its data).
fn apply<'a>(st: &mut HouseholdState<'a>, ws: &mut Vec<Working<'a>>, f: &'a Fact) -> NaiveDate {
    let idx = ws.iter().position(|w| w.m.member_id == f.member_id);
    let event_id = f.event_id.as_str();
    let member_id = f.member_id.as_str();
    match &f.payload {
        Payload::Settlement(s) => {
            st.settlements.push(SettlementRecord {
                event_id,
                member_id,
                setting: s.setting,
                total_cost: s.total_cost_fen,
                out_of_pocket: s.out_of_pocket_fen,
                settled_on: s.settled_on,
            });
            s.settled_on
        }
        Payload::SeriousIllnessDiagnosed(d) => {
            st.serious_illnesses.push(IllnessRecord {
                event_id,
                member_id,
                diagnosis: d.diagnosis.as_str(),
                diagnosed_on: d.diagnosed_on,
            });
            d.diagnosed_on
        }
        Payload::JobLost(j) => {
            let mut lost = j.monthly_wage_fen;
            if let Some(i) = idx {
                let m = &mut ws[i].m;
                let cut = if m.monthly_wage > Money::ZERO {
                    m.monthly_wage
                } else {
                    j.monthly_wage_fen
                        .unwrap_or(Money::ZERO)
                        .min(m.monthly_income)
                };
                m.monthly_income = (m.monthly_income - cut).max(Money::ZERO);
                m.monthly_wage = Money::ZERO;
                m.employed = false;
                if lost.is_none() && cut > Money::ZERO {
                    lost = Some(cut);
                }
            }
            st.employment_losses.push(EmploymentLoss {
                event_id,
                member_id,
                kind: EmploymentLossKind::JobLost,
                on: j.last_day,
                monthly_wage_lost: lost,
                months_unpaid: None,
                anyone_employed_after: anyone_employed(ws),
            });
            j.last_day
        }
        Payload::UnemploymentRegistered(u) => {
            let mut lost = None;
            if let Some(i) = idx {
                let m = &mut ws[i].m;
                if m.monthly_wage > Money::ZERO {
                    lost = Some(m.monthly_wage);
                }
                m.monthly_income = (m.monthly_income - m.monthly_wage).max(Money::ZERO);
                m.monthly_wage = Money::ZERO;
                m.employed = false;
            }
            st.employment_losses.push(EmploymentLoss {
                event_id,
                member_id,
                kind: EmploymentLossKind::UnemploymentRegistered,
                on: u.registered_on,
                monthly_wage_lost: lost,
                months_unpaid: None,
                anyone_employed_after: anyone_employed(ws),
            });
            u.registered_on
        }
        Payload::ContributionsStopped(c) => {
            // The month after the last one paid, or the fact's own date if the month is unreadable.
            let on = NaiveDate::parse_from_str(&format!("{}-01", c.last_paid_month), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.checked_add_months(Months::new(1)))
                .unwrap_or(f.occurred_at.date_naive());
            st.employment_losses.push(EmploymentLoss {
                event_id,
                member_id,
                kind: EmploymentLossKind::ContributionsStopped,
                on,
                monthly_wage_lost: None,
                months_unpaid: Some(c.months_unpaid),
                anyone_employed_after: anyone_employed(ws),
            });
            on
        }
        Payload::JobStarted(j) => {
            let mut previous = None;
            if let Some(i) = idx {
                let m = &mut ws[i].m;
                previous = Some(m.monthly_wage);
                m.monthly_income = (m.monthly_income - m.monthly_wage) + j.monthly_wage_fen;
                m.monthly_wage = j.monthly_wage_fen;
                m.employed = true;
            }
            st.income_rises.push(IncomeRise {
                event_id,
                member_id,
                kind: IncomeRiseKind::JobStarted,
                on: j.started_on,
                amount: Some(j.monthly_wage_fen),
                previous,
                property_type: None,
            });
            j.started_on
        }
        Payload::WageChanged(w) => {
            let mut previous = w.previous_wage_fen;
            if let Some(i) = idx {
                let m = &mut ws[i].m;
                let prev = previous.unwrap_or(m.monthly_wage);
                previous = Some(prev);
                m.monthly_income = (m.monthly_income - m.monthly_wage) + w.monthly_wage_fen;
                m.monthly_wage = w.monthly_wage_fen;
                if w.monthly_wage_fen > Money::ZERO {
                    m.employed = true;
                }
            }
            if previous.is_none_or(|p| w.monthly_wage_fen > p) {
                st.income_rises.push(IncomeRise {
                    event_id,
                    member_id,
                    kind: IncomeRiseKind::WageUp,
                    on: w.effective_on,
                    amount: Some(w.monthly_wage_fen),
                    previous,
                    property_type: None,
                });
            } else {
                st.other_events.push(OtherEvent {
                    event_id,
                    member_id,
                    kind: "wage_cut",
                    on: w.effective_on,
                });
            }
            w.effective_on
        }
        Payload::PropertyRegistered(p) => {
            match p.action {
                PropertyAction::Acquired => st.income_rises.push(IncomeRise {
                    event_id,
                    member_id,
                    kind: IncomeRiseKind::PropertyAcquired,
                    on: p.registered_on,
                    amount: p.value_fen,
                    previous: None,
                    property_type: Some(p.property_type),
                }),
                PropertyAction::Sold => st.other_events.push(OtherEvent {
                    event_id,
                    member_id,
                    kind: "property_sold",
                    on: p.registered_on,
                }),
            }
            p.registered_on
        }
        Payload::DangerousHouseAppraised(d) => {
            st.dangerous_house.push(DangerousHouseRecord {
                event_id,
                grade: d.grade,
                appraised_on: d.appraised_on,
            });
            d.appraised_on
        }
        Payload::DisasterDamage(d) => {
            st.disasters.push(DisasterRecord {
                event_id,
                disaster: d.disaster,
                loss: d.loss_fen,
                uninhabitable: d.uninhabitable,
                occurred_on: d.occurred_on,
            });
            d.occurred_on
        }
        Payload::Relocated(r) => {
            st.relocations.push(RelocationRecord {
                event_id,
                reason: r.reason,
                forced: r.forced,
                relocated_on: r.relocated_on,
            });
            if let Some(to) = &r.to_region_code {
                if to.as_str().len() == 12 {
                    st.region_code = to;
                }
            }
            r.relocated_on
        }
        Payload::Birth(b) => {
            let child_id = b
                .child_id_number
                .as_deref()
                .and_then(|s| IdNumber::parse(s).ok());
            let already = child_id.is_some_and(|c| ws.iter().any(|w| w.id_number == Some(c)));
            let relation = match idx.map(|i| ws[i].m.relation) {
                Some(Relation::Head | Relation::Spouse) => Relation::Child,
                Some(Relation::Child) => Relation::Grandchild,
                _ => Relation::Other,
            };
            let add = !already;
            if add {
                ws.push(Working {
                    birth_date: b.born_on,
                    id_number: child_id,
                    m: MemberState {
                        // a child not yet on the register is known by the birth record's id
                        member_id: event_id,
                        relation,
                        age: 0,
                        alive: true,
                        died_on: None,
                        work_capacity: WorkCapacity::None,
                        disability_grade: None,
                        employed: false,
                        monthly_wage: Money::ZERO,
                        monthly_income: Money::ZERO,
                        registered: false,
                    },
                });
            }
            st.births.push(BirthRecord {
                event_id,
                parent_member_id: member_id,
                born_on: b.born_on,
                added_member: add,
            });
            b.born_on
        }
        Payload::Death(d) => {
            match idx {
                Some(i) if ws[i].m.alive => {
                    let top = ws
                        .iter()
                        .filter(|w| w.m.alive)
                        .map(|w| w.m.monthly_income)
                        .max()
                        .unwrap_or(Money::ZERO);
                    let w = &mut ws[i];
                    st.deaths.push(DeathRecord {
                        event_id,
                        member_id,
                        relation: Some(w.m.relation),
                        died_on: d.died_on,
                        age: Some(age_on(w.birth_date, d.died_on)),
                        employed: w.m.employed,
                        monthly_income: w.m.monthly_income,
                        work_capacity: Some(w.m.work_capacity),
                        main_earner: w.m.monthly_income > Money::ZERO && w.m.monthly_income >= top,
                    });
                    w.m.alive = false;
                    w.m.died_on = Some(d.died_on);
                }
                // Already dead: a second notice of the same death (another department).
                Some(_) => st.other_events.push(OtherEvent {
                    event_id,
                    member_id,
                    kind: "death_repeated",
                    on: d.died_on,
                }),
                None => st.deaths.push(DeathRecord {
                    event_id,
                    member_id,
                    relation: None,
                    died_on: d.died_on,
                    age: None,
                    employed: false,
                    monthly_income: Money::ZERO,
                    work_capacity: None,
                    main_earner: false,
                }),
            }
            d.died_on
        }
        Payload::DisabilityCertified(d) => {
            let mut previous = None;
            if let Some(i) = idx {
                let m = &mut ws[i].m;
                previous = m.disability_grade;
                m.disability_grade = Some(d.grade);
                if d.grade <= 2 {
                    m.work_capacity = WorkCapacity::None;
                } else if d.grade == 3 && m.work_capacity == WorkCapacity::Full {
                    m.work_capacity = WorkCapacity::Partial;
                }
            }
            st.disabilities.push(DisabilityRecord {
                event_id,
                member_id,
                grade: d.grade,
                previous_grade: previous,
                certified_on: d.certified_on,
            });
            d.certified_on
        }
        Payload::Marriage(m) => {
            st.other_events.push(OtherEvent {
                event_id,
                member_id,
                kind: "marriage",
                on: m.married_on,
            });
            m.married_on
        }
        Payload::Divorce(d) => {
            st.other_events.push(OtherEvent {
                event_id,
                member_id,
                kind: "divorce",
                on: d.divorced_on,
            });
            d.divorced_on
        }
        Payload::HouseholdMoved(h) => {
            if h.to_region_code.as_str().len() == 12 {
                st.region_code = &h.to_region_code;
            }
            st.other_events.push(OtherEvent {
                event_id,
                member_id,
                kind: "household_moved",
                on: h.moved_on,
            });
            h.moved_on
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use doudi_model::event::HouseGrade;

    #[test]
    fn arrival_order_does_not_change_state() {
        let h = family_dibao_rural();
        let facts = vec![
            fact("E3", "M1", "2026-03-02", death("2026-03-02")),
            fact(
                "E1",
                "M2",
                "2026-01-10",
                job_lost("2026-01-09", Some(250_000)),
            ),
            fact("E2", "M2", "2026-02-01", settlement(120_000, "2026-02-01")),
            fact("E4", "M3", "2026-03-05", disability(1, "2026-03-05")),
            fact("E5", "M2", "2026-03-20", job_started("2026-03-20", 300_000)),
        ];
        let as_of = at("2026-04-01");
        let forward = derive_state(&h, &facts, as_of);
        let mut rev = facts.clone();
        rev.reverse();
        let mut shuffled = facts.clone();
        shuffled.swap(0, 3);
        shuffled.swap(1, 4);
        assert_eq!(derive_state(&h, &rev, as_of), forward);
        assert_eq!(derive_state(&h, &shuffled, as_of), forward);
        // duplicates (a replayed event) are applied once
        let mut dup = facts.clone();
        dup.extend(facts.iter().cloned());
        assert_eq!(derive_state(&h, &dup, as_of), forward);
        assert_eq!(forward.facts_applied, 5);
    }

    #[test]
    fn only_facts_up_to_as_of_count() {
        let h = family_dibao_rural();
        let facts = only("M1", "2026-03-02", death("2026-03-02")).to_vec();
        let before = derive_state(&h, &facts, at("2026-03-01"));
        assert!(before.deaths.is_empty());
        assert_eq!(before.size_now(), 3);
        let after = derive_state(&h, &facts, at("2026-03-02"));
        assert_eq!(after.deaths.len(), 1);
        assert_eq!(after.size_now(), 2);
    }

    #[test]
    fn state_tracks_income_size_and_members() {
        let h = family_dibao_rural();
        let facts = timeline([
            ("M1", "2026-03-02", death("2026-03-02")),
            ("M2", "2026-03-10", birth("2026-03-10")),
            ("M3", "2026-03-12", disability(2, "2026-03-12")),
            ("M2", "2026-03-15", settlement(50_000, "2026-03-15")),
            ("M2", "2025-01-15", settlement(70_000, "2025-01-15")),
        ]);
        let s = derive_state(&h, &facts, at("2026-04-01"));
        // M1 (head, earning 2,000) died: income and size drop, then a birth adds a member
        let d = &s.deaths[0];
        assert_eq!(d.relation, Some(Relation::Head));
        assert!(d.main_earner);
        assert_eq!(s.size_at_registration, 3);
        assert_eq!(s.size_now(), 3);
        assert_eq!(s.monthly_income_at_registration, Money::from_yuan(2500));
        assert_eq!(s.monthly_income_now, Money::from_yuan(500));
        assert_eq!(s.per_capita_now, Money::from_fen(16_666));
        // the death and the birth change income per head; each bill changes what is deducted
        assert_eq!(s.income_history.len(), 4);
        assert_eq!(s.income_history[0].out_of_pocket_12m, Money::from_yuan(700));
        assert_eq!(s.income_history[3].out_of_pocket_12m, Money::from_yuan(500));
        assert_eq!(s.income_history[3].newborns, 1);
        assert_eq!(s.parts_now().newborns, 1);
        assert!(s.members.iter().any(|m| !m.registered && m.age == 0));
        let m3 = s.member("M3").unwrap();
        assert_eq!(m3.work_capacity, WorkCapacity::None);
        assert_eq!(m3.disability_grade, Some(2));
        // only the bill of the last 12 months counts
        assert_eq!(s.out_of_pocket_12m, Money::from_yuan(500));
        assert_eq!(s.settlements.len(), 2);
        // no personal data in the serialised state
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("王"), "{json}");
        assert!(!json.contains("3415021980"), "{json}");
    }

    #[test]
    fn job_loss_then_new_job_restores_income() {
        let h = family_dibao_rural();
        let facts = timeline([
            ("M1", "2026-01-10", job_lost("2026-01-09", None)),
            ("M1", "2026-02-10", job_started("2026-02-10", 260_000)),
        ]);
        let s = derive_state(&h, &facts, at("2026-03-01"));
        assert_eq!(s.monthly_income_now, Money::from_yuan(3100));
        assert_eq!(s.income_history[0].monthly_income, Money::from_yuan(500));
        assert_eq!(
            s.employment_losses[0].monthly_wage_lost,
            Some(Money::from_yuan(2000))
        );
        assert_eq!(s.income_rises.len(), 1);
    }

    #[test]
    fn home_stays_unsafe_until_the_household_moves() {
        let h = family_dibao_rural();
        let facts = timeline([
            ("M1", "2026-03-01", dangerous(HouseGrade::D, "2026-03-01")),
            ("M1", "2026-05-01", relocated(false, "2026-05-01")),
        ]);
        let s = derive_state(&h, &facts, at("2026-04-01"));
        assert_eq!(s.unsafe_home_since(), Some(date("2026-03-01")));
        let s = derive_state(&h, &facts, at("2026-05-02"));
        assert_eq!(s.unsafe_home_since(), None);
    }

    #[test]
    fn facts_of_other_households_are_ignored() {
        let h = family_dibao_rural();
        let mut f = fact("E1", "M1", "2026-03-02", death("2026-03-02"));
        f.household_id = "OTHER".into();
        let facts = [f];
        let s = derive_state(&h, &facts, at("2026-04-01"));
        assert!(s.deaths.is_empty());
        assert_eq!(s.facts_applied, 0);
    }
}
