//! Why an open warning is at its level, and what it asks of its officer.
//!
//! A warning keeps the highest level its episode reached (a new fact never lowers it), while its
//! summary is the household's latest assessment. When the findings that raised it stop counting —
//! the risk was cleared with evidence (风险消除), or its signals aged out while nobody acted — the
//! latest assessment has nothing left in it; the warning is then shown with the original reasons
//! (the findings as they stood, from the assessment's `risk.lapsed`) and what changed since, and
//! asks the officer to verify and close it: never an empty red.
//!
//! Pure: the callers (`doudi warnings show`, the warning page, the stream driver) show or route
//! what [`explain`] says.

use doudi_model::{Assessment, Level, RiskStatus};
use serde::{Deserialize, Serialize};

/// What an open warning asks of its officer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ask {
    /// Act within the level's time (visit, relief, referral).
    Act,
    /// The risk that raised it no longer counts: verify (a visit or a call) and close it.
    VerifyAndClose,
}

/// Why a warning is at its level, in lines an officer reads (Chinese and English alike).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub ask: Ask,
    /// Why the level: the latest assessment's urgency class and steps, or that the level was
    /// reached earlier.
    pub why_zh: Vec<String>,
    pub why_en: Vec<String>,
    /// The findings that raised it and no longer count, each with what changed since.
    pub lapsed_zh: Vec<String>,
    pub lapsed_en: Vec<String>,
}

