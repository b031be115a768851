//! Expectation–maximisation that cannot settle on the wrong class.
//!
//! Plain EM over blocked candidate pairs can converge to *a* two-class mixture that is not
//! "same person / different people": when pairs were blocked on the first name, "same first name"
//! is a perfectly good class, and EM may learn it (m(first name exact) ≈ 1, m(surname exact) ≈ 0).
//! This module guards against that in four ways:
//!
//! 1. **A prior from rules** (as Splink does): one start takes `m` from the pairs a deterministic
//!    rule calls matches (most present fields agreeing), another from stricter rules (every present
//!    field agreeing), a third from the caller's hand-set values; each runs EM and the most likely
//!    fit that is not degenerate is kept.
//! 2. **A bounded match share**: each record is one person, so EM's match class may not hold many
//!    more pairs than there are records; a fit that ends at that bound has collapsed.
//! 3. **Constraints** after every M-step: on each agreeing level `m ≥ u` (agreement is never
//!    evidence against a match), on the disagreeing level `m ≤ u`, and weights that do not rise
//!    from the exact level down to the disagreeing one.
//! 4. **Degeneracy checks**: a fit whose unconstrained estimate has the match class agreeing less
//!    than the non-match class on a field (the constraint doing all the work), or whose match share
//!    collapses (no match at all, or more matched pairs than records), is refused with a
//!    [`Degenerate`] naming the field; [`check_model`] applies the same test to any model, stored
//!    ones included.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{FieldModel, Model, P_FLOOR};

/// Comparison patterns (a level per field) with their counts. Ordered, hence deterministic.
pub(crate) type Patterns = BTreeMap<Vec<u8>, f64>;

/// Pseudo-count keeping every level's probabilities away from 0 during EM.
const SMOOTH: f64 = 0.01;

/// Share of a rule's fields that must agree for the loose rule to call a pair a match.
const RULE_SHARE: f64 = 0.7;

/// Why a model is refused.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Degenerate {
    /// The match class agrees less often than the non-match class on a field, or hardly ever.
    #[error(
        "field {field:?}: the match class agrees less often than the non-match class or hardly \
         ever (level {level}: m {m:.3e}, u {u:.3e}); EM learned something other than \"same person\""
    )]
    Field {
        field: String,
        level: String,
        m: f64,
        u: f64,
    },
    /// The match share collapsed.
    #[error(
        "the prior collapsed: EM took {expected:.1} of {pairs:.0} candidate pairs for matches \
         with {records:.0} records ({why})"
    )]
    Prior {
        expected: f64,
        pairs: f64,
        records: f64,
        why: String,
    },
    /// A parameter is out of range (not finite, a probability outside 0..1).
    #[error("the model is unusable: {0}")]
    Invalid(String),
}

