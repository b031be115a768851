//! Hand-made registers and snapshots for the rules the generated data does not reach.

use std::fs;
use std::path::Path;

use chrono::NaiveDate;
use doudi_crosscheck::{run, Check, CheckConfig, NoProgress, RunResult};
use doudi_model::{
    Area, Category, Household, IdNumber, Member, Money, RegionCode, Relation, Sex, WorkCapacity,
};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn member(hh: &str, k: usize, seq: u16, name: &str) -> Member {
    let birth = date(1960, 1, 1 + k as u32);
    let sex = if seq % 2 == 1 { Sex::Male } else { Sex::Female };
    Member {
        member_id: format!("{hh}-{k:02}"),
        id_number: IdNumber::from_parts("341502", birth, seq).unwrap(),
        name: name.into(),
        sex,
        birth_date: birth,
        relation: if k == 1 {
            Relation::Head
        } else {
            Relation::Spouse
        },
        work_capacity: WorkCapacity::Full,
        disability_grade: None,
        employed: false,
        monthly_income: Money::ZERO,
    }
}

fn household(id: &str, village: &str, members: Vec<Member>) -> Household {
    Household {
        household_id: id.into(),
        region_code: RegionCode::parse(village).unwrap(),
        address: "金安区".into(),
        category: Category::Dibao,
        area: Area::Rural,
        monthly_benefit: Money::from_yuan(1000),
        enrolled_on: date(2020, 1, 1),
        members,
    }
}

fn register() -> Vec<Household> {
    vec![
        household(
            "H1",
            "341502001001",
            vec![member("H1", 1, 11, "王建国"), member("H1", 2, 12, "李秀英")],
        ),
        household("H2", "341502002001", vec![member("H2", 1, 13, "张伟")]),
    ]
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn hukou_for(reg: &[Household]) -> String {
    let mut s = String::from("id_number,name,sex,birth_date,region_code\n");
    for h in reg {
        for m in &h.members {
            let sex = if m.sex == Sex::Male { "male" } else { "female" };
            s.push_str(&format!(
                "{},{},{sex},{},{}\n",
                m.id_number.expose(),
                m.name,
                m.birth_date,
                h.region_code
            ));
        }
    }
    s
}

const AS_OF: fn() -> NaiveDate = || date(2027, 1, 1);

/// The checks of `cfg` over the snapshots in `dir`, as of [`AS_OF`].
fn check(reg: &[Household], dir: &Path, cfg: &CheckConfig) -> RunResult {
    run(reg, dir, cfg, AS_OF(), &NoProgress).unwrap()
}

/// The default checks over the register's own 户籍 snapshot and one more file `name`.
fn hukou_and(name: &str, text: &str) -> RunResult {
    let tmp = tempfile::tempdir().unwrap();
    let reg = register();
    write(tmp.path(), "hukou.csv", &hukou_for(&reg));
    write(tmp.path(), name, text);
    check(&reg, tmp.path(), &CheckConfig::default())
}

#[test]
fn a_missing_snapshot_skips_its_checks_instead_of_reporting_everyone() {
    let r = hukou_and("notes.txt", "not a snapshot");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(
        r.checks_run.iter().copied().collect::<Vec<_>>(),
        vec![Check::IdUnknownToHukou, Check::HukouMismatch]
    );
    assert_eq!(
        r.checks_skipped[&Check::DeceasedStillPaid],
        "no deaths snapshot"
    );
    assert_eq!(r.ignored_files, vec!["notes.txt".to_string()]);
    assert_eq!(r.exit_code(), 4);
}

#[test]
fn a_refused_header_names_the_file_and_skips_the_kind() {
    let r = hukou_and("vehicles.csv", "plate,owner\n皖N1,x\n");
    let v = r.files.iter().find(|f| f.file == "vehicles.csv").unwrap();
    assert!(
        v.error.as_deref().unwrap().contains("owner"),
        "{:?}",
        v.error
    );
    assert!(r.checks_skipped[&Check::DisqualifyingVehicle].contains("vehicles.csv"));
}

#[test]
fn an_id_number_in_two_register_households_is_enrolled_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let mut reg = register();
    // H3 in another county lists H1's second member again
    let mut twin = reg[0].members[1].clone();
    twin.member_id = "H3-01".into();
    twin.relation = Relation::Head;
    reg.push(household("H3", "341503001001", vec![twin]));
    write(
        tmp.path(),
        "payments.csv",
        "payment_id,household_id,region_code,id_number,category,month,amount_fen\n\
         P1,W1,341504001001,11010519491231002X,dibao,2026-12,50000\n",
    );
    let r = check(&reg, tmp.path(), &CheckConfig::default());
    let keys: Vec<&str> = r.findings.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "duplicate_enrolment:H1:H1-02",
            "duplicate_enrolment:H3:H3-01"
        ]
    );
    assert_eq!(
        r.findings[0].evidence["other_enrolments"][0]["kind"],
        "two_localities"
    );
}

