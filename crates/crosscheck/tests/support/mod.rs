//! Findings as comparable keys, for the planted-findings test and the scale bench alike.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use doudi_crosscheck::Finding;

/// (check, household, member): what a finding is about.
pub type Key = (String, String, Option<String>);

/// The findings the generator planted (`truth/findings.jsonl`).
pub fn read_truth(path: &Path) -> BTreeSet<Key> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["check"].as_str().unwrap().to_string(),
                v["household_id"].as_str().unwrap().to_string(),
                v["member_id"].as_str().map(String::from),
            )
        })
        .collect()
}

/// The keys of `findings`.
pub fn keys(findings: &[Finding]) -> BTreeSet<Key> {
    findings
        .iter()
        .map(|f| {
            (
                f.check.code().to_string(),
                f.household_id.clone(),
                f.member_id.clone(),
            )
        })
        .collect()
}
