//! Identity resolution: decide which register member a department record is about, and keep the
//! evidence for every decision.
//!
//! A Fellegi–Sunter record-linkage engine:
//! - [`normalise`]: full-width → half-width, punctuation and whitespace away, traditional →
//!   simplified, toneless pinyin for Han names, folded and sorted tokens for Latin names;
//! - [`idnum`]: identity numbers as typed — valid, legacy 15-digit, failing the check — and the
//!   repaired numbers one substitution or one adjacent swap away (candidates, never automatic
//!   links: the other fields decide);
//! - [`RegisterIndex`]: the register in flat sorted arrays with cheap blocking keys (identity
//!   number and its repairs; birth date with family-name sound or township; name sound with birth
//!   year or township);
//! - [`compare`]: per-field comparison levels (exact / close / far / missing in each field's words);
//! - [`Model`]: `m` and `u` per level, weights `log2(m/u)`, the prior, term-frequency adjustment;
//!   [`train`] estimates it by EM from unlabelled records, [`blend_labels`] adds clerks' decisions;
//! - [`Linker`]: blocking, scoring, a decision (linked / review / unmatched against
//!   [`Thresholds`]) and its [`Evidence`]; [`explain`] renders the evidence as a waterfall;
//! - [`em`]: EM guarded against learning the wrong class, and [`check_model`] for any model;
//! - [`eval`]: the same engine over any two CSV files described by a TOML spec, scored against
//!   truth pairs.
//!
//! Pure: no I/O (except [`eval`], which reads the files it is given, and the private file a
//! bounded index keeps its bulk in, [`IndexBuilder::on_disk_past`]), no logging, no SQL, no
//! clocks in decisions. Evidence and error messages never hold a full ID number or a name: ID
//! numbers appear masked, names not at all.

pub mod compare;
pub mod em;
pub mod eval;
pub mod idnum;
mod index;
mod link;
pub mod model;
pub mod normalise;
mod ondisk;
mod train;
#[cfg(test)]
mod typos;

pub use em::{check_model, Degenerate};
pub use index::{IndexBuilder, Query, RegisterIndex};
pub use link::{
    explain, CandidateEvidence, Comparison, Evidence, IdEvidence, Linker, ModelScorer, Thresholds,
};
pub use model::{FieldModel, LevelModel, Model, TfSettings};
pub use ondisk::IndexFileError;
pub use train::{blend_labels, train, LabelledPair};

use serde::{Deserialize, Serialize};

/// Version of the matching method family; each model's own version is [`Model::version`].
pub const MODEL_VERSION: &str = "fellegi-sunter-1";

/// What became of a record (its data type lives in `doudi_model`).
pub use doudi_model::LinkOutcome as Outcome;

