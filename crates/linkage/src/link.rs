//! Scoring candidates, deciding, and the evidence kept with every decision.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::OnceLock;

use doudi_model::{mask_id_str, IdNumber, IdNumberError, Subject};
use serde::{Deserialize, Serialize};

use crate::compare::{
    DATE_LEVELS, ID_LEVELS, NAME_EXACT, NAME_HOMOPHONE, NAME_LEVELS, REGION_LEVELS, SEX_LEVELS,
};
use crate::idnum::{IdForm, IdLevel};
use crate::index::{Levels, Query, RegisterIndex};
use crate::model::{
    probability, Model, F_ID, F_NAME, REGISTER_FIELDS, REGISTER_FIELDS_EN, REGISTER_FIELDS_ZH,
};
use crate::{LinkDecision, Outcome};
pub use doudi_model::link::{CandidateEvidence, Comparison, Evidence, IdEvidence};

/// Decision thresholds on the total weight (prior log-odds included, in bits).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Link when the best candidate's total is at least this…
    pub link: f64,
    /// …and ahead of the runner-up by at least this.
    pub margin: f64,
    /// Below `link` but at least this: clerical review. Below: unmatched.
    pub review: f64,
    /// Candidates kept in the evidence (the best first).
    pub keep: usize,
    /// A blocking key shared by more members than this is cut at this many.
    pub max_block: usize,
    /// When the identity number matched only after repair (one substitution, adjacent swap, legacy
    /// 15-digit upgrade), the other fields must add at least this much before a link: a repaired
    /// number makes a candidate, the other fields decide.
    pub repaired_id_support: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            link: 8.0,
            margin: 5.0,
            review: 0.0,
            keep: 3,
            max_block: 2000,
            repaired_id_support: 4.0,
        }
    }
}

