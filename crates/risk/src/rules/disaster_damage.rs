//! `disaster_damage`: the home was damaged by a disaster; more when it can no longer be lived in.

use doudi_model::event::DisasterKind;
use doudi_model::{Contribution, Household, Money};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::evidence::event_ids;
use crate::policy::Standard;
use crate::rule::{reasons, Ctx, Lapse, Rule, HOME_UNINHABITABLE};
use crate::state::HouseholdState;

pub const ID: &str = "disaster_damage";

fn names(k: DisasterKind) -> (&'static str, &'static str) {
    match k {
        DisasterKind::Flood => ("洪涝", "flood"),
        DisasterKind::Earthquake => ("地震", "earthquake"),
        DisasterKind::Fire => ("火灾", "fire"),
        DisasterKind::Typhoon => ("台风", "typhoon"),
        DisasterKind::Landslide => ("山体滑坡", "landslide"),
        DisasterKind::Drought => ("干旱", "drought"),
        DisasterKind::Hail => ("冰雹", "hail"),
        DisasterKind::Other => ("其他", "other disaster"),
    }
}

/// `[rules.disaster_damage]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisasterDamage {
    pub damaged: i64,
    pub uninhabitable: i64,
}

impl Rule for DisasterDamage {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("灾害", "disaster");
    const CAUSES: &'static [&'static str] = &[HOME_UNINHABITABLE];

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.all_points(&[
            ("damaged", self.damaged),
            ("uninhabitable", self.uninhabitable),
        ])
    }

    fn signals(&self, _: &Household, state: &HouseholdState, _: &Standard, out: &mut Signals) {
        // A home made uninhabitable stays a risk until the household has moved.
        for x in &state.disasters {
            let until = if x.uninhabitable {
                let moved = state.moved_since(x.occurred_on);
                moved.unwrap_or(state.as_of_date())
            } else {
                x.occurred_on
            };
            out.span(x.occurred_on, until);
        }
    }

    fn change(&self, lapse: &Lapse, state: &HouseholdState) -> (String, String) {
        lapse.home(Self::NAME, state)
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        let p = self;
        let recent: Vec<_> = cx.recent(&state.disasters).collect();
        if recent.is_empty() {
            return None;
        }
        let uninhabitable = recent.iter().any(|d| d.uninhabitable);
        // Still without a home: uninhabitable and not moved since (急难).
        let homeless = recent
            .iter()
            .any(|d| d.uninhabitable && state.moved_since(d.occurred_on).is_none());
        let total: Money = recent.iter().map(|d| d.loss).sum();
        let (mut zh, mut en) = reasons(&recent, |d| {
            let (z, e) = names(d.disaster);
            let (ruined_zh, ruined_en) = if d.uninhabitable {
                ("，住房已无法居住", "; the home can no longer be lived in")
            } else {
                ("", "")
            };
            (
                format!("{}遭受{z}灾害，损失{}元{ruined_zh}", d.occurred_on, d.loss),
                format!(
                    "Damage by {e} on {}, losses of {} yuan{ruined_en}",
                    d.occurred_on, d.loss
                ),
            )
        });
        if recent.len() > 1 {
            zh.push_str(&format!("（合计损失{total}元）"));
            en.push_str(&format!(" (total losses {total} yuan)"));
        }
        Some(
            Contribution::new(
                ID,
                if uninhabitable {
                    p.uninhabitable
                } else {
                    p.damaged
                },
                zh,
                en,
                event_ids(&recent),
            )
            .with_cause(homeless.then_some(HOME_UNINHABITABLE)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::*;

    #[test]
    fn disaster_damage_adds_30_and_60_when_the_home_is_uninhabitable() {
        let h = family_dibao_rural();
        let eval = |uninhabitable: bool| {
            let facts = only("M1", "2026-07-01", disaster(800_000, uninhabitable, "2026-07-01"));
            eval_builtin(ID, &h, &facts, "2026-07-02").unwrap()
        };
        assert_eq!(eval(false).points, 30);
        let c = eval(true);
        assert_eq!(c.points, 60);
        assert_eq!(
            c.reason_zh,
            "2026-07-01遭受洪涝灾害，损失8000.00元，住房已无法居住"
        );
    }
}
