//! The Fellegi–Sunter model: for each field and comparison level, `m` (the probability of the
//! level when both records are the same person) and `u` (when they are not); the level's weight is
//! `log2(m / u)`. `lambda` is the prior probability that a record and one register member, taken
//! at random, are the same person; its log-odds open every waterfall.
//!
//! A model is plain data (serde): the pipeline stores it, and its `version` (a hash of every
//! parameter) is written into each decision's evidence.

use serde::{Deserialize, Serialize};

use crate::compare::{DATE_LEVELS, ID_LEVELS, NAME_LEVELS, REGION_LEVELS, SEX_LEVELS};
use crate::idnum::IdLevel;

/// One comparison level of one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelModel {
    pub level: String,
    pub m: f64,
    pub u: f64,
}

/// One field: its levels in comparator order. The `missing` level, if any, always weighs 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldModel {
    pub field: String,
    pub levels: Vec<LevelModel>,
    /// Index of the level meaning "one side has no value".
    pub missing: Option<usize>,
    /// Whether term-frequency adjustment applies to this field's agreeing levels.
    #[serde(default)]
    pub tf: bool,
}

/// Term-frequency adjustment: a shared common value is weaker evidence than a shared rare one.
/// The weight of an agreeing level becomes `log2(m / u_tf)` with `u_tf = max(tf(value), min_u)`,
/// i.e. the level weight plus `strength * log2(u / u_tf)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TfSettings {
    pub enabled: bool,
    /// 0 (no adjustment) to 1 (full adjustment).
    pub strength: f64,
    /// Floor for a value's frequency, so a value seen once is not taken as proof.
    pub min_u: f64,
}

impl Default for TfSettings {
    fn default() -> Self {
        TfSettings {
            enabled: true,
            strength: 1.0,
            min_u: 1e-5,
        }
    }
}

/// A trained (or prior) model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// `fs-` and 16 hex digits of a hash of every other parameter.
    pub version: String,
    /// Prior probability that a record is about *somebody* in the register (or the other file).
    /// The prior for one (record, member) pair is `lambda / members`, so one model serves
    /// registers of any size.
    pub lambda: f64,
    pub fields: Vec<FieldModel>,
    pub tf: TfSettings,
    /// How it was made: `prior`, `em:<iterations>`, `em+labels`.
    pub method: String,
}

/// Field order of the register model.
pub const F_ID: usize = 0;
pub const F_NAME: usize = 1;
pub const F_BIRTH: usize = 2;
pub const F_SEX: usize = 3;
pub const F_REGION: usize = 4;
/// Field codes of the register model (short: they are repeated in every decision's evidence).
pub const REGISTER_FIELDS: [&str; 5] = ["id", "name", "birth", "sex", "region"];
/// English field names for explanations.
pub const REGISTER_FIELDS_EN: [&str; 5] = ["ID number", "name", "birth date", "sex", "region"];
/// Chinese field names for explanations.
pub const REGISTER_FIELDS_ZH: [&str; 5] = ["身份证号", "姓名", "出生日期", "性别", "地区"];

pub(crate) fn field(name: &str, levels: &[&str], m: &[f64], u: &[f64], tf: bool) -> FieldModel {
    FieldModel {
        field: name.to_string(),
        levels: levels
            .iter()
            .zip(m.iter().zip(u))
            .map(|(l, (m, u))| LevelModel {
                level: l.to_string(),
                m: *m,
                u: *u,
            })
            .collect(),
        missing: levels.iter().position(|l| *l == "missing"),
        tf,
    }
}

/// Floor for probabilities (a level never seen is rare, not impossible).
pub const P_FLOOR: f64 = 1e-9;

impl Model {
    /// Sane defaults for the register, usable before any training (hand-set, close to what EM finds
    /// on the synthetic feeds at default noise).
    pub fn prior() -> Model {
        debug_assert_eq!(IdLevel::ALL.len(), ID_LEVELS.len());
        let fields = vec![
            field(
                REGISTER_FIELDS[F_ID],
                &ID_LEVELS,
                &[0.90, 0.015, 0.02, 0.02, 0.005, 0.04],
                &[1e-10, 1e-10, 1e-8, 1e-8, 0.96, 0.04],
                false,
            ),
            field(
                REGISTER_FIELDS[F_NAME],
                &NAME_LEVELS,
                &[0.94, 0.02, 0.01, 0.005, 0.025],
                &[2e-3, 1e-3, 0.03, 0.94, 0.025],
                true,
            ),
            field(
                REGISTER_FIELDS[F_BIRTH],
                &DATE_LEVELS,
                &[0.97, 0.01, 0.01, 0.005, 0.25],
                &[1e-4, 2e-5, 4e-3, 0.99, 0.25],
                false,
            ),
            field(
                REGISTER_FIELDS[F_SEX],
                &SEX_LEVELS,
                &[0.995, 0.005, 0.25],
                &[0.5, 0.5, 0.25],
                false,
            ),
            field(
                REGISTER_FIELDS[F_REGION],
                &REGION_LEVELS,
                &[0.95, 0.02, 0.02, 0.01, 0.3],
                &[2e-3, 0.02, 0.2, 0.78, 0.3],
                false,
            ),
        ];
        Model::new(0.95, fields, TfSettings::default(), "prior")
    }