#[test]
fn a_co_owned_home_counts_once_and_a_second_home_disqualifies() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = register();
    let a = reg[0].members[0].id_number.expose();
    let b = reg[0].members[1].id_number.expose();
    let row = |cert: &str, id: &str| {
        format!(
            r#"{{"certificate_no":"{cert}","id_number":"{id}","usage":"residential","registered_on":"2015-01-01"}}"#
        )
    };
    write(
        tmp.path(),
        "properties.jsonl",
        &format!("{}\n{}\n", row("C1", a), row("C1", b)),
    );
    let cfg = CheckConfig::default();
    let r = check(&reg, tmp.path(), &cfg);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    write(
        tmp.path(),
        "properties.jsonl",
        &format!("{}\n{}\n{}\n", row("C1", a), row("C1", b), row("C2", b)),
    );
    let r = check(&reg, tmp.path(), &cfg);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].key, "disqualifying_property:H1");
    assert_eq!(r.findings[0].evidence["homes"], 2);
    assert_eq!(r.findings[0].amount_at_stake, Money::from_yuan(12_000));
    assert_eq!(r.findings[0].deadline, date(2027, 1, 16));
}

#[test]
fn income_above_a_regional_line_for_too_few_months_is_not_a_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = register();
    let id = reg[1].members[0].id_number.expose();
    let mut cfg = CheckConfig::default();
    cfg.income.line.by_region.insert(
        "341502002".into(),
        doudi_crosscheck::config::RegionLine {
            urban: Money::from_yuan(1500),
            rural: Money::from_yuan(1200),
        },
    );
    // H2 is a one-person rural household in township 341502002: its line is 1,200 yuan.
    let wages = |months: &[&str], fen: i64| {
        let mut s = String::from("id_number,month,wage_fen\n");
        for m in months {
            s.push_str(&format!("{id},{m},{fen}\n"));
        }
        s
    };
    write(
        tmp.path(),
        "wages.csv",
        &wages(&["2026-11", "2026-12"], 130_000),
    );
    let r = check(&reg, tmp.path(), &cfg);
    assert!(r.findings.is_empty(), "two months are not three");
    write(
        tmp.path(),
        "wages.csv",
        &wages(&["2026-10", "2026-11", "2026-12"], 110_000),
    );
    let r = check(&reg, tmp.path(), &cfg);
    assert!(
        r.findings.is_empty(),
        "1,100 yuan is under this township's line of 1,200"
    );
    write(
        tmp.path(),
        "wages.csv",
        &wages(&["2026-10", "2026-11", "2026-12"], 130_000),
    );
    let r = check(&reg, tmp.path(), &cfg);
    assert_eq!(r.findings.len(), 1);
    let f = &r.findings[0];
    assert_eq!(f.key, "income_above_line:H2");
    assert_eq!(f.evidence["grace_period_ends"], "2027-07-01");
    assert_eq!(f.evidence["automatic_cut"], false);
}

#[test]
fn a_file_without_its_header_is_refused_without_showing_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = register();
    let full = hukou_for(&reg);
    let headerless: String = full.lines().skip(1).map(|l| format!("{l}\n")).collect();
    write(tmp.path(), "hukou.csv", &headerless);
    let r = check(&reg, tmp.path(), &CheckConfig::default());
    let err = r.files[0].error.clone().unwrap();
    for m in reg.iter().flat_map(|h| &h.members) {
        assert!(!err.contains(m.id_number.expose()), "{err}");
        assert!(!err.contains(&m.name), "{err}");
    }
    assert!(r.checks_skipped.contains_key(&Check::IdUnknownToHukou));
}
