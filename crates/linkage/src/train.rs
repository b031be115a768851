//! Estimating the model from the data itself (no labels): `u` from random pairs, `m` and the
//! prior by expectation–maximisation over the candidate pairs blocking finds; and blending in
//! labelled pairs where clerks have decided some.
//!
//! Deterministic: random pairs come from a ChaCha8 stream with a fixed seed, patterns are counted
//! in ordered maps, so the same input gives the same model and version.

use std::collections::BTreeMap;

use doudi_model::Subject;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::em::{self, check_model, sum_present, Degenerate, EmInput, Patterns};
use crate::idnum::IdLevel;
use crate::index::{Query, RegisterIndex};
use crate::model::{FieldModel, Model, F_ID, P_FLOOR};

/// Seed of the random-pair stream.
pub const U_SEED: u64 = 0x646f_7564_6920_7521;
/// Random pairs drawn to estimate `u`.
pub const U_SAMPLES: usize = 200_000;

/// Floor of a trained `m`: no disagreement is taken as impossible for the same person (typing
/// errors reach every field), which bounds any level's weight from below at about
/// `log2(M_FLOOR / u)`, some −10 bits.
pub const M_FLOOR: f64 = 1e-3;

/// Floor the non-missing `m` of each field at [`M_FLOOR`] and renormalise them to sum to 1.
pub(crate) fn floor_m(fields: &mut [FieldModel]) {
    for fm in fields.iter_mut() {
        let missing = fm.missing;
        let mut sum = 0.0;
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            if Some(i) != missing {
                lv.m = lv.m.max(M_FLOOR);
                sum += lv.m;
            }
        }
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            if Some(i) != missing && sum > 0.0 {
                lv.m = round_sig(lv.m / sum);
            }
        }
    }
}

/// `u` per field and level from level counts over random pairs. A level never seen gets half a
/// count.
pub(crate) fn u_from_counts(fields: &mut [FieldModel], counts: &[Vec<f64>], samples: f64) {
    for (f, fm) in fields.iter_mut().enumerate() {
        let missing = fm.missing;
        let seen: f64 = counts[f]
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != missing)
            .map(|(_, c)| c)
            .sum();
        let total = counts[f].iter().sum::<f64>().max(1.0);
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            let c = counts[f].get(i).copied().unwrap_or(0.0);
            if Some(i) == missing {
                lv.u = (c / total).max(P_FLOOR);
                lv.m = lv.u;
            } else if c > 0.0 {
                lv.u = c / seen.max(1.0);
            } else {
                lv.u = (0.5 / samples.max(1.0)).max(P_FLOOR);
            }
        }
    }
}

