use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use doudi_model::{
    parse_event, Area, Category, Event, Household, IdNumber, ParseLimits, Payload, Source,
    ALL_SOURCES,
};
use doudi_synth::{generate_register, write_dataset, GenConfig, Noise};
use serde_json::Value;

fn cfg(households: usize, seed: u64) -> GenConfig {
    GenConfig {
        households,
        seed,
        ..GenConfig::default()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

struct Dataset {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    register: Vec<Household>,
    /// (file, event) in file order
    events: Vec<(PathBuf, Event)>,
    truth: Vec<Value>,
    scenarios: Vec<Value>,
}

/// The truth of each event, by event id.
fn truth_by_event(d: &Dataset) -> HashMap<&str, &Value> {
    d.truth
        .iter()
        .map(|t| (t["event_id"].as_str().unwrap(), t))
        .collect()
}

fn generate(c: &GenConfig) -> Dataset {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut calls = 0;
    let summary = write_dataset(&dir, c, &mut |_| calls += 1).unwrap();
    assert!(calls >= 1);
    assert_eq!(summary.households, c.households);
    let register: Vec<Household> = fs::read_to_string(dir.join("register.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut events = Vec::new();
    for f in files(&dir) {
        if f.starts_with("feeds") {
            for line in fs::read_to_string(dir.join(&f)).unwrap().lines() {
                let e = parse_event(line.as_bytes(), &ParseLimits::default())
                    .unwrap_or_else(|e| panic!("{}: {e}: {line}", f.display()));
                events.push((f.clone(), e));
            }
        }
    }
    let read = |name: &str| -> Vec<Value> {
        fs::read_to_string(dir.join("truth").join(name))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let truth = read("events.jsonl");
    let scenarios = read("scenarios.jsonl");
    let per_source: usize = summary.events.values().sum();
    assert_eq!(per_source, events.len());
    assert_eq!(summary.scenarios, scenarios.len());
    Dataset {
        _tmp: tmp,
        dir,
        register,
        events,
        truth,
        scenarios,
    }
}

#[test]
fn same_seed_same_bytes_and_different_seed_different_data() {
    let c = cfg(300, 42);
    let a = generate(&c);
    let b = generate(&c);
    let fa = files(&a.dir);
    assert_eq!(fa, files(&b.dir));
    assert!(fa.len() >= 4 * 12 + 4, "{fa:?}");
    for f in &fa {
        assert!(
            fs::read(a.dir.join(f)).unwrap() == fs::read(b.dir.join(f)).unwrap(),
            "{} differs",
            f.display()
        );
    }
    let other = generate(&cfg(300, 43));
    assert_ne!(
        fs::read(a.dir.join("register.jsonl")).unwrap(),
        fs::read(other.dir.join("register.jsonl")).unwrap()
    );
    // a larger register keeps the smaller one as its prefix
    let big = generate_register(&cfg(400, 42));
    assert_eq!(&big[..300], &a.register[..]);
}

#[test]
fn register_is_valid_and_plausible() {
    let reg = generate_register(&cfg(3000, 7));
    assert_eq!(reg.len(), 3000);
    let mut ids = BTreeSet::new();
    let mut cats: BTreeMap<Category, usize> = BTreeMap::new();
    let mut urban = 0;
    let mut tekun_single = 0;
    let start = GenConfig::default().start;
    for h in &reg {
        h.validate()
            .unwrap_or_else(|e| panic!("{}: {e}", h.household_id));
        assert!((1..=6).contains(&h.members.len()));
        assert!(h.enrolled_on < start);
        assert!(h.address.starts_with("安徽省六安市"));
        *cats.entry(h.category).or_default() += 1;
        if h.area == Area::Urban {
            urban += 1;
        }
        for m in &h.members {
            assert!(ids.insert(m.id_number), "duplicate ID");
            assert!(m.birth_date < start);
            assert!(m.age_on(start) <= 100);
        }
        let size = h.members.len() as i64;
        let std = if h.area == Area::Urban {
            96_100
        } else {
            73_200
        };
        let income = h.monthly_income().fen();
        match h.category {
            Category::Dibao => {
                assert!(income < std * size, "{h:?}");
                assert!(h.monthly_benefit.fen() > 0);
            }
            Category::DibaoEdge => {
                assert!(income >= std * size && income * 2 < std * size * 3, "{h:?}")
            }
            Category::Tekun => {
                assert_eq!(income, 0);
                let t = if h.area == Area::Urban {
                    153_800
                } else {
                    117_200
                };
                assert_eq!(h.monthly_benefit.fen(), t * size);
                if size == 1 {
                    tekun_single += 1;
                }
            }
            _ => {}
        }
    }
    let share = |c: Category| cats.get(&c).copied().unwrap_or(0) as f64 / 3000.0;
    assert!((0.50..0.60).contains(&share(Category::Dibao)), "{cats:?}");
    assert!((0.07..0.13).contains(&share(Category::Tekun)), "{cats:?}");
    assert!(tekun_single * 10 >= cats[&Category::Tekun] * 8);
    let urban = urban as f64 / 3000.0;
    assert!((0.22..0.38).contains(&urban), "{urban}");
}

#[test]
fn feeds_parse_are_sorted_and_truth_covers_every_event_once() {
    let d = generate(&cfg(1000, 5));
    // every feed line parsed (in `generate`); files sorted, in the right folder and month
    let mut by_file: BTreeMap<&PathBuf, Vec<&Event>> = BTreeMap::new();
    for (f, e) in &d.events {
        by_file.entry(f).or_default().push(e);
    }
    for (f, evs) in &by_file {
        let folder = f.parent().unwrap().file_name().unwrap().to_str().unwrap();
        let month = f.file_stem().unwrap().to_str().unwrap();
        for w in evs.windows(2) {
            assert!(
                (w[0].occurred_at, &w[0].event_id) < (w[1].occurred_at, &w[1].event_id),
                "{} not sorted",
                f.display()
            );
        }
        for e in evs {
            assert_eq!(e.source.code(), folder);
            assert_eq!(e.occurred_at.format("%Y-%m").to_string(), month);
            assert_eq!(e.occurred_at.offset().local_minus_utc(), 8 * 3600);
        }
    }
    let mut seen = HashMap::new();
    for t in &d.truth {
        let id = t["event_id"].as_str().unwrap().to_string();
        assert!(seen.insert(id, t).is_none(), "event twice in truth");
    }
    assert_eq!(seen.len(), d.events.len());
    let members: HashMap<&str, (&str, &doudi_model::Member)> = d
        .register
        .iter()
        .flat_map(|h| {
            h.members
                .iter()
                .map(move |m| (m.member_id.as_str(), (h.household_id.as_str(), m)))
        })
        .collect();
    for (_, e) in &d.events {
        let t = seen[&e.event_id];
        assert_eq!(t["source"].as_str(), Some(e.source.code()));
        match t["member_id"].as_str() {
            Some(mid) => {
                let (hid, _) = members[mid];
                assert_eq!(t["household_id"].as_str(), Some(hid));
            }
            None => assert!(t["household_id"].is_null()),
        }
    }
    // about three events per household, on every source
    let per_household = d.events.len() as f64 / 1000.0;
    assert!((2.3..4.0).contains(&per_household), "{per_household}");
    for s in ALL_SOURCES {
        assert!(d.events.iter().any(|(_, e)| e.source == s), "{s}");
    }
}

#[test]
fn without_noise_every_subject_carries_the_members_exact_id() {
    let c = GenConfig {
        noise: Noise::none(),
        ..cfg(800, 11)
    };
    let d = generate(&c);
    let ids: HashMap<&str, String> = d
        .register
        .iter()
        .flat_map(|h| h.members.iter())
        .map(|m| (m.member_id.as_str(), m.id_number.expose().to_string()))
        .collect();
    let truth = truth_by_event(&d);
    for (_, e) in &d.events {
        let t = truth[e.event_id.as_str()];
        let mid = t["member_id"].as_str().expect("no outsiders without noise");
        assert_eq!(e.subject.id_number.as_deref(), Some(ids[mid].as_str()));
        assert_eq!(t["noise"].as_array().unwrap().len(), 0);
    }
}

#[test]
fn noise_rates_are_roughly_honoured_and_mean_what_they_say() {
    let c = GenConfig {
        noise: Noise {
            wrong_digit: 0.05,
            swapped_digits: 0.05,
            legacy_15: 0.05,
            missing_id: 0.05,
            homophone_name: 0.05,
            traditional_name: 0.05,
            swapped_birth_date: 0.05,
            outsiders: 0.05,
        },
        ..cfg(3000, 3)
    };
    let d = generate(&c);
    let members: HashMap<&str, &doudi_model::Member> = d
        .register
        .iter()
        .flat_map(|h| h.members.iter())
        .map(|m| (m.member_id.as_str(), m))
        .collect();
    let register_ids: BTreeSet<&str> = members.values().map(|m| m.id_number.expose()).collect();
    let truth = truth_by_event(&d);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, e) in &d.events {
        let t = truth[e.event_id.as_str()];
        let labels: Vec<&str> = t["noise"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for l in &labels {
            *counts.entry(l.to_string()).or_default() += 1;
        }
        let id = e.subject.id_number.as_deref();
        let Some(mid) = t["member_id"].as_str() else {
            assert!(labels.contains(&"outsider"));
            if let Some(id) = id {
                if !labels.iter().any(|l| l.contains("digit")) {
                    let parsed = IdNumber::parse(id).unwrap();
                    assert!(!register_ids.contains(parsed.expose()));
                }
            }
            continue;
        };
        let m = members[mid];
        let real = m.id_number.expose();
        if labels.contains(&"wrong_digit") || labels.contains(&"swapped_digits") {
            let id = id.unwrap();
            assert_eq!(id.len(), 18);
            assert_ne!(id, real);
            assert!(IdNumber::parse(id).is_err());
        } else if labels.contains(&"legacy_15") {
            assert_eq!(id.unwrap().len(), 15);
            assert_eq!(IdNumber::parse(id.unwrap()).unwrap(), m.id_number);
        } else if labels.contains(&"missing_id") {
            assert_eq!(id, None);
            assert!(e.subject.name.is_some() && e.subject.birth_date.is_some());
        } else {
            assert_eq!(id, Some(real));
        }
        if let Some(name) = &e.subject.name {
            let changed =
                labels.contains(&"homophone_name") || labels.contains(&"traditional_name");
            assert_eq!(name != &m.name, changed, "{name} vs {}", m.name);
        }
    }
    let n = d.events.len() as f64;
    assert!(n > 7000.0, "{n}");
    for (label, lo, hi) in [
        ("wrong_digit", 0.035, 0.065),
        ("swapped_digits", 0.035, 0.065),
        ("legacy_15", 0.025, 0.065),
        ("missing_id", 0.035, 0.065),
        ("homophone_name", 0.03, 0.065),
        ("traditional_name", 0.025, 0.065),
        ("outsider", 0.035, 0.065),
    ] {
        let r = counts.get(label).copied().unwrap_or(0) as f64 / n;
        assert!((lo..hi).contains(&r), "{label}: {r} ({counts:?})");
    }
}

#[test]
fn scenarios_come_at_the_hardship_share_and_tell_coherent_stories() {
    let d = generate(&cfg(3000, 9));
    let share = d.scenarios.len() as f64 / 3000.0;
    assert!((0.035..0.065).contains(&share), "{share}");
    let events: HashMap<&str, &Event> = d
        .events
        .iter()
        .map(|(_, e)| (e.event_id.as_str(), e))
        .collect();
    let truth = truth_by_event(&d);
    let mut kinds = BTreeSet::new();
    for s in &d.scenarios {
        let hid = s["household_id"].as_str().unwrap();
        let kind = s["scenario"].as_str().unwrap();
        kinds.insert(kind.to_string());
        let ids = s["event_ids"].as_array().unwrap();
        assert!(!ids.is_empty(), "{s}");
        let evs: Vec<&Event> = ids.iter().map(|i| events[i.as_str().unwrap()]).collect();
        for i in ids {
            assert_eq!(
                truth[i.as_str().unwrap()]["household_id"].as_str(),
                Some(hid)
            );
        }
        let has = |k: &str| evs.iter().any(|e| e.kind() == k);
        match kind {
            "earner_death" => assert!(has("death")),
            "serious_illness" => {
                assert!(has("serious_illness_diagnosed"));
                assert!(evs.iter().any(|e| matches!(&e.payload,
                    Payload::Settlement(st) if st.out_of_pocket_fen.fen() >= 500_000)));
            }
            "job_loss" => {
                assert!(
                    has("job_lost")
                        && has("unemployment_registered")
                        && has("contributions_stopped")
                )
            }
            "housing_crisis" => assert!(has("dangerous_house_appraised") || has("disaster_damage")),
            "severe_disability" => assert!(evs.iter().any(|e| matches!(&e.payload,
                Payload::DisabilityCertified(c) if c.grade <= 2))),
            other => panic!("unknown scenario {other}"),
        }
    }
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    // a death is the last event about that person
    let mut last: HashMap<&str, (&Event, bool)> = HashMap::new();
    for (_, e) in &d.events {
        let Some(mid) = truth[e.event_id.as_str()]["member_id"].as_str() else {
            continue;
        };
        let entry = last.entry(mid).or_insert((e, false));
        if e.kind() == "death" {
            entry.1 = true;
        }
        if e.occurred_at >= entry.0.occurred_at {
            entry.0 = e;
        }
    }
    for (mid, (e, died)) in last {
        if died {
            assert_eq!(e.kind(), "death", "{mid}");
        }
    }
    let _ = Source::Housing;
}

#[test]
fn short_windows_starting_mid_month_still_give_valid_feeds() {
    let c = GenConfig {
        start: chrono::NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
        months: 1,
        hardship_share: 0.3,
        ..cfg(300, 21)
    };
    // `generate` parses every line
    let d = generate(&c);
    let months: BTreeSet<String> = files(&d.dir)
        .iter()
        .filter(|f| f.starts_with("feeds"))
        .map(|f| f.file_stem().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        months.into_iter().collect::<Vec<_>>(),
        vec!["2026-01".to_string(), "2026-02".to_string()]
    );
    let end = chrono::NaiveDate::from_ymd_opt(2026, 2, 15).unwrap();
    for (_, e) in &d.events {
        let day = e.occurred_at.date_naive();
        assert!(day >= c.start && day < end, "{day}");
    }
    assert!(!d.scenarios.is_empty());
}

#[test]
fn bad_configurations_are_refused_with_the_field_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cfg(10, 1);
    c.months = 0;
    let e = write_dataset(tmp.path(), &c, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("months"), "{e}");
    let mut c = cfg(10, 1);
    c.noise.wrong_digit = 1.5;
    let e = write_dataset(tmp.path(), &c, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("noise.wrong_digit"), "{e}");
    // an unwritable place names the path
    let file = tmp.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let e = write_dataset(&file.join("sub"), &cfg(10, 1), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("a-file"), "{e}");
}

#[test]
fn department_exports_are_the_same_bytes_for_the_same_seed_workbooks_included() {
    let c = cfg(200, 7);
    let (a, b) = (generate(&c), generate(&c));
    doudi_synth::native::write_native(&a.dir).unwrap();
    // A workbook carries its creation time to the second: a second later, a clock would show.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    doudi_synth::native::write_native(&b.dir).unwrap();
    let native = files(&a.dir.join("native"));
    assert_eq!(native, files(&b.dir.join("native")));
    assert!(
        native
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "xlsx")),
        "{native:?}"
    );
    for f in &native {
        assert!(
            fs::read(a.dir.join("native").join(f)).unwrap()
                == fs::read(b.dir.join("native").join(f)).unwrap(),
            "{} differs",
            f.display()
        );
    }
}
