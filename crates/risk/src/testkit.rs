//! Small builders of households and facts for the unit tests.
#![allow(dead_code)]

use chrono::{DateTime, FixedOffset, NaiveDate};
use doudi_model::event::*;
use doudi_model::id_number::check_char;
use doudi_model::{
    Area, Assessment, Category, Fact, Household, IdNumber, Member, Money, Payload, RegionCode,
    Relation, Sex, Source, WorkCapacity,
};

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// 09:00 Beijing time on that day.
pub fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(&format!("{s}T09:00:00+08:00")).expect("test time")
}

fn id_for(birth: &str, seq: u32, sex: Sex) -> IdNumber {
    let seq = seq * 2 + if sex == Sex::Male { 1 } else { 0 };
    let first17 = format!("441521{}{:03}", birth.replace('-', ""), seq % 1000);
    let c = check_char(first17.as_bytes()).expect("17 digits") as char;
    IdNumber::parse(&format!("{first17}{c}")).expect("valid test id")
}

/// A member: `income_yuan` a month; `employed` marks it a wage.
pub fn member(
    id: &str,
    relation: Relation,
    sex: Sex,
    birth: &str,
    capacity: WorkCapacity,
    employed: bool,
    income_yuan: i64,
) -> Member {
    let seq: u32 = id.bytes().map(u32::from).sum();
    Member {
        member_id: id.to_string(),
        id_number: id_for(birth, seq, sex),
        name: format!("王{id}"),
        sex,
        birth_date: date(birth),
        relation,
        work_capacity: capacity,
        disability_grade: None,
        employed,
        monthly_income: Money::from_yuan(income_yuan),
    }
}

pub fn household(category: Category, area: Area, members: Vec<Member>) -> Household {
    Household {
        household_id: "H1".into(),
        region_code: RegionCode::parse("441521001001").expect("region"),
        address: "海丰县海城镇一村12号".into(),
        category,
        area,
        monthly_benefit: Money::ZERO,
        enrolled_on: date("2025-06-01"),
        members,
    }
}

/// Head (earning 2,000 a month), spouse (farming, 500), a child of 14. Rural 低保.
pub fn family(category: Category) -> Household {
    household(
        category,
        Area::Rural,
        vec![
            member(
                "M1",
                Relation::Head,
                Sex::Male,
                "1980-05-06",
                WorkCapacity::Full,
                true,
                2000,
            ),
            member(
                "M2",
                Relation::Spouse,
                Sex::Female,
                "1982-07-08",
                WorkCapacity::Full,
                false,
                500,
            ),
            member(
                "M3",
                Relation::Child,
                Sex::Female,
                "2012-01-02",
                WorkCapacity::None,
                false,
                0,
            ),
        ],
    )
}

pub fn family_dibao_rural() -> Household {
    family(Category::Dibao)
}

/// One woman of 78, no work capacity, no income, living alone.
pub fn single_elderly(category: Category) -> Household {
    household(
        category,
        Area::Rural,
        vec![member(
            "M1",
            Relation::Head,
            Sex::Female,
            "1948-03-04",
            WorkCapacity::None,
            false,
            0,
        )],
    )
}

pub fn fact(event_id: &str, member_id: &str, day: &str, payload: Payload) -> Fact {
    Fact {
        event_id: event_id.into(),
        source: payload.source(),
        household_id: "H1".into(),
        member_id: member_id.into(),
        occurred_at: at(day),
        payload,
    }
}

/// `text` contains `part` (the text in the failure).
#[track_caller]
pub fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{text}");
}

/// `text` starts with `start` (the text in the failure).
#[track_caller]
pub fn assert_starts(text: &str, start: &str) {
    assert!(text.starts_with(start), "{text}");
}

/// `text` ends with `end` (the text in the failure).
#[track_caller]
pub fn assert_ends(text: &str, end: &str) {
    assert!(text.ends_with(end), "{text}");
}

/// The one fact `E1` of a test: `payload` about `member_id`, recorded on `day`.
pub fn only(member_id: &str, day: &str, payload: Payload) -> [Fact; 1] {
    [fact("E1", member_id, day, payload)]
}

/// Facts `E1`, `E2`, … in the order given: (member, day recorded, payload).
pub fn timeline<const N: usize>(facts: [(&str, &str, Payload); N]) -> Vec<Fact> {
    facts
        .into_iter()
        .enumerate()
        .map(|(i, (member_id, day, payload))| fact(&format!("E{}", i + 1), member_id, day, payload))
        .collect()
}

/// The points of each contribution of `a`, by rule, in order.
pub fn points(a: &Assessment) -> Vec<(&str, i64)> {
    a.contributions
        .iter()
        .map(|c| (c.rule_id.as_str(), c.points))
        .collect()
}

/// `a` asks for a review whose text starts with `prefix` (`[asset_check]`); the reviews asked
/// for in the failure.
#[track_caller]
pub fn assert_review(a: &Assessment, prefix: &str) {
    assert!(
        a.review_needed.iter().any(|r| r.starts_with(prefix)),
        "{:#?}",
        a.review_needed
    );
}

