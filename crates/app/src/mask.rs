//! One masking policy for every door, by role and by what is shown ([`in_clear`]), and the masking
//! itself: ID numbers (`110105********002X`), names (`王*`), phone numbers (`138******00`) and
//! address detail (`大塘村***`), wherever they sit in a record (a household, its members, a raw
//! event's subject and data).
//!
//! | shown                       | officer, supervisor | auditor  | admin (and the command line) |
//! |-----------------------------|---------------------|----------|------------------------------|
//! | a warning (list, detail)    | masked              | masked   | masked                       |
//! | a household's record        | in clear            | masked   | masked                       |
//! | a household's timeline      | masked              | masked   | masked                       |
//! | a household's trace         | masked              | in clear | masked                       |
//!
//! Officers and supervisors visit the household: they need who lives there and where. Auditors
//! replay why a household was flagged: the records as received. Every read of a household's
//! personal data is audited, masked or not (`crate::household`, `crate::warnings`).

use doudi_store::{TraceEntry, WarningView};
use serde_json::Value;

use crate::who::Role;

/// What is shown of a household.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// A warning with its household's record (a list, one warning).
    Warning,
    /// A household's register record.
    Household,
    /// A household's events and the assessment after each.
    Timeline,
    /// Everything about a household in order, the records as received included.
    Trace,
}

/// Whether `role` sees personal data in clear on `view` (the table above).
pub fn in_clear(role: Role, view: View) -> bool {
    match view {
        View::Household => role.is_regional(),
        View::Trace => role == Role::Auditor,
        View::Warning | View::Timeline => false,
    }
}

/// A phone number as shown: its first three and last two characters.
pub fn mask_phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

/// An address as shown: its first three characters (the village or community), then `***`.
pub fn mask_address(a: &str) -> String {
    let head: String = a.chars().take(3).collect();
    format!("{head}***")
}

fn mask_field(key: &str, v: &mut Value) {
    let Some(text) = v.as_str() else {
        return;
    };
    let masked = if key == "id_number" || key.ends_with("_id_number") {
        doudi_model::mask_id_str(text)
    } else if key == "name" || key.ends_with("_name") {
        doudi_model::mask_name(text)
    } else if key.contains("phone") {
        mask_phone(text)
    } else if key == "address" || key.ends_with("_address") {
        mask_address(text)
    } else {
        return;
    };
    *v = Value::String(masked);
}

/// Mask every ID number, name, phone number and address in `v`, at any depth.
pub fn mask_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if child.is_string() {
                    mask_field(k, child);
                } else {
                    mask_json(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// A raw record (text) with its personal data masked; a record that is not JSON is not shown.
pub fn mask_raw(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(mut v) => {
            mask_json(&mut v);
            v.to_string()
        }
        Err(_) => format!("(not JSON: {} bytes, kept in the store)", raw.len()),
    }
}

/// Mask a warning's household record.
pub fn mask_warning(w: &mut WarningView) {
    mask_json(&mut w.household);
}

/// Mask a trace entry's personal data (register versions, raw events, findings).
pub fn mask_trace_entry(e: &mut TraceEntry) {
    match e {
        TraceEntry::Register {
            record: Some(record),
            ..
        } => mask_json(record),
        // Removed by retention: nothing left to mask (and no "not JSON" to say of it).
        TraceEntry::Event {
            raw,
            raw_removed_at: None,
            ..
        } => *raw = mask_raw(raw),
        TraceEntry::Finding { finding, .. } => mask_json(finding),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_masked_at_any_depth_and_nothing_else_is() {
        let mut v = serde_json::json!({
            "household_id": "H1", "address": "大塘村12号", "category": "tekun",
            "members": [{"member_id": "H1-1", "id_number": "34240119490127046X", "name": "陈桂兰",
                "phone": "13800138000"}],
            "data": {"spouse_name": "王强", "amount_fen": 100}
        });
        mask_json(&mut v);
        let text = v.to_string();
        for secret in [
            "34240119490127046X",
            "陈桂兰",
            "13800138000",
            "12号",
            "王强",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(v["members"][0]["member_id"], "H1-1");
        assert_eq!(v["address"], "大塘村***");
        assert_eq!(v["data"]["amount_fen"], 100);
        assert_eq!(
            mask_raw("not json"),
            "(not JSON: 8 bytes, kept in the store)"
        );
        assert_eq!(mask_phone("13800138000"), "138******00");
    }

    #[test]
    fn the_policy_shows_in_clear_only_what_a_role_needs() {
        use Role::*;
        assert!(in_clear(Officer, View::Household) && in_clear(Supervisor, View::Household));
        assert!(!in_clear(Auditor, View::Household) && !in_clear(Admin, View::Household));
        assert!(in_clear(Auditor, View::Trace));
        assert!(!in_clear(Officer, View::Trace) && !in_clear(Admin, View::Trace));
        for r in Role::ALL {
            assert!(!in_clear(r, View::Warning) && !in_clear(r, View::Timeline));
        }
    }
}