impl Degenerate {
    /// The field named, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Degenerate::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Index of a field's disagreeing level (the last level that is not "missing").
fn far_level(fm: &FieldModel) -> Option<usize> {
    (0..fm.levels.len()).rev().find(|i| Some(*i) != fm.missing)
}

/// Least share of matched pairs agreeing exactly on a field (where it has values) for the match
/// class to be "same person": below it, EM has found some other class (pairs that share a common
/// name, say) in which the field hardly ever agrees.
pub const MIN_EXACT_M: f64 = 0.1;

/// How much less often than the non-match class the match class may agree exactly before a model
/// is refused (rounding and the floor on `m` move a neutral field's `m` a little below its `u`).
const CHECK_TOLERANCE: f64 = 0.9;

/// Check a model before it is used: every probability in 0..=1 and finite, a prior in (0, 1), and
/// on every field the match class at least as likely as the non-match class to agree exactly (and
/// at least [`MIN_EXACT_M`] of the time), and exact agreement weighing more than disagreement
/// (where different people commonly disagree). Neutral fields (m = u) are not checked.
pub fn check_model(model: &Model) -> Result<(), Degenerate> {
    if !(model.lambda.is_finite() && model.lambda > 0.0 && model.lambda < 1.0) {
        return Err(Degenerate::Invalid(format!(
            "the prior share {} is not within (0, 1)",
            model.lambda
        )));
    }
    for fm in &model.fields {
        for lv in &fm.levels {
            for (what, p) in [("m", lv.m), ("u", lv.u)] {
                if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                    return Err(Degenerate::Invalid(format!(
                        "field {:?} level {}: {what} = {p} is not a probability",
                        fm.field, lv.level
                    )));
                }
            }
        }
        let Some(far) = far_level(fm) else { continue };
        if far == 0 || Some(0) == fm.missing {
            continue;
        }
        let exact = &fm.levels[0];
        // a neutral field (m = u everywhere: no values to learn from) weighs nothing either way
        if fm.levels.iter().all(|l| l.m == l.u) {
            continue;
        }
        let weight = |i: usize| {
            let l = &fm.levels[i];
            (l.m.max(P_FLOOR) / l.u.max(P_FLOOR)).log2()
        };
        // (the disagreeing level is compared only where different people commonly reach it: a
        // level no random pair reached has no meaningful u)
        let far_seen = fm.levels[far].u >= 0.01;
        if exact.m < MIN_EXACT_M
            || exact.m < CHECK_TOLERANCE * exact.u
            || (far_seen && weight(0) < weight(far))
        {
            return Err(Degenerate::Field {
                field: fm.field.clone(),
                level: exact.level.clone(),
                m: exact.m,
                u: exact.u,
            });
        }
    }
    Ok(())
}

/// What EM is given.
pub(crate) struct EmInput<'a> {
    pub patterns: &'a Patterns,
    /// Start `m` (the caller's hand-set values) and `u` (random pairs) per field and level.
    pub fields: &'a [FieldModel],
    /// Records on the side that is linked (each is at most one person): bounds the match count.
    pub records: f64,
    pub iterations: usize,
}

/// A fit: `m` and the candidate pairs' `u` per level, the match share among candidate pairs.
#[derive(Clone, Debug)]
pub(crate) struct EmFit {
    pub fields: Vec<FieldModel>,
    pub lambda: f64,
    pub iterations: usize,
    pub loglik: f64,
    /// Which start won: `rules`, `strict-rules` or `given`.
    pub start: &'static str,
    /// Per field: whether the match class had values to estimate it from (a field missing from
    /// nearly every pair is not: its estimates are the start's).
    pub informed: Vec<bool>,
}

/// Agreeing / present fields of a pattern.
fn agreement(fields: &[FieldModel], levels: &[u8]) -> (usize, usize) {
    let (mut agree, mut present) = (0, 0);
    for (fm, l) in fields.iter().zip(levels) {
        let l = *l as usize;
        if Some(l) == fm.missing || l >= fm.levels.len() {
            continue;
        }
        present += 1;
        if Some(l) != far_level(fm) {
            agree += 1;
        }
    }
    (agree, present)
}

/// Start values from a deterministic rule: `m` from the level frequencies among the pairs the
/// rule calls matches, the match share from their count. `None` if the rule finds no pair.
fn rule_start(input: &EmInput, share: f64) -> Option<(Vec<FieldModel>, f64)> {
    let mut fields = input.fields.to_vec();
    let mut acc: Vec<Vec<f64>> = fields.iter().map(|f| vec![0.0; f.levels.len()]).collect();
    let (mut matched, mut total) = (0.0, 0.0);
    for (levels, count) in input.patterns {
        total += count;
        let (agree, present) = agreement(&fields, levels);
        if present < 2 || (agree as f64) < (share * present as f64).ceil() {
            continue;
        }
        matched += count;
        for (f, l) in levels.iter().enumerate() {
            if let Some(c) = acc.get_mut(f).and_then(|a| a.get_mut(*l as usize)) {
                *c += count;
            }
        }
    }
    if matched <= 0.0 || total <= 0.0 {
        return None;
    }
    for (f, fm) in fields.iter_mut().enumerate() {
        let missing = fm.missing;
        let n = fm.levels.len() as f64;
        let sum = sum_present(&acc[f], missing);
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            if Some(i) != missing {
                lv.m = (acc[f][i] + 1.0) / (sum + n);
            }
        }
        constrain(fm);
    }
    Some((fields, (matched / total).clamp(1e-6, 0.9)))
}

