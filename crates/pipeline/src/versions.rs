//! The rule-set and identity-model versions a record is decided with (issue 19 item 2): they
//! belong to the record's history, not to the worker that happens to apply it. Each activation is
//! stored at a stream position (`doudi_store::ActivationRow`); a record at line `p` of stream `s`
//! is decided with the latest activation `A` of each kind with `p >= A.from[s]` (a stream `A` does
//! not name began after it: `A` applies from its start). Before any activation of a kind: the
//! engine's own rule set (the configured one), the register linker's model.
//!
//! The engine holds every activated version ([`Versions`], one snapshot replaced when an
//! activation is seen) and looks for new ones on each batch's transaction (one cheap read of the
//! last activation's id). A batch staged with a snapshot older than the activations committed
//! before it finishes is caught under the lock activations take ([`check_current`]): it rolls back
//! and is applied again with the new versions.

use std::sync::Arc;

use doudi_linkage::{check_model, Model, ModelScorer, Thresholds};
use doudi_risk::RuleSet;
use doudi_store::{ActivationKind, ActivationRow, BatchTx, StoreError};

use crate::PipelineError;

/// An activated rule set.
#[derive(Debug)]
pub struct RulesVersion {
    pub activation: ActivationRow,
    pub rules: Arc<RuleSet>,
}

/// An activated identity model (`None`: stored but unusable, linked with the prior).
#[derive(Debug)]
pub struct ModelVersion {
    pub activation: ActivationRow,
    pub scorer: Option<Arc<ModelScorer>>,
}

/// Every activated version the engine knows, as of activation `generation` (the last one's id).
#[derive(Debug)]
pub struct Versions {
    pub generation: i64,
    rules: Vec<RulesVersion>,
    models: Vec<ModelVersion>,
    /// The rule set before any activation of one.
    fallback: Arc<RuleSet>,
    /// The prior model, for records before the first model activation (once there is one).
    prior: Option<Arc<ModelScorer>>,
}

/// Which rule set a fact is assessed with: an index into [`Versions`]' rule sets (0: the
/// fallback), stable as activations are added (they only ever are).
pub type RulesIndex = u32;

impl Versions {
    /// No activation known: everything is decided with `fallback`.
    pub fn new(fallback: RuleSet) -> Versions {
        Versions {
            generation: 0,
            rules: Vec::new(),
            models: Vec::new(),
            fallback: Arc::new(fallback),
            prior: None,
        }
    }

    /// The rule set a record at `line` of `stream` is decided with.
    pub fn rules_index(&self, stream: &str, line: u64) -> RulesIndex {
        self.rules
            .iter()
            .rposition(|r| r.activation.covers(stream, line))
            .map_or(0, |i| i as RulesIndex + 1)
    }

    /// The rule set of an index from [`Versions::rules_index`].
    pub fn rules(&self, index: RulesIndex) -> &RuleSet {
        match index {
            0 => &self.fallback,
            i => self
                .rules
                .get(i as usize - 1)
                .map_or(&self.fallback, |r| &r.rules),
        }
    }

    /// The identity model a record at `line` of `stream` is decided with (`None`: no model
    /// activation covers it; the register linker's model).
    pub fn model_at(&self, stream: &str, line: u64) -> Option<&ModelVersion> {
        self.models
            .iter()
            .rev()
            .find(|m| m.activation.covers(stream, line))
    }

    /// The model a record at `line` of `stream` is linked with: the covering activation's (the
    /// prior for an unusable one, or before the first); `None` before any model activation (the
    /// register linker's model).
    pub fn scorer_at(&self, stream: &str, line: u64) -> Option<&ModelScorer> {
        if self.models.is_empty() {
            return None;
        }
        self.model_at(stream, line)
            .and_then(|m| m.scorer.as_deref())
            .or(self.prior.as_deref())
    }

    /// The latest activated rule set (the fallback before any).
    pub fn latest_rules(&self) -> &RuleSet {
        self.rules.last().map_or(&self.fallback, |r| &r.rules)
    }

    /// The activated rule sets, in order.
    pub fn rule_sets(&self) -> &[RulesVersion] {
        &self.rules
    }

    /// The activated models, in order.
    pub fn models(&self) -> &[ModelVersion] {
        &self.models
    }

