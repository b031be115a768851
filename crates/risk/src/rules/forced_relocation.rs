//! `forced_relocation`: the household was forced to relocate.

use doudi_model::event::RelocationReason;
use doudi_model::{Contribution, Household};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::evidence::event_ids;
use crate::policy::Standard;
use crate::rule::{Ctx, Rule};
use crate::state::HouseholdState;

pub const ID: &str = "forced_relocation";

fn names(r: RelocationReason) -> (&'static str, &'static str) {
    match r {
        RelocationReason::Disaster => ("灾害", "disaster"),
        RelocationReason::Demolition => ("拆迁", "demolition"),
        RelocationReason::DangerousHouse => ("危房", "dangerous house"),
        RelocationReason::Ecological => ("生态搬迁", "ecological resettlement"),
        RelocationReason::Other => ("其他", "other reason"),
    }
}

/// `[rules.forced_relocation]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForcedRelocation {
    pub points: i64,
}

impl Rule for ForcedRelocation {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("被迫搬迁", "forced relocation");

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.points("points", self.points)
    }

    fn signals(&self, _: &Household, state: &HouseholdState, _: &Standard, out: &mut Signals) {
        out.days(state.relocations.iter().filter(|x| x.forced));
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        let forced: Vec<_> = cx.recent(&state.relocations).filter(|r| r.forced).collect();
        let last = forced.last()?;
        let (zh, en) = names(last.reason);
        Some(Contribution::new(
            ID,
            self.points,
            format!("家庭于{}被迫搬迁（原因：{zh}）", last.relocated_on),
            format!(
                "The household was forced to relocate on {} ({en})",
                last.relocated_on
            ),
            event_ids(&forced),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::*;

    #[test]
    fn forced_relocation_adds_30_and_a_voluntary_move_nothing() {
        let h = family_dibao_rural();
        let eval = |forced: bool| {
            let facts = only("M1", "2026-05-01", relocated(forced, "2026-05-01"));
            eval_builtin(ID, &h, &facts, "2026-05-02")
        };
        assert_eq!(eval(false), None);
        let c = eval(true).unwrap();
        assert_eq!(c.points, 30);
        assert_eq!(c.reason_zh, "家庭于2026-05-01被迫搬迁（原因：拆迁）");
    }
}