pub(crate) fn sum_present(counts: &[f64], missing: Option<usize>) -> f64 {
    counts
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != missing)
        .map(|(_, v)| v)
        .sum()
}

/// Keep a field's `m` sensible against its `u`: `m ≥ u` on agreeing levels, `m ≤ u` on the
/// disagreeing one, weights not rising from the exact level to the disagreeing one; the present
/// levels' `m` sum to 1 (the disagreeing level takes the rest).
pub(crate) fn constrain(fm: &mut FieldModel) {
    let Some(far) = far_level(fm) else { return };
    let present: Vec<usize> = (0..fm.levels.len())
        .filter(|i| Some(*i) != fm.missing)
        .collect();
    for &i in &present {
        if i != far {
            let lv = &mut fm.levels[i];
            lv.m = lv.m.max(lv.u);
        }
    }
    // weights non-increasing along the agreeing levels
    for w in present.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b == far {
            break;
        }
        let ratio = fm.levels[a].m / fm.levels[a].u.max(P_FLOOR);
        let lb = &mut fm.levels[b];
        if lb.m / lb.u.max(P_FLOOR) > ratio {
            lb.m = (ratio * lb.u).max(lb.u.min(lb.m));
        }
    }
    let agree: f64 = present
        .iter()
        .filter(|i| **i != far)
        .map(|i| fm.levels[*i].m)
        .sum();
    let cap = fm.levels[far].u.min(1.0);
    let rest = 1.0 - agree;
    if rest >= 1e-6 {
        fm.levels[far].m = rest.min(cap.max(1e-6));
        // what the cap on the disagreeing level leaves goes to the agreeing levels
        let left = 1.0 - agree - fm.levels[far].m;
        if left > 0.0 && agree > 0.0 {
            for &i in &present {
                if i != far {
                    fm.levels[i].m *= 1.0 + left / agree;
                }
            }
        }
    } else {
        let scale = (1.0 - 1e-6) / agree.max(1e-12);
        for &i in &present {
            if i != far {
                fm.levels[i].m *= scale;
            }
        }
        fm.levels[far].m = 1e-6;
    }
}

/// The largest match share EM may reach: each record is one person, so matched pairs cannot
/// outnumber the records by much ([`MAX_PAIRS_PER_RECORD`], [`PAIRS_SLACK`]). A fit that ends at this bound has
/// collapsed.
fn max_lambda(input: &EmInput) -> f64 {
    let pairs: f64 = input.patterns.values().sum();
    if pairs <= 0.0 {
        return 1.0 - 1e-9;
    }
    ((MAX_PAIRS_PER_RECORD * input.records.max(1.0) + PAIRS_SLACK) / pairs).min(1.0 - 1e-9)
}

/// Whether the bound on the match share comes from the records (not from 1).
fn bounded_by_records(input: &EmInput) -> bool {
    max_lambda(input) < 1.0 - 1e-9
}

/// Matched pairs allowed beyond [`MAX_PAIRS_PER_RECORD`] per record, so that a handful of records
/// about people enrolled twice is not taken for a collapse.
const PAIRS_SLACK: f64 = 10.0;

/// Matched pairs per record beyond which the match share is taken as collapsed (duplicates on
/// the other side allow more than one).
const MAX_PAIRS_PER_RECORD: f64 = 1.5;