/// Train the register model on `records` (the subjects of feed events, no labels needed).
///
/// 1. `u`: level frequencies over 200,000 random (record, member) pairs, leaving out pairs
///    whose identity numbers agree; for the identity-number agreement levels themselves, how often
///    a record's number reaches a member other than the best one.
/// 2. `m` and the match share among candidate pairs: EM over every candidate pair that blocking
///    finds (the identity-number, birth-date and name-sound keys), started from rules' estimates
///    and from the prior, constrained and checked ([`crate::em`]).
/// 3. `lambda`: the share of records about somebody in the register, from EM's match share.
///
/// A degenerate fit (the match class agreeing less than the non-match class on a field, a
/// collapsed prior) is refused: the caller keeps the model it had.
pub fn train(
    index: &RegisterIndex,
    records: &[Subject],
    iterations: usize,
) -> Result<Model, Degenerate> {
    let prior = Model::prior();
    if index.is_empty() || records.is_empty() {
        return Ok(prior);
    }
    let queries: Vec<Query> = records.iter().map(Query::new).collect();
    let mut fields = prior.fields.clone();

    // u from random pairs. Pairs whose identity numbers agree (exactly or after repair) are left
    // out: among random pairs they are nearly all the same person, and u is about different people.
    let agree = |l: u8| l < IdLevel::Different as u8;
    let mut counts: Vec<Vec<f64>> = fields.iter().map(|f| vec![0.0; f.levels.len()]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(U_SEED);
    let draws = U_SAMPLES.min(queries.len().saturating_mul(index.len()));
    let mut samples = 0usize;
    for _ in 0..draws {
        let q = &queries[rng.gen_range(0..queries.len())];
        let m = rng.gen_range(0..index.len() as u32);
        let levels = index.compare(q, m);
        if agree(levels[F_ID]) {
            continue;
        }
        samples += 1;
        for (f, l) in levels.iter().enumerate() {
            if let Some(c) = counts[f].get_mut(*l as usize) {
                *c += 1.0;
            }
        }
    }
    u_from_counts(&mut fields, &counts, samples as f64);

    // u of the identity-number agreement levels, counted over every record: of the members a
    // record's number reaches (exactly or by repair), the best is taken as the person and the
    // others as different people sharing that level; at least half a pair over all pairs.
    let mut others = [0.0f64; 4];
    let (mut keys, mut cands) = (Vec::new(), Vec::new());
    for q in &queries {
        cands.clear();
        index.id_candidates(q, &mut keys, &mut cands);
        cands.sort_unstable();
        cands.dedup();
        let mut levels: Vec<u8> = cands
            .iter()
            .map(|m| index.compare(q, *m)[F_ID])
            .filter(|l| agree(*l))
            .collect();
        levels.sort_unstable();
        for l in levels.iter().skip(1) {
            others[*l as usize] += 1.0;
        }
    }
    let all_pairs = queries.len() as f64 * index.len() as f64;
    if let Some(id) = fields.get_mut(F_ID) {
        for (l, n) in others.iter().enumerate() {
            if let Some(lv) = id.levels.get_mut(l) {
                lv.u = (n.max(0.5) / all_pairs).max(P_FLOOR);
            }
        }
    }
    let random_u: Vec<Vec<f64>> = fields
        .iter()
        .map(|f| f.levels.iter().map(|l| l.u).collect())
        .collect();

    // EM over candidate pairs, guarded against the wrong class.
    let mut patterns: Patterns = BTreeMap::new();
    for q in &queries {
        cands.clear();
        index.id_candidates(q, &mut keys, &mut cands);
        index.other_candidates(q, 2000, &mut cands);
        cands.sort_unstable();
        cands.dedup();
        for m in &cands {
            *patterns.entry(index.compare(q, *m).to_vec()).or_default() += 1.0;
        }
    }
    let pairs: f64 = patterns.values().sum();
    let mut em_fields = prior.fields.clone();
    for (f, fm) in em_fields.iter_mut().enumerate() {
        // start u from the random pairs, but blocked pairs agree more often: give EM room
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            lv.u = random_u[f][i].max(1e-4);
        }
    }
    let input = EmInput {
        patterns: &patterns,
        fields: &em_fields,
        records: records.len() as f64,
        iterations,
    };
    let start_lambda = (records.len() as f64 / pairs.max(1.0)).clamp(1e-4, 0.99);
    let fit = em::fit(&input, start_lambda)?;

    // Final: m from EM, u from random pairs, missing levels neutral; a field the sample holds
    // (nearly) no values of keeps the prior's estimates.
    for (f, fm) in fields.iter_mut().enumerate() {
        if !fit.informed.get(f).copied().unwrap_or(true) {
            *fm = prior.fields[f].clone();
            continue;
        }
        let missing = fm.missing;
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            if Some(i) != missing {
                lv.m = round_sig(fit.fields[f].levels[i].m);
            }
            lv.u = round_sig(lv.u);
            if Some(i) == missing {
                lv.m = lv.u;
            }
        }
    }
    floor_m(&mut fields);
    let lambda = round_sig((fit.lambda * pairs / records.len() as f64).clamp(0.01, 0.999));
    let model = Model::new(
        lambda,
        fields,
        prior.tf,
        &format!("em:{}:{}", fit.start, fit.iterations),
    );
    check_model(&model)?;
    Ok(model)
}

/// Six significant digits: keeps stored models short and versions stable.
pub(crate) fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(5 - mag);
    (x * scale).round() / scale
}

/// A pair a clerk has decided.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledPair {
    pub subject: Subject,
    pub household_id: String,
    pub member_id: String,
    pub is_match: bool,
}

/// Blend labelled pairs into `model`: each level's `m` becomes
/// `(strength * m + matches at the level) / (strength + matches)` over the labelled matches, and
/// `u` likewise over the labelled non-matches. `strength` is how many labelled pairs the current
/// estimate is worth. Pairs whose member is not in `index` are skipped; returns the new model and
/// how many pairs were used.
pub fn blend_labels(
    model: &Model,
    index: &RegisterIndex,
    labels: &[LabelledPair],
    strength: f64,
) -> (Model, usize) {
    let nf = model.fields.len();
    let mut mc: Vec<Vec<f64>> = model
        .fields
        .iter()
        .map(|f| vec![0.0; f.levels.len()])
        .collect();
    let mut uc = mc.clone();
    let mut used = 0;
    for lp in labels {
        let Some(m) = index.find_member(&lp.household_id, &lp.member_id) else {
            continue;
        };
        used += 1;
        let levels = index.compare(&Query::new(&lp.subject), m);
        let acc = if lp.is_match { &mut mc } else { &mut uc };
        for f in 0..nf.min(levels.len()) {
            if let Some(c) = acc[f].get_mut(levels[f] as usize) {
                *c += 1.0;
            }
        }
    }
    let k = strength.max(0.0);
    let mut fields = model.fields.clone();
    for (f, fm) in fields.iter_mut().enumerate() {
        let missing = fm.missing;
        let nm = sum_present(&mc[f], missing);
        let nu = sum_present(&uc[f], missing);
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            if Some(i) == missing {
                continue;
            }
            if nm + k > 0.0 {
                lv.m = round_sig((k * lv.m + mc[f][i]) / (k + nm));
            }
            if nu + k > 0.0 {
                lv.u = round_sig((k * lv.u + uc[f][i]) / (k + nu));
            }
        }
    }
    let method = format!("{}+labels:{used}", model.method);
    (
        Model::new(model.lambda, fields, model.tf.clone(), &method),
        used,
    )
}
