//! DingTalk (钉钉) custom robots secured by signing (加签): a markdown message POSTed as JSON to
//! the robot's webhook URL, `https://oapi.dingtalk.com/robot/send?access_token=TOKEN`, with
//! `&timestamp=…&sign=…` appended. The token and the secret are credentials: the directory names
//! the files that hold them, never the values.
//!
//! The documented formats (DingTalk Open Platform, 自定义机器人接入 and 自定义机器人安全设置,
//! <https://open.dingtalk.com/document/robots/custom-robot-access>,
//! <https://open.dingtalk.com/document/robots/customize-robot-security-settings>):
//! - body `{"msgtype":"markdown","markdown":{"title":"…","text":"…"}}`; the title is what the
//!   conversation list shows, the text the markdown;
//! - signing: `timestamp` is the current time in **milliseconds** (DingTalk refuses one more than
//!   an hour away from its clock); `sign` = urlencode(base64(HMAC-SHA256(key = secret,
//!   message = timestamp + "\n" + secret))), UTF-8 throughout; both appended to the URL as query
//!   parameters;
//! - the answer is HTTP 200 with `{"errcode":0,"errmsg":"ok"}` when the message was taken (a
//!   non-zero `errcode`, e.g. 310000 when the signature, keyword or IP does not match, or 130101
//!   for too many messages, is a failed attempt: [`crate::robot::outcome`]). At most 20 messages a
//!   robot a minute (beyond that the robot is throttled for 10 minutes).
//!
//! The signature covers the time, not the body: a retry is signed anew with its own timestamp.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// Why a robot's URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the robot's URL is not a URL (check the file holds only the webhook URL)")]
    NotUrl,
    #[error("the robot's URL must be http:// or https://")]
    Scheme,
}

/// `sign` before URL encoding: base64(HMAC-SHA256(key = `secret`, `"{timestamp_ms}\n{secret}"`)).
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    // HMAC accepts a key of any length: `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `url` with `timestamp` and `sign` appended as query parameters (form-urlencoded: `+` `%2B`,
/// `/` `%2F`, `=` `%3D`).
pub fn signed_url(url: &str, secret: &str, timestamp_ms: i64) -> Result<String, UrlError> {
    let mut u = reqwest::Url::parse(url.trim()).map_err(|_| UrlError::NotUrl)?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    u.query_pairs_mut()
        .append_pair("timestamp", &timestamp_ms.to_string())
        .append_pair("sign", &sign(secret, timestamp_ms));
    Ok(u.into())
}

/// The request body: a markdown message with its title.
pub fn body(title: &str, text: &str) -> Vec<u8> {
    json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed apart from this crate, with OpenSSL:
    /// `printf '1700000000000\nSECtest' | openssl dgst -sha256 -hmac SECtest -binary | base64`.
    #[test]
    fn the_signature_matches_a_vector_computed_with_openssl() {
        assert_eq!(
            sign("SECtest", 1_700_000_000_000),
            "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
        );
    }

    #[test]
    fn the_signed_url_keeps_the_token_and_appends_timestamp_and_encoded_sign() {
        let url = signed_url(
            "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "SECtest",
            1_700_000_000_000,
        )
        .unwrap();
        let sign = sign("SECtest", 1_700_000_000_000);
        let encoded = sign
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(
            url,
            format!("https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000&sign={encoded}")
        );
        assert_eq!(signed_url("not a url", "s", 1), Err(UrlError::NotUrl));
        assert_eq!(signed_url("ftp://x/y", "s", 1), Err(UrlError::Scheme));
    }

    #[test]
    fn the_body_is_the_documented_markdown_message() {
        let v: serde_json::Value =
            serde_json::from_slice(&body("红色预警 · 户 H0", "### 红色预警")).unwrap();
        assert_eq!(
            v,
            json!({"msgtype": "markdown", "markdown": {"title": "红色预警 · 户 H0", "text": "### 红色预警"}})
        );
    }
}
