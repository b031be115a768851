//! Property: assessment is deterministic and order-stable — for any interleaving of facts of
//! different households, in any arrival order, with repeats, each household's assessment equals
//! the one made from its own facts alone.

use proptest::prelude::*;

use crate::assess::assess;
use crate::ruleset::RuleSet;
use crate::state::derive_state;
use crate::testkit::*;
use doudi_model::event::HouseGrade;
use doudi_model::{Category, Fact, Household, Payload};

fn payload(kind: u8, day: &str) -> Payload {
    match kind % 14 {
        0 => death(day),
        1 => job_lost(day, Some(200_000)),
        2 => unemployment(day),
        3 => contributions_stopped("2026-01", 3),
        4 => job_started(day, 300_000),
        5 => wage_changed(day, 150_000),
        6 => settlement(30_000, day),
        7 => inpatient(900_000, day),
        8 => diagnosis("C34.9", day),
        9 => disability(2, day),
        10 => dangerous(HouseGrade::D, day),
        11 => disaster(2_000_000, true, day),
        12 => relocated(true, day),
        _ => birth(day),
    }
}

fn day(offset: u32) -> String {
    let d = date("2025-06-01") + chrono::Days::new(u64::from(offset));
    d.format("%Y-%m-%d").to_string()
}

fn households() -> [Household; 2] {
    let a = family(Category::DibaoEdge);
    let mut b = single_elderly(Category::Tekun);
    b.household_id = "H2".into();
    [a, b]
}

fn build(spec: &[(bool, u8, u32, u8)]) -> Vec<Fact> {
    spec.iter()
        .enumerate()
        .map(|(i, &(second, kind, offset, member))| {
            let d = day(offset);
            let m = if second {
                "M1".to_string()
            } else {
                format!("M{}", 1 + member % 3)
            };
            let mut f = fact(&format!("E{i:03}"), &m, &d, payload(kind, &d));
            if second {
                f.household_id = "H2".into();
            }
            f
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn assessment_is_deterministic_and_order_stable_across_households(
        spec in proptest::collection::vec((any::<bool>(), any::<u8>(), 0u32..400, any::<u8>()), 0..24),
        seed in any::<u64>(),
        repeat in 0usize..4,
    ) {
        let rules = RuleSet::builtin();
        let hs = households();
        let facts = build(&spec);
        // a shuffled interleaving with a few repeated deliveries
        let mut mixed = facts.clone();
        let mut x = seed | 1;
        for i in (1..mixed.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            mixed.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let extra: Vec<Fact> = mixed.iter().take(repeat).cloned().collect();
        mixed.extend(extra);
        let as_of = at("2026-07-15");
        for h in &hs {
            let own: Vec<Fact> = facts
                .iter()
                .filter(|f| f.household_id == h.household_id)
                .cloned()
                .collect();
            let alone = assess(&rules, h, &derive_state(h, &own, as_of));
            let together = assess(&rules, h, &derive_state(h, &mixed, as_of));
            prop_assert_eq!(&alone, &together);
            // and the same call twice gives the same answer
            prop_assert_eq!(&alone, &assess(&rules, h, &derive_state(h, &own, as_of)));
            prop_assert_eq!(
                alone.contributions.iter().map(|c| c.points).sum::<i64>(),
                alone.score
            );
        }
    }
}