pub fn death(on: &str) -> Payload {
    Payload::Death(Death {
        died_on: date(on),
        cause: None,
    })
}

pub fn job_lost(on: &str, wage_fen: Option<i64>) -> Payload {
    Payload::JobLost(JobLost {
        last_day: date(on),
        monthly_wage_fen: wage_fen.map(Money::from_fen),
        employer: None,
    })
}

pub fn unemployment(on: &str) -> Payload {
    Payload::UnemploymentRegistered(UnemploymentRegistered {
        registered_on: date(on),
    })
}

pub fn contributions_stopped(last_paid_month: &str, months: u32) -> Payload {
    Payload::ContributionsStopped(ContributionsStopped {
        last_paid_month: last_paid_month.into(),
        months_unpaid: months,
    })
}

pub fn job_started(on: &str, wage_fen: i64) -> Payload {
    Payload::JobStarted(JobStarted {
        started_on: date(on),
        monthly_wage_fen: Money::from_fen(wage_fen),
        employer: None,
    })
}

pub fn wage_changed(on: &str, wage_fen: i64) -> Payload {
    Payload::WageChanged(WageChanged {
        effective_on: date(on),
        monthly_wage_fen: Money::from_fen(wage_fen),
        previous_wage_fen: None,
    })
}

pub fn property_acquired(on: &str, value_fen: i64) -> Payload {
    Payload::PropertyRegistered(PropertyRegistered {
        action: PropertyAction::Acquired,
        property_type: PropertyType::Residential,
        value_fen: Some(Money::from_fen(value_fen)),
        area_m2: Some(90),
        registered_on: date(on),
    })
}

/// An outpatient bill; the total is twice the out-of-pocket.
pub fn settlement(out_of_pocket_fen: i64, on: &str) -> Payload {
    bill(CareSetting::Outpatient, out_of_pocket_fen, on)
}

pub fn inpatient(out_of_pocket_fen: i64, on: &str) -> Payload {
    bill(CareSetting::Inpatient, out_of_pocket_fen, on)
}

fn bill(setting: CareSetting, oop: i64, on: &str) -> Payload {
    Payload::Settlement(Settlement {
        setting,
        total_cost_fen: Money::from_fen(oop * 2),
        fund_paid_fen: Money::from_fen(oop),
        out_of_pocket_fen: Money::from_fen(oop),
        diagnoses: vec![],
        admitted_on: None,
        discharged_on: None,
        settled_on: date(on),
    })
}

pub fn diagnosis(code: &str, on: &str) -> Payload {
    Payload::SeriousIllnessDiagnosed(SeriousIllnessDiagnosed {
        diagnosis: code.into(),
        description: None,
        diagnosed_on: date(on),
    })
}

pub fn disability(grade: u8, on: &str) -> Payload {
    Payload::DisabilityCertified(DisabilityCertified {
        grade,
        disability_type: DisabilityType::Physical,
        certified_on: date(on),
    })
}

pub fn dangerous(grade: HouseGrade, on: &str) -> Payload {
    Payload::DangerousHouseAppraised(DangerousHouseAppraised {
        grade,
        appraised_on: date(on),
    })
}

pub fn disaster(loss_fen: i64, uninhabitable: bool, on: &str) -> Payload {
    Payload::DisasterDamage(DisasterDamage {
        disaster: DisasterKind::Flood,
        loss_fen: Money::from_fen(loss_fen),
        uninhabitable,
        occurred_on: date(on),
    })
}

pub fn relocated(forced: bool, on: &str) -> Payload {
    Payload::Relocated(Relocated {
        reason: RelocationReason::Demolition,
        forced,
        relocated_on: date(on),
        to_region_code: None,
    })
}

pub fn birth(on: &str) -> Payload {
    Payload::Birth(Birth {
        born_on: date(on),
        child_sex: Sex::Male,
        child_name: None,
        child_id_number: None,
    })
}

/// A home made uninhabitable by a flood on 2025-12-10 (80,000 yuan of losses), the household
/// moved on 2026-01-05 (at M1).
pub fn ruined_then_moved() -> Vec<Fact> {
    timeline([
        ("M1", "2025-12-10", disaster(8_000_000, true, "2025-12-10")),
        ("M1", "2026-01-05", relocated(false, "2026-01-05")),
    ])
}

/// Source of a payload, for completeness.
pub fn source_of(p: &Payload) -> Source {
    p.source()
}

/// The contribution of the rule `id` of `rules` for `h` with its `facts`, as of 09:00 on `day`.
pub fn eval_rule(
    rules: &crate::ruleset::RuleSet,
    id: &str,
    h: &Household,
    facts: &[Fact],
    day: &str,
) -> Option<doudi_model::Contribution> {
    let state = crate::state::derive_state(h, facts, at(day));
    rules.rules.eval_one(id, &rules.context(h, &state))
}

/// [`eval_rule`] under the built-in rule set.
pub fn eval_builtin(
    id: &str,
    h: &Household,
    facts: &[Fact],
    day: &str,
) -> Option<doudi_model::Contribution> {
    eval_rule(&crate::ruleset::RuleSet::builtin(), id, h, facts, day)
}