/// Explain a warning at `level` whose household's latest assessment is `latest`.
pub fn explain(level: Level, latest: &Assessment) -> Explanation {
    let mut why_zh = Vec::new();
    let mut why_en = Vec::new();
    let risk = latest.risk.as_ref();
    let status = risk.map(|r| r.status);
    let lower = latest.level < level;
    // Nothing counts any more (cleared, expired, or what is left is below every line).
    let ask = if lower && latest.level == Level::None {
        Ask::VerifyAndClose
    } else {
        Ask::Act
    };
    if lower {
        why_zh.push(format!(
            "{}预警由此前的风险因素提出（预警等级不因新的事实降低）；最新评估为{}",
            level.name_zh(),
            latest.level.name_zh()
        ));
        why_en.push(format!(
            "The {} warning was raised by earlier findings (a new fact never lowers a warning); the latest assessment is {}",
            level.code(),
            latest.level.code()
        ));
    }
    if let Some(b) = &latest.basis {
        why_zh.push(b.reason_zh.clone());
        why_en.push(b.reason_en.clone());
    }
    match (ask, status) {
        (Ask::VerifyAndClose, Some(RiskStatus::Cleared)) => {
            why_zh.push("风险已消除（有收入恢复的证据）：请核实后关闭".into());
            why_en.push("The risk is cleared (income has recovered): verify and close".into());
        }
        (Ask::VerifyAndClose, Some(RiskStatus::Expired)) => {
            why_zh.push("风险因素已过期，期间无人处理：请核实后关闭".into());
            why_en
                .push("The risk signals have expired while nobody acted: verify and close".into());
        }
        (Ask::VerifyAndClose, Some(RiskStatus::NoRisk) | None) => {
            why_zh.push(format!(
                "最新评估（规则集{}）未发现风险：请核实后关闭",
                latest.rule_set_version
            ));
            why_en.push(format!(
                "The latest assessment (rule set {}) finds no risk: verify and close",
                latest.rule_set_version
            ));
        }
        (Ask::VerifyAndClose, _) => {
            why_zh.push("提出预警的风险因素已不再计入，最新评估未达预警线：请核实后关闭".into());
            why_en.push(
                "The findings that raised it no longer count and the latest assessment is below every line: verify and close"
                    .into(),
            );
        }
        (Ask::Act, _) => {}
    }
    let mut lapsed_zh = Vec::new();
    let mut lapsed_en = Vec::new();
    if lower {
        for l in risk.map(|r| r.lapsed.as_slice()).unwrap_or_default() {
            lapsed_zh.push(format!(
                "{:+} {}（{}）",
                l.finding.points, l.finding.reason_zh, l.change_zh
            ));
            lapsed_en.push(format!(
                "{:+} {} ({})",
                l.finding.points, l.finding.reason_en, l.change_en
            ));
        }
    }
    Explanation {
        ask,
        why_zh,
        why_en,
        lapsed_zh,
        lapsed_en,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doudi_model::{Contribution, Lapsed, LevelBasis, RiskState, Urgency};

    fn latest(level: Level, status: RiskStatus, lapsed: Vec<Lapsed>) -> Assessment {
        Assessment {
            rule_set_version: "2026.12-1".into(),
            household_id: "H1".into(),
            score: 0,
            level,
            contributions: vec![],
            relief: None,
            act_within_hours: None,
            review_needed: vec![],
            basis: None,
            risk: Some(RiskState {
                status,
                lapsed_on: None,
                lapsed,
            }),
        }
    }

    /// The explanation of a warning at `level` whose latest assessment finds no level.
    fn explain_latest_none(level: Level, status: RiskStatus, lapsed: Vec<Lapsed>) -> Explanation {
        explain(level, &latest(Level::None, status, lapsed))
    }

    fn disaster() -> Lapsed {
        let mut finding = Contribution::new(
            "disaster_damage",
            60,
            "2025-12-10遭受火灾灾害，损失80000.00元，住房已无法居住".into(),
            "Damage by fire on 2025-12-10, losses of 80000.00 yuan; the home can no longer be lived in".into(),
            vec!["E1".into()],
        );
        finding.urgency = Some(Urgency::Expense);
        Lapsed {
            finding,
            change_zh: "灾害已超过6个月，2026-01-05以来无新的风险因素；已于2026-01-05搬迁".into(),
            change_en: "the disaster is now more than 6 months old, with no new risk signal since 2026-01-05; the household moved on 2026-01-05".into(),
        }
    }

    #[test]
    fn an_expired_red_asks_to_verify_and_close_with_its_original_reasons() {
        let e = explain_latest_none(Level::Red, RiskStatus::Expired, vec![disaster()]);
        assert_eq!(e.ask, Ask::VerifyAndClose);
        assert!(e.why_en[0].starts_with("The red warning was raised by earlier findings"));
        assert_eq!(
            e.why_en.last().map(String::as_str),
            Some("The risk signals have expired while nobody acted: verify and close")
        );
        assert_eq!(e.lapsed_en.len(), 1);
        assert!(
            e.lapsed_en[0].starts_with("+60 Damage by fire on 2025-12-10"),
            "{:?}",
            e.lapsed_en
        );
        assert!(e.lapsed_en[0].contains("the disaster is now more than 6 months old"));
        assert!(
            e.lapsed_zh[0].contains("住房已无法居住（灾害已超过6个月"),
            "{:?}",
            e.lapsed_zh
        );
    }

    #[test]
    fn a_cleared_risk_is_told_apart_from_an_expired_one_and_from_no_risk() {
        let cleared = explain_latest_none(Level::Orange, RiskStatus::Cleared, vec![disaster()]);
        assert_eq!(cleared.ask, Ask::VerifyAndClose);
        assert!(cleared
            .why_en
            .iter()
            .any(|l| l.starts_with("The risk is cleared (income has recovered)")));
        let never = explain_latest_none(Level::Yellow, RiskStatus::NoRisk, vec![]);
        assert_eq!(never.ask, Ask::VerifyAndClose);
        assert!(never
            .why_en
            .iter()
            .any(|l| l.contains("rule set 2026.12-1) finds no risk")));
        assert!(never.lapsed_en.is_empty());
    }

    #[test]
    fn a_warning_at_the_latest_level_says_why_and_asks_to_act() {
        let mut a = latest(Level::Red, RiskStatus::Open, vec![]);
        a.basis = Some(LevelBasis {
            urgency: Some(Urgency::Emergency),
            by_findings: Level::Orange,
            raised_by_vulnerability: false,
            reason_zh: "急难：住房已无法居住，尚未搬迁".into(),
            reason_en: "急难 (emergency): the home cannot be lived in".into(),
        });
        let e = explain(Level::Red, &a);
        assert_eq!(e.ask, Ask::Act);
        assert_eq!(
            e.why_en,
            vec!["急难 (emergency): the home cannot be lived in".to_string()]
        );
        assert!(e.lapsed_en.is_empty());
        // a watched household below its warning's level is still to be acted on
        let w = explain(
            Level::Red,
            &latest(Level::Yellow, RiskStatus::Watched, vec![]),
        );
        assert_eq!(w.ask, Ask::Act);
    }
}