/// A link decision for one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkDecision {
    pub outcome: Outcome,
    pub household_id: Option<String>,
    pub member_id: Option<String>,
    pub evidence: Evidence,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use doudi_model::{Household, IdNumber, RegionCode, Sex, Subject};

    struct P {
        hh: &'static str,
        member: &'static str,
        name: &'static str,
        birth: &'static str,
        seq: u16,
        village: &'static str,
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn id_of(p: &P) -> IdNumber {
        IdNumber::from_parts(&p.village[..6], date(p.birth), p.seq).unwrap()
    }

    fn register(people: &[P]) -> Vec<Household> {
        people
            .iter()
            .map(|p| {
                let id = id_of(p);
                serde_json::from_value(serde_json::json!({
                    "household_id": p.hh, "region_code": p.village, "address": "x",
                    "category": "dibao", "area": "rural", "enrolled_on": "2023-05-01",
                    "members": [{"member_id": p.member, "id_number": id.expose(), "name": p.name,
                        "sex": if id.sex() == Sex::Male { "male" } else { "female" },
                        "birth_date": p.birth, "relation": "head", "work_capacity": "none"}]
                }))
                .unwrap()
            })
            .collect()
    }

    fn person(hh: &'static str, name: &'static str, birth: &'static str, seq: u16) -> P {
        P {
            hh,
            member: hh,
            name,
            birth,
            seq,
            village: "341502001001",
        }
    }

    fn subject_of(p: &P) -> Subject {
        let id = id_of(p);
        Subject {
            id_number: Some(id.expose().to_string()),
            name: Some(p.name.to_string()),
            birth_date: Some(date(p.birth)),
            sex: Some(id.sex()),
            region_code: RegionCode::parse(p.village).ok(),
        }
    }

    fn household(id: &str, member: &str, id_number: &str) -> Household {
        serde_json::from_value(serde_json::json!({
            "household_id": id, "region_code": "341502001001", "address": "x", "category": "dibao",
            "area": "rural", "enrolled_on": "2023-05-01",
            "members": [{"member_id": member, "id_number": id_number, "name": "王秀英", "sex": "female",
                "birth_date": "1949-12-31", "relation": "head", "work_capacity": "none"}]
        }))
        .unwrap()
    }

    fn id_only(id: Option<&str>) -> Subject {
        Subject {
            id_number: id.map(str::to_string),
            ..Subject::default()
        }
    }

    #[test]
    fn linker_is_shareable_between_threads() {
        fn sync_send<T: Sync + Send>() {}
        sync_send::<Linker>();
        sync_send::<RegisterIndex>();
    }

    /// `d` linked, or its explanation in the failure.
    fn assert_linked(d: &LinkDecision, thresholds: &Thresholds) {
        assert_eq!(d.outcome, Outcome::Linked, "{}", explain(d, thresholds));
    }

    #[test]
    fn exact_valid_id_links_to_the_member() {
        let idx = RegisterIndex::build(&[household("H1", "M1", "11010519491231002X")]);
        let d = idx.link(&id_only(Some("11010519491231002X")));
        assert_eq!(d.outcome, Outcome::Linked);
        assert_eq!(d.member_id.as_deref(), Some("M1"));
        assert_eq!(d.household_id.as_deref(), Some("H1"));
    }

    #[test]
    fn legacy_fifteen_digit_id_is_a_candidate_that_the_name_confirms() {
        let idx = RegisterIndex::build(&[household("H1", "M1", "11010519491231002X")]);
        let alone = idx.link(&id_only(Some("110105491231002")));
        assert_eq!(alone.outcome, Outcome::Review);
        assert_eq!(alone.evidence.reason, "repaired_id_unconfirmed");
        let mut s = id_only(Some("110105491231002"));
        s.name = Some("王秀英".into());
        let d = idx.link(&s);
        assert_linked(&d, &Thresholds::default());
        assert!(matches!(d.evidence.id_number, IdEvidence::Upgraded { .. }));
        assert_eq!(d.evidence.candidates[0].comparisons[0].level, "upgraded_15");
    }

    #[test]
    fn missing_invalid_or_unknown_ids_are_not_linked_on_the_number_alone() {
        let idx = RegisterIndex::build(&[household("H1", "M1", "11010519491231002X")]);
        let missing = idx.link(&id_only(None));
        assert_eq!(missing.evidence.id_number, IdEvidence::Missing);
        assert_eq!(missing.outcome, Outcome::Unmatched);
        let bad = idx.link(&id_only(Some("110105194912310021")));
        assert_eq!(bad.outcome, Outcome::Review);
        let IdEvidence::Invalid { masked, problem } = &bad.evidence.id_number else {
            panic!("expected invalid")
        };
        assert_eq!(masked, "110105********0021");
        assert_eq!(problem, "check_failed");
        let unknown = idx.link(&id_only(Some("110105194912310011")));
        assert_eq!(unknown.outcome, Outcome::Unmatched);
        assert_eq!(unknown.evidence.reason, "no_candidates");
    }

    #[test]
    fn an_id_enrolled_in_two_households_goes_to_review() {
        let idx = RegisterIndex::build(&[
            household("H1", "M1", "11010519491231002X"),
            household("H2", "M9", "11010519491231002X"),
        ]);
        let d = idx.link(&id_only(Some("11010519491231002X")));
        assert_eq!(d.outcome, Outcome::Review);
        assert_eq!(d.evidence.reason, "runner_up_within_margin");
        assert_eq!(d.evidence.candidates.len(), 2);
    }

    fn crowd() -> Vec<P> {
        let mut v = vec![
            person("H01", "王伟", "1960-03-05", 11),
            person("H02", "欧阳娜娜", "1960-03-05", 22),
            person("H03", "张伟", "1971-08-21", 31),
            person("H04", "张玮", "1985-02-11", 41),
        ];
        let others: [&'static str; 12] = [
            "H10", "H11", "H12", "H13", "H14", "H15", "H16", "H17", "H18", "H19", "H20", "H21",
        ];
        for (i, h) in others.iter().enumerate() {
            v.push(person(h, "王伟", "1950-01-01", 100 + i as u16 * 2));
        }
        v
    }

    #[test]
    fn typed_id_repairs_link_when_the_other_fields_agree() {
        let people = crowd();
        let linker = Linker::with_prior(RegisterIndex::build(&register(&people)));
        let mut s = subject_of(&people[2]);
        let good = s.id_number.clone().unwrap();
        let mut b = good.clone().into_bytes();
        b.swap(8, 9); // 1971 -> 1917
        s.id_number = Some(String::from_utf8(b).unwrap());
        let d = linker.link(&s);
        assert_eq!(d.outcome, Outcome::Linked);
        assert_eq!(d.member_id.as_deref(), Some("H03"));
        assert_eq!(
            d.evidence.candidates[0].comparisons[0].level,
            "adjacent_swap"
        );
        let mut b = good.into_bytes();
        b[15] = if b[15] == b'9' { b'0' } else { b[15] + 1 };
        s.id_number = Some(String::from_utf8(b).unwrap());
        let d = linker.link(&s);
        assert_eq!(d.outcome, Outcome::Linked);
        assert_eq!(
            d.evidence.candidates[0].comparisons[0].level,
            "one_substitution"
        );
    }

    #[test]
    fn homophone_and_traditional_names_still_link_without_an_id() {
        let people = crowd();
        let linker = Linker::with_prior(RegisterIndex::build(&register(&people)));
        let mut s = subject_of(&people[2]);
        s.id_number = None;
        s.name = Some("張偉".into());
        let d = linker.link(&s);
        assert_linked(&d, linker.thresholds());
        assert_eq!(d.member_id.as_deref(), Some("H03"));
        // 张玮 is a homophone of 张伟 born elsewhere in time: the birth date decides
        s.name = Some("张玮".into());
        let d = linker.link(&s);
        assert_eq!(d.member_id.as_deref(), Some("H03"));
        assert_eq!(d.evidence.candidates[0].comparisons[0].level, "homophone");
    }

    #[test]
    fn a_common_name_is_weaker_evidence_than_a_rare_one() {
        let people = crowd();
        let linker = Linker::with_prior(RegisterIndex::build(&register(&people)));
        let tf_of = |p: &P| {
            let mut s = subject_of(p);
            s.id_number = None;
            let d = linker.link(&s);
            let c = &d.evidence.candidates[0].comparisons;
            let name = c.iter().find(|c| c.field == "name").unwrap();
            assert_eq!(name.level, "exact");
            name.weight + name.tf_adjustment.unwrap_or(0.0)
        };
        let common = tf_of(&people[0]); // 王伟: 13 in the register
        let rare = tf_of(&people[1]); // 欧阳娜娜: 1
        assert!(common + 2.0 < rare, "common {common} rare {rare}");
    }

    #[test]
    fn a_close_runner_up_sends_the_record_to_review() {
        // two members with the same name, birth date and village; the record has no ID number
        let people = [
            person("H01", "李娜", "1980-06-01", 22),
            person("H02", "李娜", "1980-06-01", 24),
        ];
        let linker = Linker::with_prior(RegisterIndex::build(&register(&people)));
        let mut s = subject_of(&people[0]);
        s.id_number = None;
        let d = linker.link(&s);
        assert_eq!(d.outcome, Outcome::Review);
        assert_eq!(d.evidence.reason, "runner_up_within_margin");
        assert_eq!(d.household_id, None);
        assert_eq!(d.evidence.candidates.len(), 2);
        assert!(!d.evidence.candidates[1].comparisons.is_empty());
        // with the number, the first one is clearly ahead
        let d = linker.link(&subject_of(&people[0]));
        assert_eq!(d.outcome, Outcome::Linked);
    }

    #[test]
    fn evidence_is_compact_masked_and_explained() {
        let mut people = crowd();
        // ids as long as the register's own
        people[2].hh = "H00001234";
        people[2].member = "H00001234-01";
        let linker = Linker::with_prior(RegisterIndex::build(&register(&people)));
        let s = subject_of(&people[2]);
        let d = linker.link(&s);
        assert_eq!(d.outcome, Outcome::Linked);
        let json = serde_json::to_string(&d.evidence).unwrap();
        println!("{} bytes: {json}", json.len());
        assert!(json.len() < 400, "{} bytes: {json}", json.len());
        let full = s.id_number.clone().unwrap();
        for text in [json.clone(), format!("{:?}", d)] {
            assert!(!text.contains(&full));
            assert!(!text.contains("张伟"));
        }
        let back: Evidence = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d.evidence);
        let text = explain(&d, linker.thresholds());
        println!("{text}");
        for needed in [
            "linked",
            "ID number 身份证号",
            "name 姓名",
            "exact",
            "prior",
            "total",
            "Thresholds",
            &linker.model().version,
        ] {
            assert!(text.contains(needed), "missing {needed:?} in\n{text}");
        }
        // the running total ends on the total
        let last = text.lines().rfind(|l| l.starts_with("  region")).unwrap();
        let total = d.evidence.total.unwrap();
        let running: f64 = last.split_whitespace().last().unwrap().parse().unwrap();
        // the parts are rounded to 0.01 each
        assert!((running - total).abs() < 0.05, "{text}");
    }

    #[test]
    fn explanation_of_an_unmatched_record_says_so() {
        let linker = Linker::with_prior(RegisterIndex::build(&register(&crowd())));
        let d = linker.link(&id_only(None));
        let text = explain(&d, linker.thresholds());
        assert!(
            text.contains("unmatched") && text.contains("未匹配"),
            "{text}"
        );
    }

    #[test]
    fn labelled_pairs_move_the_estimates() {
        let people = crowd();
        let index = RegisterIndex::build(&register(&people));
        let prior = Model::prior();
        let mut s = subject_of(&people[2]);
        s.name = Some("张三丰".into());
        let labels = vec![
            LabelledPair {
                subject: s.clone(),
                household_id: "H03".into(),
                member_id: "H03".into(),
                is_match: true,
            };
            20
        ];
        let (m, used) = blend_labels(&prior, &index, &labels, 100.0);
        assert_eq!(used, 20);
        assert_ne!(m.version, prior.version);
        assert!(m.weights()[model::F_NAME][3] > prior.weights()[model::F_NAME][3]);
        assert!(m.method.ends_with("+labels:20"));
    }
}
