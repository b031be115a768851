//! Parser messages without personal data: serde and csv quote the offending value in their
//! errors; a bad row's reason is reported (and logged) with such values masked.

use doudi_model::{mask_id_str, mask_name};

/// Mask every quoted or back-quoted value in a parser's message that could be personal data
/// (non-ASCII text, or six digits or more).
pub(crate) fn sanitize(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(['"', '`']) {
        let q = rest[i..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=i]);
        let after = &rest[i + 1..];
        match after.find(q) {
            Some(j) => {
                let inner = &after[..j];
                let digits = inner.bytes().filter(u8::is_ascii_digit).count();
                if !inner.is_ascii() {
                    out.push_str(&mask_name(inner));
                } else if digits >= 6 {
                    out.push_str(&mask_id_str(inner));
                } else {
                    out.push_str(inner);
                }
                out.push(q);
                rest = &after[j + 1..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_masks_values_but_keeps_field_names() {
        let m = sanitize(r#"invalid type: string "11010519491231002X", expected fen"#);
        assert_eq!(
            m,
            r#"invalid type: string "110105********002X", expected fen"#
        );
        let m = sanitize("unknown field `colour`, expected one of `plate`");
        assert_eq!(m, "unknown field `colour`, expected one of `plate`");
        let m = sanitize(r#"unknown variant `王秀英`"#);
        assert!(!m.contains("秀英"), "{m}");
    }
}