    /// These versions and the activations `rows` after them (in order), the stored models
    /// read with `model`. A rule set or model that cannot be read is an error: a worker must not
    /// decide a record with another version than the one it belongs to.
    pub(crate) fn with(
        &self,
        rows: Vec<ActivationRow>,
        models: &mut Vec<(ActivationRow, Option<String>)>,
        thresholds: &Thresholds,
    ) -> Result<Versions, PipelineError> {
        let mut rules: Vec<RulesVersion> = self
            .rules
            .iter()
            .map(|r| RulesVersion {
                activation: r.activation.clone(),
                rules: Arc::clone(&r.rules),
            })
            .collect();
        let mut generation = self.generation;
        for row in rows {
            generation = generation.max(row.id);
            if row.kind == ActivationKind::Rules {
                let parsed =
                    RuleSet::from_toml_str(&row.content).map_err(|e| StoreError::Corrupt {
                        context: "activations.content",
                        message: format!("rule set {} (activation {}): {e}", row.version, row.id),
                    })?;
                rules.push(RulesVersion {
                    activation: row,
                    rules: Arc::new(parsed),
                });
            }
        }
        let mut all_models: Vec<ModelVersion> = self
            .models
            .iter()
            .map(|m| ModelVersion {
                activation: m.activation.clone(),
                scorer: m.scorer.clone(),
            })
            .collect();
        for (row, text) in models.drain(..) {
            let scorer = match text {
                None => None,
                Some(text) => {
                    let model: Model =
                        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                            context: "linkage_models.model",
                            message: format!("model {}: {e}", row.version),
                        })?;
                    match check_model(&model) {
                        Ok(()) => Some(Arc::new(ModelScorer::new(model, thresholds.clone()))),
                        Err(reason) => {
                            tracing::warn!(model = %row.version, %reason, "an activated identity model is degenerate: records of its positions are linked with the prior");
                            None
                        }
                    }
                }
            };
            all_models.push(ModelVersion {
                activation: row,
                scorer,
            });
        }
        let prior = match &self.prior {
            Some(p) => Some(Arc::clone(p)),
            None if !all_models.is_empty() => Some(Arc::new(ModelScorer::new(
                Model::prior(),
                thresholds.clone(),
            ))),
            None => None,
        };
        Ok(Versions {
            generation,
            rules,
            models: all_models,
            fallback: Arc::clone(&self.fallback),
            prior,
        })
    }
}

/// Fail with [`PipelineError::VersionsChanged`] if an activation committed since `versions` were
/// read: takes the lock activations wait for (held to commit), so none can commit before this
/// transaction does. Call it once the transaction's households are locked (the lock order).
pub async fn check_current(tx: &mut BatchTx, versions: &Versions) -> Result<(), PipelineError> {
    tx.lock_timeline_counter().await?;
    let now = tx.activation_generation().await?;
    if now != versions.generation {
        return Err(PipelineError::VersionsChanged {
            seen: versions.generation,
            now,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rules(version: &str) -> RuleSet {
        let mut r = RuleSet::builtin();
        r.version = version.to_string();
        r
    }

    fn activation(id: i64, version: &str, from: &[(&str, u64)]) -> ActivationRow {
        let text = RuleSet::builtin_toml().replacen(
            &format!("version = \"{}\"", RuleSet::builtin().version),
            &format!("version = \"{version}\""),
            1,
        );
        ActivationRow {
            id,
            kind: ActivationKind::Rules,
            version: version.to_string(),
            content: text,
            from: from
                .iter()
                .map(|(s, l)| (s.to_string(), *l))
                .collect::<BTreeMap<_, _>>(),
            activated_at: String::new(),
            activated_by: "test".to_string(),
        }
    }

    #[test]
    fn a_record_is_decided_with_the_latest_activation_at_or_before_its_position() {
        let v = Versions::new(rules("config"));
        assert_eq!(v.rules(v.rules_index("a", 5)).version, "config");
        let v = v
            .with(
                vec![
                    activation(1, "r1", &[]),
                    activation(3, "r2", &[("a", 100), ("b", 7)]),
                ],
                &mut Vec::new(),
                &Thresholds::default(),
            )
            .expect("valid");
        assert_eq!(v.generation, 3);
        let at = |s: &str, l: u64| v.rules(v.rules_index(s, l)).version.clone();
        // Before the activation's position on its stream: the earlier version.
        assert_eq!(at("a", 99), "r1");
        assert_eq!(at("a", 100), "r2");
        assert_eq!(at("b", 6), "r1");
        assert_eq!(at("b", 7), "r2");
        // A stream begun after the activation: the new version from its start.
        assert_eq!(at("c", 0), "r2");
        assert_eq!(at("c", 1), "r2");
        assert_eq!(v.latest_rules().version, "r2");
        // More activations keep the indices of the earlier ones.
        let i = v.rules_index("a", 50);
        let w = v
            .with(
                vec![activation(4, "r3", &[("a", 200)])],
                &mut Vec::new(),
                &Thresholds::default(),
            )
            .expect("valid");
        assert_eq!(w.rules(i).version, "r1");
        assert_eq!(w.rules(w.rules_index("a", 150)).version, "r2");
        assert_eq!(w.rules(w.rules_index("a", 200)).version, "r3");
    }

    #[test]
    fn an_unreadable_stored_rule_set_is_an_error_not_a_default() {
        let mut bad = activation(1, "r1", &[]);
        bad.content = "not = [toml".to_string();
        let v = Versions::new(rules("config"));
        assert!(matches!(
            v.with(vec![bad], &mut Vec::new(), &Thresholds::default()),
            Err(PipelineError::Store(StoreError::Corrupt { .. }))
        ));
    }
}
