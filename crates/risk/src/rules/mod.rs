//! The rules of this version, registered once: each is one file that owns its table of
//! parameters (`[rules.<id>]`), their validation, its risk signals and its evaluation (see
//! [`Rule`]). [`RuleParams`] (the `[rules]` table), [`RULE_IDS`] and the dispatch below are all
//! made from the one list in `registry!`: adding a rule is its file, one line there, and its table
//! in `rules/default.toml`.

use doudi_model::{Contribution, Household};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::policy::Standard;
use crate::rule::{Ctx, Lapse, Rule};
use crate::state::HouseholdState;

pub mod watch;

macro_rules! registry {
    ($($module:ident :: $rule:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Parameters of each rule, by rule id: the `[rules]` table. The fields are in the order
        /// the rules are evaluated and their contributions listed.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RuleParams {
            $(pub $module: $module::$rule,)*
        }

        /// The ids of the rules, in order, for validating the rule set's references to them.
        pub const RULE_IDS: &[&str] = &[$(<$module::$rule as Rule>::ID,)*];

        /// Everything the urgency table classes: each rule's id, then the policy causes its
        /// findings may report.
        pub fn causes() -> Vec<&'static str> {
            let mut out = RULE_IDS.to_vec();
            $(
                for c in <$module::$rule as Rule>::CAUSES {
                    if !out.contains(c) {
                        out.push(c);
                    }
                }
            )*
            out
        }

        /// What the rule `id` is about, in a few words (Chinese, English).
        pub fn rule_name(id: &str) -> Option<(&'static str, &'static str)> {
            $(
                if id == <$module::$rule as Rule>::ID {
                    return Some(<$module::$rule as Rule>::NAME);
                }
            )*
            None
        }

        impl RuleParams {
            /// What changed since the finding of rule `id` stopped counting.
            pub fn change(
                &self,
                id: &str,
                lapse: &Lapse,
                state: &HouseholdState,
            ) -> Option<(String, String)> {
                $(
                    if id == <$module::$rule as Rule>::ID {
                        return Some(self.$module.change(lapse, state));
                    }
                )*
                None
            }

            /// Each rule checks its own table, in order.
            pub fn validate(&self) -> Result<(), RuleSetError> {
                $(self.$module.validate(Section(concat!("rules.", stringify!($module))))?;)*
                Ok(())
            }

            /// Every rule's risk signals, for clearing the risk.
            pub fn signals(
                &self,
                household: &Household,
                state: &HouseholdState,
                standard: &Standard,
                out: &mut Signals,
            ) {
                $(self.$module.signals(household, state, standard, out);)*
            }

            /// The contribution of the rule `id` alone (its points may be zero), for its tests.
            #[cfg(test)]
            pub(crate) fn eval_one(&self, id: &str, cx: &Ctx) -> Option<Contribution> {
                $(
                    if id == <$module::$rule as Rule>::ID {
                        return self.$module.eval(cx);
                    }
                )*
                None
            }

            /// The contributions of the rules that fire (with points other than zero), in order.
            pub fn evaluate(&self, cx: &Ctx) -> Vec<Contribution> {
                let mut out = Vec::new();
                $(
                    if let Some(c) = self.$module.eval(cx) {
                        if c.points != 0 {
                            out.push(c);
                        }
                    }
                )*
                out
            }
        }
    };
}

registry! {
    death::Death,
    serious_illness::SeriousIllness,
    medical_burden::MedicalBurden,
    catastrophic_bill::CatastrophicBill,
    job_loss::JobLoss,
    severe_disability::SevereDisability,
    dangerous_house::DangerousHouse,
    disaster_damage::DisasterDamage,
    forced_relocation::ForcedRelocation,
    income_below_line::IncomeBelowLine,
    monitoring_line::MonitoringLine,
}

/// The id of the vulnerability multiplier's contribution.
pub const VULNERABILITY_ID: &str = "vulnerability";

impl RuleSetError {
    /// The rule the error is about, when it is in a rule's own section (`rules.<id>.…`).
    pub fn rule(&self) -> Option<&str> {
        let rest = self.key().strip_prefix("rules.")?;
        let id = rest.split(['.', '[']).next()?;
        RULE_IDS.iter().copied().find(|r| *r == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::RuleSet;

    #[test]
    fn each_rule_id_is_its_table_name_in_order() {
        let table = toml::Value::try_from(&RuleSet::builtin().rules).expect("serialises");
        let names: Vec<&str> = table
            .as_table()
            .expect("a table")
            .keys()
            .map(String::as_str)
            .collect();
        let mut ids = RULE_IDS.to_vec();
        ids.sort_unstable();
        assert_eq!(names, ids);
        assert_eq!(RULE_IDS[0], "death");
        assert!(causes().contains(&"income_gone"));
        assert_eq!(rule_name("disaster_damage"), Some(("灾害", "disaster")));
    }
}