/// How the record's identity number looked, from its text and its parsed form.
fn id_evidence(text: Option<&str>, form: &IdForm) -> IdEvidence {
    let Some(raw) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return IdEvidence::Missing;
    };
    match form {
        IdForm::Valid(_) => IdEvidence::Valid {
            masked: mask_id_str(raw),
        },
        IdForm::Upgraded(id) => IdEvidence::Upgraded {
            masked: mask_id_str(std::str::from_utf8(id).unwrap_or("")),
        },
        _ => {
            let problem = match IdNumber::parse(raw) {
                Err(IdNumberError::BadCheck { .. }) => "check_failed".to_string(),
                Err(IdNumberError::BadBirthDate) => "bad_birth_date".to_string(),
                Err(IdNumberError::BadLength(n)) => format!("length_{n}"),
                Err(IdNumberError::NotDigit { .. }) => "not_digits".to_string(),
                Ok(_) => "unusable".to_string(),
            };
            IdEvidence::Invalid {
                masked: mask_id_str(raw),
                problem,
            }
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The model with its derived tables, ready to score.
#[derive(Clone, Debug)]
pub(crate) struct Scorer {
    pub model: Model,
    pub thresholds: Thresholds,
    pub weights: Vec<Vec<f64>>,
    /// Name `u` for the exact level and for exact-or-homophone.
    u_name_exact: f64,
    u_name_sound: f64,
}

/// What scoring needs from the index at hand: the prior and the register size.
#[derive(Clone, Copy, Debug)]
struct Ctx {
    prior: f64,
    members: usize,
}

#[derive(Clone, Copy, Debug)]
struct Scored {
    member: u32,
    levels: Levels,
    tf: f64,
    /// Weight of the identity-number comparison alone.
    id_w: f64,
    total: f64,
}

impl Scorer {
    pub fn new(model: Model, thresholds: Thresholds) -> Scorer {
        let weights = model.weights();
        let lv = |i: usize| {
            model
                .fields
                .get(F_NAME)
                .and_then(|f| f.levels.get(i))
                .map_or(0.0, |l| l.u)
        };
        let u_name_exact = lv(NAME_EXACT as usize);
        let u_name_sound = u_name_exact + lv(NAME_HOMOPHONE as usize);
        Scorer {
            model,
            thresholds,
            weights,
            u_name_exact,
            u_name_sound,
        }
    }

    /// Prior log-odds that a record and one member of a register of `members` are the same person.
    pub fn prior_for(&self, members: usize) -> f64 {
        self.model.prior_weight(members)
    }

    fn ctx(&self, ix: &RegisterIndex) -> Ctx {
        Ctx {
            prior: self.prior_for(ix.len()),
            members: ix.len(),
        }
    }

    fn w(&self, field: usize, level: u8) -> f64 {
        self.weights
            .get(field)
            .and_then(|f| f.get(level as usize))
            .copied()
            .unwrap_or(0.0)
    }

    fn tf(&self, ix: &RegisterIndex, c: Ctx, m: u32, name_level: u8) -> f64 {
        if !self.model.fields.get(F_NAME).is_some_and(|f| f.tf) {
            return 0.0;
        }
        let Some(e) = ix.name_entry(m) else {
            return 0.0;
        };
        match name_level {
            NAME_EXACT => self.model.tf_adjustment(
                self.u_name_exact,
                Model::tf_share(e.key_count, c.members, self.u_name_exact),
            ),
            NAME_HOMOPHONE => self.model.tf_adjustment(
                self.u_name_sound,
                Model::tf_share(e.sound_count, c.members, self.u_name_sound),
            ),
            _ => 0.0,
        }
    }

    fn score(&self, ix: &RegisterIndex, c: Ctx, q: &Query, m: u32) -> Scored {
        let levels = ix.compare(q, m);
        let tf = self.tf(ix, c, m, levels[F_NAME]);
        let total = c.prior
            + tf
            + levels
                .iter()
                .enumerate()
                .map(|(f, l)| self.w(f, *l))
                .sum::<f64>();
        Scored {
            member: m,
            levels,
            tf,
            id_w: self.w(F_ID, levels[F_ID]),
            total,
        }
    }

    /// The highest total a member *not* sharing the record's (valid) number could reach.
    fn bound_without_id(&self, c: Ctx, q: &Query) -> f64 {
        let max_w = |f: usize| {
            self.weights
                .get(f)
                .map_or(0.0, |w| w.iter().copied().fold(0.0, f64::max))
        };
        let mut b = c.prior + self.w(F_ID, IdLevel::Different as u8);
        if !q.name.is_empty() {
            b += max_w(F_NAME);
            b += self
                .model
                .tf_adjustment(self.u_name_exact, self.model.tf.min_u)
                .max(0.0);
        }
        if q.birth.is_some() {
            b += max_w(crate::model::F_BIRTH);
        }
        if q.sex.is_some() {
            b += max_w(crate::model::F_SEX);
        }
        if !q.region.is_empty() {
            b += max_w(crate::model::F_REGION);
        }
        b
    }

    fn comparisons(&self, s: &Scored) -> Vec<Comparison> {
        let mut out = Vec::with_capacity(5);
        for (f, level) in s.levels.iter().enumerate() {
            let Some(fm) = self.model.fields.get(f) else {
                continue;
            };
            if fm.missing == Some(*level as usize) {
                continue;
            }
            let level_name = fm
                .levels
                .get(*level as usize)
                .map(|l| l.level.as_str())
                .unwrap_or("?");
            out.push(Comparison {
                field: Cow::Borrowed(REGISTER_FIELDS.get(f).copied().unwrap_or("?")),
                level: static_level(level_name),
                weight: round2(self.w(f, *level)),
                tf_adjustment: (f == F_NAME && s.tf != 0.0).then(|| round2(s.tf)),
            });
        }
        out
    }

    pub fn link(&self, ix: &RegisterIndex, subject: &Subject) -> LinkDecision {
        let q = Query::new(subject);
        let c = self.ctx(ix);
        let mut keys = Vec::new();
        let mut cands: Vec<u32> = Vec::with_capacity(16);
        ix.id_candidates(&q, &mut keys, &mut cands);
        cands.sort_unstable();
        cands.dedup();
        let mut scored: Vec<Scored> = cands.iter().map(|m| self.score(ix, c, &q, *m)).collect();
        let best = scored
            .iter()
            .map(|s| s.total)
            .fold(f64::NEG_INFINITY, f64::max);
        let settled = matches!(q.form, IdForm::Valid(_) | IdForm::Upgraded(_))
            && best - self.bound_without_id(c, &q) >= self.thresholds.margin;
        if !settled {
            let mut more = Vec::with_capacity(64);
            ix.other_candidates(&q, self.thresholds.max_block, &mut more);
            more.sort_unstable();
            more.dedup();
            for m in more {
                if cands.binary_search(&m).is_err() {
                    scored.push(self.score(ix, c, &q, m));
                }
            }
        }
        // Equal totals are ordered by (household, member) id, never by member number, so an index
        // changed a household at a time decides exactly as one built at once.
        scored.sort_unstable_by(|a, b| {
            b.total
                .total_cmp(&a.total)
                .then_with(|| ix.rank_cmp(a.member, b.member))
        });
        self.decide(ix, c, subject, &q, &scored)
    }

    fn decide(
        &self,
        ix: &RegisterIndex,
        c: Ctx,
        subject: &Subject,
        q: &Query,
        scored: &[Scored],
    ) -> LinkDecision {
        let t = &self.thresholds;
        let top = scored.first();
        let runner = scored.get(1);
        let (outcome, reason) = match (top, runner) {
            (None, _) => (Outcome::Unmatched, "no_candidates"),
            (Some(a), r) if a.total >= t.link => {
                let repaired = [
                    IdLevel::Upgraded15,
                    IdLevel::OneSubstitution,
                    IdLevel::AdjacentSwap,
                ]
                .iter()
                .any(|l| *l as u8 == a.levels[F_ID]);
                if r.is_some_and(|r| a.total - r.total < t.margin) {
                    (Outcome::Review, "runner_up_within_margin")
                } else if repaired && a.total - c.prior - a.id_w < t.repaired_id_support {
                    (Outcome::Review, "repaired_id_unconfirmed")
                } else {
                    (Outcome::Linked, "linked")
                }
            }
            (Some(a), _) if a.total >= t.review => (Outcome::Review, "between_thresholds"),
            _ => (Outcome::Unmatched, "below_review_threshold"),
        };
        // Candidates compete: P(best) = 2^t1 / (1 + Σ 2^ti).
        let p = match top {
            None => 0.0,
            Some(a) => {
                let rest: f64 = scored[1..]
                    .iter()
                    .map(|s| (s.total - a.total).clamp(-1000.0, 0.0).exp2())
                    .sum();
                let odds = a.total.clamp(-1000.0, 1000.0).exp2();
                let base = probability(a.total);
                if rest == 0.0 {
                    base
                } else {
                    // divide numerator and denominator by 2^t1
                    1.0 / (1.0 / odds + 1.0 + rest)
                }
            }
        };
        let detailed = if outcome == Outcome::Review { 2 } else { 1 };
        let candidates = scored
            .iter()
            .take(t.keep.max(1))
            .enumerate()
            .map(|(i, s)| CandidateEvidence {
                household_id: ix.household_id(s.member).to_string(),
                member_id: ix.member_id(s.member).to_string(),
                total: round2(s.total),
                comparisons: if i < detailed {
                    self.comparisons(s)
                } else {
                    Vec::new()
                },
            })
            .collect();
        let (household_id, member_id) = match (outcome, top) {
            (Outcome::Linked, Some(a)) => (
                Some(ix.household_id(a.member).to_string()),
                Some(ix.member_id(a.member).to_string()),
            ),
            _ => (None, None),
        };
        LinkDecision {
            outcome,
            household_id,
            member_id,
            evidence: Evidence {
                model_version: self.model.version.clone(),
                id_number: id_evidence(subject.id_number.as_deref(), &q.form),
                prior: round2(c.prior),
                total: top.map(|a| round2(a.total)),
                match_probability: (p * 1e6).round() / 1e6,
                reason: Cow::Borrowed(reason),
                candidates,
            },
        }
    }
}

/// Level names as `'static` (every level name of the register model is one of these).
fn static_level(name: &str) -> Cow<'static, str> {
    let known = [
        &ID_LEVELS[..],
        &NAME_LEVELS,
        &DATE_LEVELS,
        &SEX_LEVELS,
        &REGION_LEVELS,
    ];
    match known.into_iter().flatten().find(|k| **k == name) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(name.to_string()),
    }
}