/// One EM run from `fields` and `lambda`. Returns the fit and, per field, the unconstrained `m` of
/// the exact level at the last M-step (for the degeneracy check).
fn run(
    input: &EmInput,
    mut fields: Vec<FieldModel>,
    mut lambda: f64,
    start: &'static str,
) -> (EmFit, Vec<f64>) {
    let nf = fields.len();
    let mut raw_exact = vec![f64::NAN; nf];
    let max_lambda = max_lambda(input);
    lambda = lambda.min(max_lambda);
    let mut ran = 0;
    for it in 0..input.iterations {
        ran = it + 1;
        let mut m_acc: Vec<Vec<f64>> = fields.iter().map(|f| vec![0.0; f.levels.len()]).collect();
        let mut u_acc = m_acc.clone();
        let (mut matches, mut total) = (0.0, 0.0);
        for (p, count) in input.patterns {
            let post = posterior(&fields, lambda, p);
            matches += post * count;
            total += count;
            for f in 0..nf.min(p.len()) {
                let l = p[f] as usize;
                if l < m_acc[f].len() {
                    m_acc[f][l] += post * count;
                    u_acc[f][l] += (1.0 - post) * count;
                }
            }
        }
        let mut delta: f64 = 0.0;
        for (f, fm) in fields.iter_mut().enumerate() {
            let missing = fm.missing;
            let n = fm.levels.len() as f64;
            let sum_m = sum_present(&m_acc[f], missing);
            let sum_u = sum_present(&u_acc[f], missing);
            let before: Vec<(f64, f64)> = fm.levels.iter().map(|l| (l.m, l.u)).collect();
            for (i, lv) in fm.levels.iter_mut().enumerate() {
                if Some(i) == missing {
                    continue;
                }
                lv.m = (m_acc[f][i] + SMOOTH) / (sum_m + SMOOTH * n);
                lv.u = (u_acc[f][i] + SMOOTH) / (sum_u + SMOOTH * n);
            }
            // (a field the match class hardly ever has a value for tells nothing)
            raw_exact[f] = if Some(0) != missing && sum_m >= 1.0 {
                fm.levels[0].m
            } else {
                f64::NAN
            };
            constrain(fm);
            for (lv, (m, u)) in fm.levels.iter().zip(before) {
                delta = delta.max((lv.m - m).abs()).max((lv.u - u).abs());
            }
        }
        let new_lambda = if total > 0.0 { matches / total } else { lambda };
        delta = delta.max((new_lambda - lambda).abs());
        lambda = new_lambda.clamp(1e-9, max_lambda);
        if delta < 1e-7 {
            break;
        }
    }
    let loglik = input
        .patterns
        .iter()
        .map(|(p, count)| {
            let (lm, lu) = likelihoods(&fields, lambda, p);
            count * (lm + lu).max(1e-300).ln()
        })
        .sum();
    (
        EmFit {
            fields,
            lambda,
            iterations: ran,
            loglik,
            start,
            informed: raw_exact
                .iter()
                .map(|r| !r.is_nan() || input.iterations == 0)
                .collect(),
        },
        raw_exact,
    )
}

fn likelihoods(fields: &[FieldModel], lambda: f64, p: &[u8]) -> (f64, f64) {
    let (mut lm, mut lu) = (lambda, 1.0 - lambda);
    for (fm, l) in fields.iter().zip(p) {
        let l = *l as usize;
        if Some(l) == fm.missing {
            continue;
        }
        if let Some(lv) = fm.levels.get(l) {
            lm *= lv.m.max(P_FLOOR);
            lu *= lv.u.max(P_FLOOR);
        }
    }
    (lm, lu)
}

fn posterior(fields: &[FieldModel], lambda: f64, p: &[u8]) -> f64 {
    let (lm, lu) = likelihoods(fields, lambda, p);
    if lm + lu > 0.0 {
        lm / (lm + lu)
    } else {
        0.0
    }
}

