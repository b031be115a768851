//! Household timelines, versioned explainable risk rules and relief suggestions.
//!
//! What it is for: given a household of the low-income register and the facts linked to it, derive
//! the household's state ([`derive_state`]), score it under a versioned rule set ([`assess`]) and
//! say how urgent it is, why (each rule's contribution in plain words, with amounts, dates and the
//! events behind it), what temporary relief to suggest and who may approve it, which enrolment to
//! consider (单人户, 低保, 特困), and which reviews (低保渐退, asset check, benefit stop on death,
//! 风险消除) to open. Every number comes from the rule set (`rules/default.toml`), whose version
//! is stamped on each assessment so that an auditor can replay it; [`backtest`] replays stored
//! timelines under a candidate rule set and says what would change.
//!
//! Income is compared with the lines after the deductions the policy makes (刚性支出: medical
//! out-of-pocket and schooling; 就业成本: a share of wages). A risk signal counts until the risk is
//! cleared ([`clearance`]: six stable months, income back at or above the line, someone able to
//! work); a household nobody in which can work is never cleared and stays watched.
//!
//! How urgent is policy's, not the household's (`urgency`): 急难 (the main income gone with
//! nobody able to work, the home uninhabitable, a bill beyond the household's capacity) is red
//! whoever the household is; other findings are yellow or orange by size; vulnerability raises a
//! level by one step at most and never makes a red. Every assessment says why it is at its level
//! and where the household's risk stands; findings that no longer count are kept with what changed
//! since (`lapse`), so that a warning they raised is never shown empty. [`calibrate()`] spreads a
//! store's warnings by level × top cause × category.
//!
//! How it is laid out, from the ground up: `state` (the derived state), `check` (how a rules file
//! is refused), `policy` (the rule set's shared tables), `clearance`, `rule` (what a rule is and
//! sees), `rules/` (one file per rule, registered once in `rules/mod.rs`), `urgency`, `ruleset`
//! (the whole file), then `lapse`, `review`, `relief`, `assess`, `backtest` and `calibrate`.
//! Nothing imports upward. The outcome types (`Level`, `Assessment`, `Contribution`,
//! `ReliefSuggestion`, `Urgency`, `LevelBasis`, `RiskState`) live in `doudi_model` and are
//! re-exported here.
//!
//! What it must never do: any I/O (it only parses a TOML string it is given), any logging, any
//! panic on input, any float arithmetic on money (amounts are integer fen, ratios permille). The
//! derived state carries no names or ID numbers, and borrows its identifiers from the facts (no
//! string is allocated to derive it). A rise in income or assets never lowers a score or cuts a
//! benefit by itself: it opens a review.

pub mod assess;
pub mod backtest;
pub mod calibrate;
pub mod check;
pub mod clearance;
pub mod evidence;
pub mod lapse;
pub mod level;
pub mod policy;
pub mod relief;
pub mod review;
pub mod rule;
pub mod rules;
pub mod ruleset;
pub mod state;
pub mod urgency;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testkit;

pub use assess::{assess, Assessment, Contribution};
pub use backtest::{backtest, BacktestReport};
pub use calibrate::{calibrate, CalibrationReport, Warned};
pub use clearance::{Clearance, ClearanceStatus};
pub use doudi_model::{LevelBasis, RiskState, RiskStatus, Urgency};
pub use level::Level;
pub use relief::ReliefSuggestion;
pub use rule::Rule;
pub use rules::{RuleParams, RULE_IDS, VULNERABILITY_ID};
pub use ruleset::{RuleSet, RuleSetError, Standard};
pub use state::{derive_state, HouseholdState, MemberState};
