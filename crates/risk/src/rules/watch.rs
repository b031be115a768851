//! `watch`: a household nobody in which can work is never declared risk-cleared (DOMAIN.md). Once
//! its last risk episode is old and stable enough that another household would be cleared, its
//! rules still fire (they say why it is watched) but the score is set to `review.watch_points`:
//! this contribution is the difference, so that the contributions still add up to the score.

use doudi_model::Contribution;

use crate::clearance::ClearanceStatus;
use crate::rule::Ctx;

pub const ID: &str = "watch";

/// The adjustment that brings `score` to the watch level, if the household is watched.
pub fn adjust(cx: &Ctx, score: i64) -> Option<Contribution> {
    let c = &cx.clearance;
    if c.status != ClearanceStatus::Watched {
        return None;
    }
    let since = c.stable_since?;
    let months = cx.review.risk_clear_stable_months;
    let target = cx.review.watch_points;
    Some(Contribution::new(ID, target - score, format!(
            "最近一次风险因素出现于{since}，此后已稳定满{months}个月，但家中无有劳动能力的成员，不作风险消除：按监测分{target}继续监测"
        ), format!(
            "The last risk signal was on {since} and the household has been stable for {months} months since, but nobody in it is able to work: the risk is not cleared and it stays watched at {target} points"
        ), Vec::new()))
}
