//! Household timelines, versioned explainable risk rules and relief suggestions.
//!
//! What it is for: given a household of the low-income register and the facts linked to it, derive
//! the household's state ([`derive_state`]), score it under a versioned rule set ([`assess`]) and
//! say how urgent it is, why (each rule's contribution in plain words, with amounts, dates and the
//! events behind it), what temporary relief to suggest and who may approve it, and which reviews
//! (低保渐退, asset check, benefit stop on death) to open. Every number comes from the rule set
//! (`rules/default.toml`), whose version is stamped on each assessment so that an auditor can
//! replay it.
//!
//! What it must never do: any I/O (it only parses a TOML string it is given), any logging, any
//! panic on input, any float arithmetic on money (amounts are integer fen, ratios permille). The
//! derived state carries no names or ID numbers. A rise in income or assets never lowers a score
//! or cuts a benefit by itself: it opens a review.

pub mod assess;
pub mod level;
pub mod relief;
pub mod review;
pub mod rules;
pub mod ruleset;
pub mod state;

#[cfg(test)]
mod testkit;

pub use assess::{assess, Assessment, Contribution};
pub use level::Level;
pub use relief::ReliefSuggestion;
pub use rules::{RULES, RULE_IDS, VULNERABILITY_ID};
pub use ruleset::{RuleSet, RuleSetError, Standard};
pub use state::{derive_state, HouseholdState, MemberState};