/// A model and thresholds ready to score, apart from any index: see [`Linker::link_with`].
#[derive(Clone, Debug)]
pub struct ModelScorer(Scorer);

impl ModelScorer {
    pub fn new(model: Model, thresholds: Thresholds) -> ModelScorer {
        ModelScorer(Scorer::new(model, thresholds))
    }

    pub fn model(&self) -> &Model {
        &self.0.model
    }
}

/// Links records to register members: the index, the model and the thresholds. `Sync`: share it
/// between threads by reference or `Arc`.
#[derive(Clone, Debug)]
pub struct Linker {
    index: RegisterIndex,
    scorer: Scorer,
    /// The version of the register the index holds (a label the caller sets; 0 unless set).
    register_version: i64,
}

impl Linker {
    pub fn new(index: RegisterIndex, model: Model, thresholds: Thresholds) -> Linker {
        let scorer = Scorer::new(model, thresholds);
        Linker {
            index,
            scorer,
            register_version: 0,
        }
    }

    /// The same index with another model and thresholds (a trained model replacing the prior).
    pub fn with_model(self, model: Model, thresholds: Thresholds) -> Linker {
        let version = self.register_version;
        let mut l = Linker::new(self.index, model, thresholds);
        l.register_version = version;
        l
    }

    /// The version of the register the index holds, as last set with
    /// [`Linker::set_register_version`] (0 unless set): decisions are made with it.
    pub fn register_version(&self) -> i64 {
        self.register_version
    }

    /// Label the index with the register version it now holds.
    pub fn set_register_version(&mut self, version: i64) {
        self.register_version = version;
    }

    /// The prior model and default thresholds (before any training).
    pub fn with_prior(index: RegisterIndex) -> Linker {
        Linker::new(index, Model::prior(), Thresholds::default())
    }