    /// Build a model and stamp its version.
    pub fn new(lambda: f64, fields: Vec<FieldModel>, tf: TfSettings, method: &str) -> Model {
        let mut m = Model {
            version: String::new(),
            lambda,
            fields,
            tf,
            method: method.to_string(),
        };
        m.version = m.compute_version();
        m
    }

    /// `fs-` and 16 hex digits of an FNV-1a hash of the parameters (version excluded).
    pub fn compute_version(&self) -> String {
        #[derive(Serialize)]
        struct Params<'a> {
            lambda: f64,
            fields: &'a [FieldModel],
            tf: &'a TfSettings,
        }
        let text = serde_json::to_string(&Params {
            lambda: self.lambda,
            fields: &self.fields,
            tf: &self.tf,
        })
        .unwrap_or_default();
        let mut h: u64 = 0xcbf29ce484222325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("fs-{h:016x}")
    }

    /// The prior log-odds for one (record, member) pair in a register of `members`.
    pub fn prior_weight(&self, members: usize) -> f64 {
        let p = (self.lambda / members.max(1) as f64).clamp(1e-15, 1.0 - 1e-9);
        (p / (1.0 - p)).log2()
    }

    /// A value's frequency among `members` for TF adjustment, shrunk towards the level's average
    /// `u` (one pseudo-observation of weight `1/u`), so that a small register does not mistake a
    /// value seen once for a common one.
    pub fn tf_share(count: u32, members: usize, u: f64) -> f64 {
        let u = u.max(P_FLOOR);
        (f64::from(count) + 1.0) / (members as f64 + 1.0 / u)
    }

    /// Weight of each level of each field (`missing` levels weigh 0).
    pub fn weights(&self) -> Vec<Vec<f64>> {
        self.fields
            .iter()
            .map(|f| {
                f.levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        if Some(i) == f.missing {
                            0.0
                        } else {
                            (l.m.max(P_FLOOR) / l.u.max(P_FLOOR)).log2()
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The TF adjustment for an agreeing level with probability `u` when the shared value has
    /// frequency `tf` (0 when adjustment is off).
    pub fn tf_adjustment(&self, u: f64, tf: f64) -> f64 {
        if !self.tf.enabled || tf <= 0.0 {
            return 0.0;
        }
        let u_tf = tf.max(self.tf.min_u).max(P_FLOOR);
        self.tf.strength * (u.max(P_FLOOR) / u_tf).log2()
    }
}

/// Match probability from a total weight (prior included).
pub fn probability(total: f64) -> f64 {
    let odds = total.clamp(-1000.0, 1000.0).exp2();
    odds / (1.0 + odds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_a_stable_hash_of_the_parameters() {
        let a = Model::prior();
        let b = Model::prior();
        assert_eq!(a.version, b.version);
        assert!(a.version.starts_with("fs-") && a.version.len() == 19);
        let mut c = Model::prior();
        c.lambda = 2e-6;
        assert_ne!(c.compute_version(), a.version);
        let json = serde_json::to_string(&a).unwrap_or_default();
        let back: Model = serde_json::from_str(&json).unwrap_or_else(|_| Model::prior());
        assert_eq!(back, a);
        assert_eq!(back.compute_version(), a.version);
    }

    #[test]
    fn weights_follow_m_over_u_and_missing_is_neutral() {
        let m = Model::prior();
        let w = m.weights();
        assert!(w[F_ID][0] > 20.0);
        assert!(w[F_ID][4] < -5.0);
        assert_eq!(w[F_ID][5], 0.0);
        assert_eq!(w[F_NAME][4], 0.0);
        assert!((probability(0.0) - 0.5).abs() < 1e-12);
        assert!(probability(20.0) > 0.999);
    }

    #[test]
    fn common_values_weigh_less_than_rare_ones() {
        let m = Model::prior();
        let u = m.fields[F_NAME].levels[0].u;
        assert!(m.tf_adjustment(u, 0.05) < 0.0);
        assert!(m.tf_adjustment(u, 1e-4) > 0.0);
    }
}