/// Whether a fit is degenerate: the unconstrained match class agreeing less than half as often as
/// the non-match class on some field (or less than [`MIN_EXACT_M`] of the time), or a collapsed
/// match share.
fn degenerate(input: &EmInput, fit: &EmFit, raw_exact: &[f64]) -> Option<Degenerate> {
    let pairs: f64 = input.patterns.values().sum();
    let expected = fit.lambda * pairs;
    if expected < 0.5 {
        return Some(Degenerate::Prior {
            expected,
            pairs,
            records: input.records,
            why: "no pair is a match".into(),
        });
    }
    if bounded_by_records(input) && fit.lambda >= 0.999 * max_lambda(input) {
        return Some(Degenerate::Prior {
            expected,
            pairs,
            records: input.records,
            why: "more matched pairs than records".into(),
        });
    }
    for (fm, raw) in fit.fields.iter().zip(raw_exact) {
        if Some(0) == fm.missing || fm.levels.len() < 2 || raw.is_nan() {
            continue;
        }
        let u = fm.levels[0].u;
        if *raw < 0.5 * u || *raw < MIN_EXACT_M {
            return Some(Degenerate::Field {
                field: fm.field.clone(),
                level: fm.levels[0].level.clone(),
                m: *raw,
                u,
            });
        }
    }
    None
}

/// Whether most fields' unconstrained match class agrees less than the non-match class.
fn switched(fit: &EmFit, raw_exact: &[f64]) -> bool {
    let (mut less, mut fields) = (0, 0);
    for (fm, raw) in fit.fields.iter().zip(raw_exact) {
        if raw.is_nan() || Some(0) == fm.missing {
            continue;
        }
        fields += 1;
        if *raw < fm.levels[0].u {
            less += 1;
        }
    }
    fields > 0 && 2 * less > fields
}