    /// Decide who `subject` is, with the evidence.
    pub fn link(&self, subject: &Subject) -> LinkDecision {
        self.scorer.link(&self.index, subject)
    }

    /// Decide who `subject` is with another model over the same index (a record decided with
    /// the model of its stream position, not the latest one).
    pub fn link_with(&self, scorer: &ModelScorer, subject: &Subject) -> LinkDecision {
        scorer.0.link(&self.index, subject)
    }

    pub fn index(&self) -> &RegisterIndex {
        &self.index
    }

    /// Index `household` in place of its earlier version, if any (see
    /// [`RegisterIndex::upsert_household`]).
    pub fn upsert_household(&mut self, household: &doudi_model::Household) {
        self.index.upsert_household(household);
    }

    /// Stop linking to household `household_id`'s members; returns how many there were.
    pub fn remove_household(&mut self, household_id: &str) -> usize {
        self.index.remove_household(household_id)
    }

    pub fn model(&self) -> &Model {
        &self.scorer.model
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.scorer.thresholds
    }

    /// Number of register members.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

impl RegisterIndex {
    /// Link with the prior model and default thresholds (see [`Linker`] for a trained model).
    pub fn link(&self, subject: &Subject) -> LinkDecision {
        static PRIOR: OnceLock<Scorer> = OnceLock::new();
        PRIOR
            .get_or_init(|| Scorer::new(Model::prior(), Thresholds::default()))
            .link(self, subject)
    }
}

/// "ID number 身份证号" for a field code (the code itself when unknown).
fn field_label(field: &str) -> String {
    match REGISTER_FIELDS.iter().position(|f| *f == field) {
        Some(i) => format!("{} {}", REGISTER_FIELDS_EN[i], REGISTER_FIELDS_ZH[i]),
        None => field.to_string(),
    }
}

/// A readable account of a decision: for the best candidate a waterfall (field, level, weight,
/// running total), then the total, the thresholds and the decision. English with Chinese field
/// names alongside.
pub fn explain(decision: &LinkDecision, thresholds: &Thresholds) -> String {
    let e = &decision.evidence;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Decision 决定: {} {} (reason: {}; model {})",
        decision.outcome.code(),
        decision.outcome.name_zh(),
        e.reason,
        e.model_version
    );
    let _ = writeln!(s, "ID number as typed 身份证号: {}", e.id_number.describe());
    let Some(best) = e.candidates.first() else {
        let _ = writeln!(
            s,
            "No register member shares a blocking key with the record."
        );
        return s;
    };
    for (i, c) in e.candidates.iter().enumerate() {
        if c.comparisons.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "Candidate {} 候选: household {} member {}",
            i + 1,
            c.household_id,
            c.member_id
        );
        let _ = writeln!(
            s,
            "  {:<22} {:<26} {:>8} {:>9}",
            "field 字段", "level 等级", "weight", "running"
        );
        let mut running = e.prior;
        let _ = writeln!(
            s,
            "  {:<22} {:<26} {:>+8.2} {:>9.2}",
            "prior 先验", "", e.prior, running
        );
        let mut shown = Vec::new();
        for cmp in &c.comparisons {
            let w = cmp.weight + cmp.tf_adjustment.unwrap_or(0.0);
            running += w;
            let level = match cmp.tf_adjustment {
                Some(tf) => format!("{} (tf {:+.2})", cmp.level, tf),
                None => cmp.level.to_string(),
            };
            let _ = writeln!(
                s,
                "  {:<22} {:<26} {:>+8.2} {:>9.2}",
                field_label(&cmp.field),
                level,
                w,
                running
            );
            shown.push(cmp.field.as_ref());
        }
        let missing: Vec<String> = REGISTER_FIELDS
            .iter()
            .copied()
            .filter(|f| !shown.contains(f))
            .map(field_label)
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(
                s,
                "  not compared (missing on one side, or already said by the ID number; weight 0) 未比较: {}",
                missing.join(", ")
            );
        }
        let _ = writeln!(s, "  total 总分 {:.2}", c.total);
    }
    let _ = writeln!(
        s,
        "Best total 最高分 {:.2}, match probability 匹配概率 {:.6}",
        best.total, e.match_probability
    );
    if let Some(r) = e.candidates.get(1) {
        let _ = writeln!(
            s,
            "Runner-up 次优: household {} member {} total {:.2} (margin {:.2}, required {:.2})",
            r.household_id,
            r.member_id,
            r.total,
            best.total - r.total,
            thresholds.margin
        );
    }
    let _ = writeln!(
        s,
        "Thresholds 阈值: link ≥ {:.2} with margin {:.2}, review ≥ {:.2} → {} {}",
        thresholds.link,
        thresholds.margin,
        thresholds.review,
        decision.outcome.code(),
        decision.outcome.name_zh()
    );
    s
}