/// Fit the mixture from several starts (the loose rule, the strict rule, the caller's values) and
/// keep the most likely that is not degenerate; all degenerate: the first start's reason.
pub(crate) fn fit(input: &EmInput, given_lambda: f64) -> Result<EmFit, Degenerate> {
    let mut starts: Vec<(Vec<FieldModel>, f64, &'static str)> = Vec::new();
    if let Some((f, l)) = rule_start(input, RULE_SHARE) {
        starts.push((f, l, "rules"));
    }
    if let Some((f, l)) = rule_start(input, 1.0) {
        starts.push((f, l, "strict-rules"));
    }
    let mut given = input.fields.to_vec();
    given.iter_mut().for_each(constrain);
    starts.push((given, given_lambda, "given"));
    let mut best: Option<EmFit> = None;
    let mut first_reason: Option<Degenerate> = None;
    let mut queue: Vec<(Vec<FieldModel>, f64, &'static str, bool)> = starts
        .into_iter()
        .rev()
        .map(|(f, l, n)| (f, l, n, false))
        .collect();
    while let Some((fields, lambda, name, swapped)) = queue.pop() {
        let (fit, raw) = run(input, fields, lambda, name);
        // the classes the wrong way round (the "match" class agreeing less on most fields, as
        // when nearly every candidate pair is a match): run again from the swapped classes
        if !swapped && switched(&fit, &raw) {
            let mut back = fit.fields.clone();
            for fm in back.iter_mut() {
                for lv in fm.levels.iter_mut() {
                    std::mem::swap(&mut lv.m, &mut lv.u);
                }
            }
            queue.push((back, 1.0 - fit.lambda, name, true));
        }
        match degenerate(input, &fit, &raw) {
            Some(reason) => {
                first_reason.get_or_insert(reason);
            }
            None => {
                if best.as_ref().is_none_or(|b| fit.loglik > b.loglik) {
                    best = Some(fit);
                }
            }
        }
    }
    best.ok_or_else(|| {
        first_reason.unwrap_or_else(|| Degenerate::Invalid("EM found no usable fit".into()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EM over pairs counted by agreement pattern.
    fn fit_counts(
        fields: &[FieldModel],
        counts: &[(&[u8], f64)],
        records: f64,
        iterations: usize,
        given_lambda: f64,
    ) -> Result<EmFit, Degenerate> {
        let mut patterns: Patterns = BTreeMap::new();
        for (p, n) in counts {
            *patterns.entry(p.to_vec()).or_default() += n;
        }
        let input = EmInput {
            patterns: &patterns,
            fields,
            records,
            iterations,
        };
        fit(&input, given_lambda)
    }

    /// A field of four levels, the last one `missing`.
    fn field(name: &str, m: &[f64], u: &[f64]) -> FieldModel {
        crate::model::field(name, &["exact", "close", "far", "missing"], m, u, false)
    }

    #[test]
    fn constraints_keep_agreement_evidence_for_a_match() {
        let mut f = field("x", &[0.01, 0.5, 0.49, 0.1], &[0.1, 0.05, 0.85, 0.1]);
        constrain(&mut f);
        let w: Vec<f64> = f.levels[..3].iter().map(|l| (l.m / l.u).log2()).collect();
        assert!(f.levels[0].m >= f.levels[0].u, "{f:?}");
        assert!(w[0] >= w[1] - 1e-9 && w[1] >= w[2], "{w:?}");
        let sum: f64 = f.levels[..3].iter().map(|l| l.m).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn check_model_names_the_field_whose_match_class_agrees_less() {
        let good = Model::prior();
        assert_eq!(check_model(&good), Ok(()));
        let mut bad = Model::prior();
        bad.fields[crate::model::F_NAME].levels[0].m = 1e-3;
        let e = check_model(&bad).unwrap_err();
        assert_eq!(e.field(), Some("name"));
        assert!(e.to_string().contains("\"name\""), "{e}");
        let mut nan = Model::prior();
        nan.lambda = f64::NAN;
        assert!(matches!(check_model(&nan), Err(Degenerate::Invalid(_))));
    }

    /// Pairs blocked on the first name: most share it and nothing else (different people); a few
    /// true pairs share everything. Plain EM can take "same first name" as the match class; the
    /// fit must find the true pairs.
    #[test]
    fn blocking_on_a_field_does_not_make_it_the_match_class() {
        let fields = vec![
            field("first", &[0.8, 0.1, 0.05, 0.1], &[0.01, 0.01, 0.98, 0.1]),
            field("last", &[0.8, 0.1, 0.05, 0.1], &[0.01, 0.01, 0.98, 0.1]),
            field("day", &[0.8, 0.1, 0.05, 0.1], &[0.03, 0.01, 0.96, 0.1]),
        ];
        let counts: &[(&[u8], f64)] = &[
            // different people sharing the first name
            (&[0, 2, 2], 9000.0),
            (&[0, 2, 0], 300.0),
            (&[0, 0, 2], 90.0),
            // true pairs
            (&[0, 0, 0], 400.0),
            (&[1, 0, 0], 40.0),
        ];
        let fit = fit_counts(&fields, counts, 1000.0, 50, 0.05).unwrap();
        let post = |p: &[u8]| posterior(&fit.fields, fit.lambda, p);
        assert!(post(&[0, 0, 0]) > 0.99, "{fit:?}");
        assert!(post(&[0, 2, 2]) < 0.01, "{fit:?}");
        assert!(fit.fields[1].levels[0].m > fit.fields[1].levels[0].u);
    }

    #[test]
    fn nothing_to_match_is_refused_as_a_collapsed_prior() {
        let fields = vec![
            field("a", &[0.8, 0.1, 0.05, 0.1], &[0.01, 0.01, 0.98, 0.1]),
            field("b", &[0.8, 0.1, 0.05, 0.1], &[0.01, 0.01, 0.98, 0.1]),
        ];
        // every pair agrees on a and on b: 5000 pairs among 100 records cannot all be matches
        let counts: &[(&[u8], f64)] = &[(&[0, 0], 5000.0)];
        assert!(matches!(
            fit_counts(&fields, counts, 100.0, 30, 0.01),
            Err(Degenerate::Prior { .. })
        ));
    }
}
